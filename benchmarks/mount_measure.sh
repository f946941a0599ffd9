#!/bin/bash
# Another camera mount (docs/transfer.md, "Another camera mount: stand-ins"): on each tub
# (stand-ins written by benchmarks/mount_standin.py, or an original), for each seed,
#   ft:      `finetune --checkpoint pilotnet-recipe --frames 100` with every other option left
#            out (the default: self-training with the motion teacher, 6,000 x 4)
#   scratch: the same with --from-scratch
#   adapt:   `sim2real adapt --checkpoint pilotnet-recipe` (zero labels; the training part)
# each timed by /usr/bin/time (CPU s, wall, load before and after in OUT/RUN.time), then scored
# by benchmarks/adapt/score.py on the tub's validation (65-80%) and test (last 20%) blocks:
# ft and scratch as saved (OUT/TUB-ft-scores.json), pilotnet-recipe zero-shot and adapt
# mirror-averaged as docs/adapt.md scores them (OUT/TUB-zs-scores.json). Choose on val_*.
#
#   STEPS="zs ft scratch adapt" bash benchmarks/mount_measure.sh OUT "SEEDS" TUB_PATH...
set -u
OUT=$1
SEEDS=$2
shift 2
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
HERE=$(dirname "$0")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
timed() {  # timed RUN_DIR COMMAND...: skipped when RUN_DIR/model.json exists
  local d=$1
  shift
  [ -f "$d/model.json" ] && return 0
  { date -u; uptime; } > "$d.time"
  /usr/bin/time -a -o "$d.time" -f "user %U s, system %S s, wall %e s" "$@" \
    > "$d.log" 2>&1 || echo "failed: $d"
  { date -u; uptime; } >> "$d.time"
}
for step in ${STEPS:-zs ft scratch adapt}; do
  for tub in "$@"; do
    name=$(basename "$tub")
    runs=()
    for seed in $SEEDS; do
      case $step in
        zs) ;;
        ft | scratch)
          d=$OUT/$name-$step-s$seed
          extra=()
          [ "$step" = scratch ] && extra=(--from-scratch)
          timed "$d" $S finetune --checkpoint pilotnet-recipe --data "$tub" --frames 100 \
            --seed "$seed" "${extra[@]}" --set train.progress=false --out "$d"
          runs+=("$d") ;;
        adapt)
          d=$OUT/$name-adapt-s$seed
          timed "$d" $S adapt --checkpoint pilotnet-recipe --real "$tub" --seed "$seed" \
            --cache-dir "${CACHE:-$OUT/cache}" --set train.progress=false --out "$d"
          runs+=("$d") ;;
        *) echo "unknown step $step" >&2; exit 2 ;;
      esac
    done
    case $step in
      zs) MIRROR=on $PY "$HERE/adapt/score.py" "$OUT/$name-zs-scores.json" "$tub" pilotnet-recipe ;;
      adapt) MIRROR=on $PY "$HERE/adapt/score.py" "$OUT/$name-zs-scores.json" "$tub" "${runs[@]}" ;;
      *) $PY "$HERE/adapt/score.py" "$OUT/$name-ft-scores.json" "$tub" "${runs[@]}" ;;
    esac
  done
done
