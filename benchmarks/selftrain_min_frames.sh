#!/bin/bash
# How many unlabeled frames self-training needs before it helps (the default's threshold,
# commands.finetune.SELFTRAIN_MIN_UNLABELED): for each M and seed, one network fine-tuned on
# 100 labelled frames of TUB with `--pseudo-label --set selftrain.max_frames=M --set
# selftrain.teacher=network` (the network teacher the threshold was measured with, before the
# motion teacher became --pseudo-label's default; TEACHER=motion for that one) and the 6
# student epochs it was measured with (the command's default since: 4); then every
# student and its teacher (OUT/.../teacher) scored as saved on the validation blocks of both
# recordings (benchmarks/fit_sim/val_r.py; read the line of the network's own recording).
#
#   bash benchmarks/selftrain_min_frames.sh REAL_DIR OUT TUB [M...]   (seeds: SEEDS="0 1 2")
set -u
REAL=$1
OUT=$2
TUB=$3
shift 3
MS=${*:-500 1000 2000}
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
for m in $MS; do
  for seed in ${SEEDS:-0 1 2}; do
    d=$OUT/$TUB-m$m-s$seed
    [ -f "$d/model.json" ] && continue
    echo "$(date -u +%T) start $d load $(cut -d' ' -f1-3 /proc/loadavg)"
    /usr/bin/time -f "%e s wall %U s user" $S finetune --checkpoint pilotnet-recipe \
      --data "$REAL/$TUB" --frames 100 --seed "$seed" --ensemble-with none --pseudo-label \
      --set "selftrain.max_frames=$m" --set "selftrain.teacher=${TEACHER:-network}" \
      --set selftrain.epochs=6 --out "$d" > "$d.log" 2>&1 || echo "failed: $d"
    tail -n 1 "$d.log"
  done
done
$PY "$(dirname "$0")/fit_sim/val_r.py" "$OUT/$TUB-val.json" "$REAL" "$OUT/$TUB-m"*-s*/ \
  "$OUT/$TUB-m"*-s*/teacher/
