#!/bin/bash
# The motion teacher against the network teacher in `finetune`'s self-training (issue 15):
# for each seed, `finetune --checkpoint pilotnet-recipe --frames N --pseudo-label` (the
# two-start ensemble, each member self-training) with `--set selftrain.teacher=network` (arm
# `network`: the default before the motion teacher) and with `--set selftrain.teacher=motion`
# (arm `motion`, the default since: steering pseudo-labels from a ridge of the
# parent's prediction and the recording's future optical flow, fitted on the N labelled
# frames), each member on 2,000 unlabeled frames for 6 student epochs as measured (pinned:
# the command's self-training defaults to one network, 6,000 and 4 since), timed by
# /usr/bin/time (CPU s, wall, load before and after in OUT/RUN.time); each network scored as
# saved on the test block (`evaluate --split test --json`) and on the validation blocks of
# both recordings (benchmarks/fit_sim/val_r.py; read the line of the network's own
# recording). ARMS="motion network" by default; FRAMES=100 by default.
#
#   bash benchmarks/motion_teacher.sh REAL_DIR OUT TUB [SEED...]
set -u
REAL=$1
OUT=$2
TUB=$3
shift 3
SEEDS=${*:-0 1 2}
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
N=${FRAMES:-100}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
for seed in $SEEDS; do
  for arm in ${ARMS:-motion network}; do
    d=$OUT/$TUB-n$N-$arm-s$seed
    if [ ! -f "$d/model.json" ]; then
      extra="--pseudo-label --ensemble-with pilotnet-styles --set selftrain.teacher=$arm"
      extra+=" --set selftrain.max_frames=2000 --set selftrain.epochs=6"
      { date -u; uptime; } > "$d.time"
      # shellcheck disable=SC2086
      /usr/bin/time -a -o "$d.time" -f "user %U s, system %S s, wall %e s" \
        $S finetune --checkpoint pilotnet-recipe --data "$REAL/$TUB" --frames "$N" \
        --seed "$seed" $extra --out "$d" > "$d.log" 2>&1 || echo "failed: $d"
      { date -u; uptime; } >> "$d.time"
    fi
    [ -f "$d-test.json" ] || $S evaluate --checkpoint "$d" --data "$REAL/$TUB" --split test \
      --json "$d-test.json" > "$d-test.log" 2>&1 || echo "failed: $d-test"
  done
done
$PY "$(dirname "$0")/fit_sim/val_r.py" "$OUT/$TUB-n$N-val.json" "$REAL" "$OUT/$TUB-n$N-"*-s*/
