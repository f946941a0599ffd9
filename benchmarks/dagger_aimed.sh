#!/bin/bash
# DAgger aimed at pilotnet-recipe's failures (issue 20; experiments/configs/dagger_aimed.yaml).
#
# 1. the fixed calibration frames: a 5,000-frame expert recording of the two-lane worlds, seed
#    32 (recording defaults), and the start: pilotnet-recipe at steering gain 2.00;
# 2. one `sim2real dagger` run per arm (C: aimed recording + takeover + fixed calibration;
#    D: the fixed calibration alone, recordings as arm B's), each iteration judged on the
#    selection tracks 20000-20079;
# 3. CHOSEN=RUN/iter_NN: the chosen network drives the held-out seeds 10000-10119 paired with
#    the start drives saved in REUSE (last round's OUT/heldout: pilotnet-recipe), and seeds
#    30000-30079 paired with REUSE2 (last round's OUT/fresh-gain2.00);
# EXPERT: the 20,000-frame expert tub of benchmarks/dagger_recipe.sh. Times and load: OUT/*.time.
#
#   EXPERT=.../expert20k SIM2REAL=.venv/bin/sim2real PYTHON=.venv/bin/python \
#       bash benchmarks/dagger_aimed.sh OUT
set -u
OUT=$1
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPEC=$ROOT/experiments/configs/policy_two_lane_worlds.yaml
HARD=$ROOT/experiments/configs/policy_two_lane_hard_worlds.yaml
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

# shellcheck source=benchmarks/timed.sh
source "$ROOT/benchmarks/timed.sh"  # timed NAME COMMAND...

CALIB=$OUT/calib5k
grep -q '"current_index": 5000' "$CALIB/manifest.json" 2>/dev/null || timed calib5k "$S" \
  simulate --out "$CALIB" --frames 5000 --seed 32 --workers 2 --set randomization="$SPEC" \
  --no-progress
START=$OUT/recipe-gain2.00
[ -f "$START/model.json" ] || "$PY" "$ROOT/benchmarks/steering_gain.py" pilotnet-recipe 2.00 \
  "$START"

declare -A SETS=(
  [C]=""
  [D]="--set record_randomization=null --set takeover=null"
)
for arm in ${ARMS:-C D}; do  # (ARMS=none: only the held-out drives)
  [ -n "${SETS[$arm]+set}" ] || continue
  run=$OUT/$arm
  resume=""
  [ -f "$run/config.yaml" ] && resume="--resume"
  # shellcheck disable=SC2086
  timed "dagger-$arm" "$S" dagger --config "$ROOT/experiments/configs/dagger_aimed.yaml" \
    --data "$EXPERT" --set randomization="$SPEC" --set record_randomization="$HARD" \
    --set checkpoint="$START" --set "calibration_data=[$CALIB]" --out "$run" --no-progress \
    $resume ${SETS[$arm]}
  tail -n 8 "$OUT/dagger-$arm.log"
done

if [ -n "${CHOSEN:-}" ]; then
  name=$(echo "$CHOSEN" | tr / -)
  timed "heldout-$name" "$PY" "$ROOT/benchmarks/bench_policy_finetune.py" \
    --start pilotnet-recipe --end "$OUT/$CHOSEN/checkpoint" --out "$OUT/heldout-$name" \
    --seed-start 10000 --episodes 120 --randomization "$SPEC" --reuse-start "$REUSE"
  cat "$OUT/heldout-$name/summary.json"
  if [ -n "${REUSE2:-}" ]; then
    timed "fresh-$name" "$PY" "$ROOT/benchmarks/bench_policy_finetune.py" \
      --start pilotnet-recipe --end "$OUT/$CHOSEN/checkpoint" --out "$OUT/fresh-$name" \
      --seed-start 30000 --episodes 80 --randomization "$SPEC" --reuse-start "$REUSE2"
    cat "$OUT/fresh-$name/summary.json"
  fi
fi
