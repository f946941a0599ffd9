#!/bin/bash
# Self-training with the ensemble against the default at 100 frames (issue 15): for each
# seed, `finetune --checkpoint pilotnet-recipe --frames 100 --pseudo-label --set
# selftrain.teacher=network --ensemble-with pilotnet-styles` (the network teacher, as
# docs/selftrain.md's figures were measured before the motion teacher became --pseudo-label's
# default; benchmarks/motion_teacher.sh runs both teachers) (and, with CONTROL=1, the ensemble without self-training, `finetune
# --frames 100 --pseudo-label none`: the default until self-training became it), timed by /usr/bin/time (CPU s, wall, load before and
# after in OUT/RUN.time); each network scored as saved on the test block (`evaluate --split
# test --json`) and on the validation blocks of both recordings (benchmarks/fit_sim/val_r.py;
# read the line of the network's own recording).
#
#   bash benchmarks/pl_ensemble.sh REAL_DIR OUT TUB [SEED...]
set -u
REAL=$1
OUT=$2
TUB=$3
shift 3
SEEDS=${*:-0 1 2}
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ARMS="pl"
[ "${CONTROL:-0}" = 1 ] && ARMS="pl default"
mkdir -p "$OUT"
for seed in $SEEDS; do
  for arm in $ARMS; do
    d=$OUT/$TUB-$arm-s$seed
    if [ ! -f "$d/model.json" ]; then
      extra="--pseudo-label none"
      [ $arm = pl ] && extra="--pseudo-label --set selftrain.teacher=network --ensemble-with pilotnet-styles"
      # the 2,000 unlabeled frames and 6 epochs it was measured with (the command's since: 6,000, 4)
      [ $arm = pl ] && extra+=" --set selftrain.max_frames=2000 --set selftrain.epochs=6"
      { date -u; uptime; } > "$d.time"
      # shellcheck disable=SC2086
      /usr/bin/time -a -o "$d.time" -f "user %U s, system %S s, wall %e s" \
        $S finetune --checkpoint pilotnet-recipe --data "$REAL/$TUB" --frames 100 \
        --seed "$seed" $extra --out "$d" > "$d.log" 2>&1 || echo "failed: $d"
      { date -u; uptime; } >> "$d.time"
    fi
    [ -f "$d-test.json" ] || $S evaluate --checkpoint "$d" --data "$REAL/$TUB" --split test \
      --json "$d-test.json" > "$d-test.log" 2>&1 || echo "failed: $d-test"
  done
done
$PY "$(dirname "$0")/fit_sim/val_r.py" "$OUT/$TUB-val.json" "$REAL" "$OUT/$TUB-"*-s*/
