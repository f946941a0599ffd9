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
# cell (TUB-ARM-all-sSEED), its finetune log, val.json and test.json; OUT/summary.tsv gets a
# line per finished cell in OUT: epochs run, best epoch, the card's val loss, steering R^2
# and r on the validation block, the same on the test block. A rerun skips finished cells and
# resumes an interrupted finetune.
# ARMS: transfer, scratch, each with modifiers (`arm_args` below): transfer+p0 trains every
# epoch and keeps the best (train.patience 0), transfer+lrd5 sets adapter.lr_decay 0.5.
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
arm_args() {  # the finetune arguments of an arm: BASE[+MOD...], e.g. transfer+p0
  local base=${1%%+*} mods mod
  case $base in
    transfer) ;;
    scratch) echo "--from-scratch" ;;
    *) echo "unknown arm $1" >&2; return 1 ;;
  esac
  [ "$base" = "$1" ] && return
  IFS=+ read -ra mods <<< "${1#*+}"
  for mod in "${mods[@]}"; do
    case $mod in
      p[0-9]*) echo "--set train.patience=${mod#p}" ;;  # p0: every epoch, the best kept
      lrd[0-9]*) echo "--set adapter.lr_decay=0.${mod#lrd}" ;;  # lrd5: lr_decay 0.5
      *) echo "unknown modifier $mod in arm $1" >&2; return 1 ;;
    esac
  done
}
score() {  # score DIR TUB SPLIT
  $S evaluate --checkpoint "$1" --data "$REAL/$2" --split "$3" --n-boot 300 \
    --json "$1/$3.json" > "$1.$3.log" 2>&1 || echo "evaluate failed: $1 $3 (see $1.$3.log)"
}
cell() {  # cell TUB ARM SEED
  local tub=$1 arm=$2 seed=$3 d args base resume=
  d=$OUT/$tub-$arm-all-s$seed
  [ -f "$d/test.json" ] && return
  args=$(arm_args "$arm") || return
  [ -d "$d" ] && resume=--resume
  base=$OUT/$tub-${arm%+p*}-all-s$seed  # transfer+p0 -> transfer: the same run, other patience
  if [[ ${arm##*+} == p[0-9]* && $arm == *+* && -f $base/model.json && ! -d $d ]]; then
    # patience decides only when training stops, never a step: continue the base run's state
    mkdir -p "$d" && cp -r "$base"/. "$d"/ && rm -f "$d"/val.json "$d"/test.json "$d"/model.json
    resume=--resume
    echo "$(date -u +%T) $d continues $base"
  fi
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
  echo "$(date -u +%T) scored $d load $(cut -d' ' -f1-3 /proc/loadavg)"
}
for seed in $SEEDS; do
  for tub in $TUBS; do
    for arm in $ARMS; do
      cell "$tub" "$arm" "$seed"
    done
  done
done
"$PY" - "$OUT" > "$OUT/summary.tsv.tmp" <<'PY' && mv "$OUT/summary.tsv.tmp" "$OUT/summary.tsv"
import json, sys
from pathlib import Path
print("cell\tepochs_run\tbest_epoch\tcard_val_loss\tval_r2\tval_r\ttest_r2\ttest_r")
for d in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "test.json").is_file()):
    card = json.loads((d / "model.json").read_text())
    phase = card["history"][-1]["phases"][-1]
    row = [d.name, phase["epochs_run"], phase["best_epoch"]]
    row.append(f"{card['metrics']['best_val_loss']:.4f}")
    for split in ("val", "test"):
        m = json.loads((d / f"{split}.json").read_text())["metrics"]
        row += [f"{m['steering_r2']['value']:.3f}", f"{m['steering_pearson_r']['value']:.3f}"]
    print("\t".join(map(str, row)))
PY
cat "$OUT/summary.tsv"
echo "$(date -u +%T) done"
