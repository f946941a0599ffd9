#!/bin/bash
# Issue 15 at the every-frame end: the shipped network fine-tuned with `finetune`'s defaults
# (auto -> every stage, early stopping, once the tub has more frames than the ladder
# cross-validates) against the same network from scratch, on every training frame, one cell
# per seed. Each network is scored on the validation block (choose on it) and on the test
# block (report only): evaluate --split val|test --json.
#
#   SEEDS="1 2" ARMS="transfer scratch" bash benchmarks/transfer_vs_scratch_all.sh REAL_DIR OUT [TUB...]
#
# REAL_DIR holds the tubs (e.g. ../shared/data/real); OUT gets one checkpoint folder per
# cell (TUB-ARM-all-sSEED), its finetune log, val.json and test.json, and a summary line per
# cell in OUT/summary.tsv. A rerun skips finished cells and resumes an interrupted finetune.
# ARMS: transfer, scratch, and the every-stage variants named in `arm_args` below.
# Single networks throughout (--ensemble-with none).
set -u
REAL=$1
OUT=$2
shift 2
TUBS=${*:-usi-track-a}
SEEDS=${SEEDS:-1 2}
ARMS=${ARMS:-transfer scratch}
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
arm_args() {  # the finetune arguments of an arm
  case $1 in
    transfer) echo "" ;;
    scratch) echo "--from-scratch" ;;
    lrdecay*) echo "--set adapter.lr_decay=0.${1#lrdecay}" ;;  # lrdecay5: lr_decay 0.5
    *) echo "unknown arm $1" >&2; return 1 ;;
  esac
}
score() {  # score DIR TUB SPLIT
  $S evaluate --checkpoint "$1" --data "$REAL/$2" --split "$3" --n-boot 300 \
    --json "$1/$3.json" > "$1.$3.log" 2>&1 || echo "evaluate failed: $1 $3 (see $1.$3.log)"
}
cell() {  # cell TUB ARM SEED
  local tub=$1 arm=$2 seed=$3 d args resume=
  d=$OUT/$tub-$arm-all-s$seed
  [ -f "$d/test.json" ] && return
  args=$(arm_args "$arm") || return
  [ -d "$d" ] && resume=--resume
  if [ ! -f "$d/model.json" ]; then
    echo "$(date -u +%T) start $d load $(cut -d' ' -f1-3 /proc/loadavg)"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e s wall %U s user %S s sys" $S finetune --checkpoint pilotnet-recipe \
      --data "$REAL/$tub" --seed "$seed" --ensemble-with none --out "$d" $resume $args \
      >> "$d.log" 2>&1 || { echo "failed: $d (see $d.log)"; return; }
    tail -1 "$d.log"
  fi
  score "$d" "$tub" val
  score "$d" "$tub" test
  "$PY" - "$d" "$tub" "$arm" "$seed" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/summary.tsv" <<'PY'
import json, sys
d, tub, arm, seed, load = sys.argv[1:]
row = [tub, arm, seed]
for split in ("val", "test"):
    m = json.load(open(f"{d}/{split}.json"))["metrics"]
    row += [f"{m['steering_r2']['value']:.3f}", f"{m['steering_pearson_r']['value']:.3f}"]
print("\t".join([*row, load]))
PY
  tail -1 "$OUT/summary.tsv"
}
for seed in $SEEDS; do
  for tub in $TUBS; do
    for arm in $ARMS; do
      cell "$tub" "$arm" "$seed"
    done
  done
done
echo "$(date -u +%T) done"
