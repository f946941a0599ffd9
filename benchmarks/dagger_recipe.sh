#!/bin/bash
# DAgger from the shipped pilotnet-recipe at the network's own speed (issue 20), on the
# two-lane worlds it was trained on (experiments/configs/policy_two_lane_worlds.yaml).
#
# 1. the expert recording DAgger keeps training on: 20,000 frames, seed 31, the recording
#    defaults (perturbation 0.2, 100-frame episodes);
# 2. one `sim2real dagger` run per config (experiments/configs/dagger_recipe.yaml plus the
#    --set overrides of each arm below), each iteration judged on the selection tracks
#    (seeds 20000-20039, eval_seed_start) -- the iteration and arm are chosen there;
# 3. with CHOSEN=RUN_NAME/iter_NN: the start and the chosen network drive the held-out seeds
#    10000-10119 in pairs (benchmarks/bench_policy_finetune.py: McNemar's exact test);
# 4. with GAINS / GAIN_HELDOUT: the steering-gain control (below).
# Timings and load: OUT/*.time; per-iteration seconds and load in each run's dagger.json.
#
#   SIM2REAL=.venv/bin/sim2real PYTHON=.venv/bin/python bash benchmarks/dagger_recipe.sh OUT
#   CHOSEN=B/iter_02 ARMS=none ... bash benchmarks/dagger_recipe.sh OUT
#   GAINS="1.50 1.75 2.00" GAIN_HELDOUT=2.00 ARMS=none ... bash benchmarks/dagger_recipe.sh OUT
set -u
OUT=$1
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPEC=$ROOT/experiments/configs/policy_two_lane_worlds.yaml
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

# shellcheck source=benchmarks/timed.sh
source "$ROOT/benchmarks/timed.sh"  # timed NAME COMMAND...

EXPERT=$OUT/expert20k
if ! grep -q '"current_index": 20000' "$EXPERT/manifest.json" 2>/dev/null; then
  resume=""
  [ -f "$EXPERT/manifest.json" ] && resume="--resume"
  timed expert20k "$S" simulate --out "$EXPERT" --frames 20000 --seed 31 --workers 2 \
    --set randomization="$SPEC" --no-progress $resume
fi

# arm name and its overrides of dagger_recipe.yaml (ARMS="A B" to run a subset)
declare -A SETS=(
  [A]=""
  [B]="--set beta=[0.0] --set train.lr=3e-4 --set train.epochs=3 --set frames=6000 --set expert_frames=10000 --set iterations=3"
)
for arm in ${ARMS:-A B}; do  # (ARMS=none: only the held-out drive)
  [ -n "${SETS[$arm]+set}" ] || continue
  run=$OUT/$arm
  resume=""
  [ -f "$run/config.yaml" ] && resume="--resume"
  # shellcheck disable=SC2086
  timed "dagger-$arm" "$S" dagger --config "$ROOT/experiments/configs/dagger_recipe.yaml" \
    --data "$EXPERT" --set randomization="$SPEC" --out "$run" --no-progress $resume ${SETS[$arm]}
  tail -n 8 "$OUT/dagger-$arm.log"
done

if [ -n "${CHOSEN:-}" ]; then
  timed "heldout-$(basename "$(dirname "$OUT/$CHOSEN")")" "$PY" \
    "$ROOT/benchmarks/bench_policy_finetune.py" --start pilotnet-recipe \
    --end "$OUT/$CHOSEN/checkpoint" --out "$OUT/heldout" --seed-start 10000 --episodes 120 \
    --randomization "$SPEC"
  cat "$OUT/heldout/summary.json"
fi

# the steering-gain control (GAINS="1.50 1.75 2.00"): the start with its steering scaled to
# each total gain, no DAgger, on the selection tracks; GAIN_HELDOUT=2.00 also drives that one
# on the held-out seeds against the start's drives saved by the CHOSEN drive (heldout/)
for g in ${GAINS:-}; do
  [ -f "$OUT/recipe-gain$g/model.json" ] || "$PY" "$ROOT/benchmarks/steering_gain.py" \
    pilotnet-recipe "$g" "$OUT/recipe-gain$g"
  [ -f "$OUT/sel-gain$g.json" ] || timed "sel-gain$g" "$S" evaluate --checkpoint \
    "$OUT/recipe-gain$g" --sim --episodes 40 --seed-start 20000 --randomization "$SPEC" \
    --json "$OUT/sel-gain$g.json"
done
if [ -n "${GAIN_HELDOUT:-}" ]; then
  timed "heldout-gain$GAIN_HELDOUT" "$PY" "$ROOT/benchmarks/bench_policy_finetune.py" \
    --start pilotnet-recipe --end "$OUT/recipe-gain$GAIN_HELDOUT" \
    --out "$OUT/heldout-gain$GAIN_HELDOUT" --seed-start 10000 --episodes 120 \
    --randomization "$SPEC" --reuse-start "$OUT/heldout"
fi
