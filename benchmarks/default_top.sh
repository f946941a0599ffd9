#!/bin/bash
# Issue 15 at the top of the learning curve: `finetune`'s default (every option left out)
# against the same network from scratch
# (`--from-scratch`, the scratch of bench_ladder.py and learning_curve_top.sh), at N = 1,000
# and every training frame ("all": no --frames), one cell per recording, N, arm and seed. Each
# network is scored as saved on the validation block (65-80%: choose on it) and on the test
# block (last 20%: report only), `evaluate --split val|test --json`; each finetune is timed
# (wall, user and system CPU s, load before and after in CELL.time).
# ARMS: `default`, the command as it is (since the student merge, 2026-12-01: one network
# self-training with the motion teacher on 6,000 unlabeled frames for 4 epochs where 1,000+
# training frames are left unlabelled, else the two-network ensemble from pilotnet-recipe);
# `ens2k6`, the default docs/transfer.md's N = 1,000 rows measured (main at 0029c80: the
# ensemble, each member self-training on 2,000 frames for 6 epochs; at every frame, where
# nothing is left to pseudo-label, the same command as `default`); `scratch`.
#
#   SEEDS="0 1 2" NS="1000 all" ARMS="default scratch" \
#     bash benchmarks/default_top.sh REAL_DIR OUT [TUB...]
#
# OUT gets one checkpoint folder per cell (TUB-nN-ARM-sSEED), its finetune log, CELL.time and
# CELL/val.json, CELL/test.json; OUT/summary.tsv a line per scored cell. A rerun skips scored
# cells and resumes an interrupted finetune. The order is seed-major (every recording, N and
# arm of seed 0 first), so a queue cut short still pairs each default with its scratch.
set -u
REAL=$1
OUT=$2
shift 2
TUBS=${*:-usi-track-a carpet-walls}
SEEDS=${SEEDS:-0 1 2}
NS=${NS:-1000 all}
ARMS=${ARMS:-default scratch}
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
score() {  # score DIR TUB SPLIT
  [ -f "$1/$3.json" ] && return
  $S evaluate --checkpoint "$1" --data "$REAL/$2" --split "$3" --n-boot 300 \
    --json "$1/$3.json" > "$1.$3.log" 2>&1 || echo "evaluate failed: $1 $3 (see $1.$3.log)"
}
cell() {  # cell TUB N ARM SEED
  local tub=$1 n=$2 arm=$3 seed=$4 d args=() resume=
  d=$OUT/$tub-n$n-$arm-s$seed
  [ -f "$d/test.json" ] && [ -f "$d/val.json" ] && return
  [ "$n" = all ] || args+=(--frames "$n")
  case $arm in
    default) ;;
    ens2k6)
      [ "$n" = all ] ||
        args+=(--ensemble-with pilotnet-styles --set selftrain.max_frames=2000 --set selftrain.epochs=6)
      ;;
    scratch) args+=(--from-scratch) ;;
    *) echo "unknown arm $arm" >&2; return 1 ;;
  esac
  if [ ! -f "$d/model.json" ]; then
    [ -d "$d" ] && resume=--resume
    echo "$(date -u +%T) start $d load $(cut -d' ' -f1-3 /proc/loadavg)"
    { date -u; uptime; } >> "$d.time"
    # shellcheck disable=SC2086
    /usr/bin/time -a -o "$d.time" -f "%e s wall %U s user %S s sys" $S finetune \
      --checkpoint pilotnet-recipe --data "$REAL/$tub" --seed "$seed" --out "$d" $resume \
      "${args[@]}" >> "$d.log" 2>&1 || { echo "failed: $d (see $d.log)"; return; }
    { date -u; uptime; } >> "$d.time"
    tail -n 3 "$d.time" | head -n 1
  fi
  score "$d" "$tub" val
  score "$d" "$tub" test
  echo "$(date -u +%T) scored $d load $(cut -d' ' -f1-3 /proc/loadavg)"
}
for seed in $SEEDS; do
  for n in $NS; do
    for tub in $TUBS; do
      for arm in $ARMS; do
        cell "$tub" "$n" "$arm" "$seed"
      done
    done
  done
done
"$PY" - "$OUT" > "$OUT/summary.tsv.tmp" <<'PY' && mv "$OUT/summary.tsv.tmp" "$OUT/summary.tsv"
import json, re, sys
from pathlib import Path
print("cell\twall_s\tuser_s\tval_r2\tval_r\ttest_r2\ttest_r")
for d in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "test.json").is_file()):
    timing = Path(f"{d}.time").read_text() if Path(f"{d}.time").is_file() else ""
    t = re.findall(r"([\d.]+) s wall ([\d.]+) s user", timing)
    row = [d.name, *(t[-1] if t else ("?", "?"))]
    for split in ("val", "test"):
        f = d / f"{split}.json"
        m = json.loads(f.read_text())["metrics"] if f.is_file() else None
        for k in ("steering_r2", "steering_pearson_r"):
            row.append(f"{m[k]['value']:.3f}" if m else "-")
    print("\t".join(row))
PY
cat "$OUT/summary.tsv"
echo "$(date -u +%T) done"
