#!/bin/bash
# `finetune`'s default as it is now (every option left out: since the student merge,
# 2026-12-01, one network self-training on 6,000 unlabeled frames for 4 epochs where 1,000+
# frames are left over, else the two-network ensemble from pilotnet-recipe; the figures
# measured before it were of the ensemble, each member self-training on 2,000 for 6) on N
# frames of a real recording, one run per seed, each scored on the test block (`evaluate
# --split test --json`). EXTRA adds flags: EXTRA="--ensemble-with pilotnet-styles --set
# selftrain.max_frames=2000 --set selftrain.epochs=6" is the default docs/transfer.md's curves
# measured (with --set selftrain.teacher=network: the network-teacher curve).
#
#   bash benchmarks/default_at_n.sh REAL_DIR OUT TUB N [SEED...]
set -u
REAL=$1
OUT=$2
TUB=$3
N=$4
shift 4
S=${SIM2REAL:-sim2real}
mkdir -p "$OUT"
for seed in ${*:-0 1 2}; do
  d=$OUT/$TUB-n$N-s$seed
  echo "$(date -u +%T) $d load $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -f "$d/model.json" ] || /usr/bin/time -f "%e s wall %U s user" $S finetune \
    --checkpoint pilotnet-recipe --data "$REAL/$TUB" --frames "$N" --seed "$seed" ${EXTRA:-} \
    --out "$d" > "$d.log" 2>&1 || { echo "failed: $d (see $d.log)"; continue; }
  tail -n 1 "$d.log"
  [ -f "$d-test.json" ] || $S evaluate --checkpoint "$d" --data "$REAL/$TUB" --split test \
    --json "$d-test.json" > "$d-test.log" 2>&1 || echo "failed: $d-test"
  python3 - "$d-test.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(sys.argv[1], "R2", round(m["steering_r2"]["value"], 3), "r", round(m["steering_pearson_r"]["value"], 3))
PY
done
