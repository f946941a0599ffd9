#!/bin/bash
# The top of the learning curve: the shipped network fine-tuned with `finetune`'s defaults
# against the same network from scratch, at N = 1,000 and every training frame, seed 0, on
# each real recording; plus, at N = 1,000, the lowest-CV rung instead of auto's 1-SE pick
# (ladder.one_se=false). Every network is scored on the test block (evaluate --split test).
#
#   bash benchmarks/learning_curve_top.sh REAL_DIR OUT [TUB...]
#
# REAL_DIR holds the tubs (e.g. ../shared/data/real); OUT gets one checkpoint folder per
# cell, its log and eval.json. A rerun skips finished cells. Single networks throughout
# (--ensemble-with none), as measured on 2026-11-30.
set -u
REAL=$1
OUT=$2
shift 2
TUBS=${*:-usi-track-a carpet-walls}
S=${SIM2REAL:-sim2real}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
cell() {  # cell NAME FINETUNE-ARGS...
  local d=$OUT/$1 tub=$2
  shift 2
  [ -f "$d/eval.json" ] && return
  echo "$(date -u +%T) start $d load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "%e s wall %U s user %S s sys" $S finetune --checkpoint pilotnet-recipe \
    --data "$REAL/$tub" --seed 0 --ensemble-with none --pseudo-label none --out "$d" "$@" > "$d.log" 2>&1 \
    || { echo "failed: $d (see $d.log)"; return; }
  tail -1 "$d.log"
  $S evaluate --checkpoint "$d" --data "$REAL/$tub" --split test --n-boot 300 \
    --json "$d/eval.json" > "$d.eval.log" 2>&1
  python3 - "$d" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/eval.json"))["metrics"]
print(sys.argv[1], "R2", round(m["steering_r2"]["value"], 3), "r", round(m["steering_pearson_r"]["value"], 3))
PY
}
for tub in $TUBS; do
  cell "$tub-transfer-1000" "$tub" --frames 1000
  cell "$tub-scratch-1000" "$tub" --frames 1000 --from-scratch
  cell "$tub-transfer-lowest-1000" "$tub" --frames 1000 --set ladder.one_se=false
  cell "$tub-transfer-all" "$tub"
  cell "$tub-scratch-all" "$tub" --from-scratch
done
echo "$(date -u +%T) done"
