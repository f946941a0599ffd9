#!/bin/bash
# Closing the student-teacher gap of `finetune`'s self-training (issue 15): arms of the
# 100-frame default, each `finetune --checkpoint pilotnet-recipe --frames N --seed S` plus the
# arm's flags (the command's own default path otherwise: self-training with the motion
# teacher), timed by /usr/bin/time (CPU s, wall, load before and after in OUT/RUN.time), and
# scored as saved on the validation blocks (benchmarks/fit_sim/val_r.py, OUT/RUN-val.json;
# read the line of the network's own recording). TEST=1 also scores the test block
# (`evaluate --split test --json OUT/RUN-test.json`): only for an arm already chosen on the
# validation blocks. `python benchmarks/motion_summary.py OUT` tabulates.
#
#   ARMS="one4k one6ke4" bash benchmarks/student_gap.sh REAL_DIR OUT TUB [SEED...]
#
# Arms (name: flags added to the command; each names the unlabeled frames, epochs and
# ensemble it was measured with, which the command's defaults have changed since):
#   default   the command as it is (when measured in docs/selftrain.md: the ensemble of two,
#             2,000 unlabeled frames, 6 epochs; since then the same as one6ke4)
#   one4k     one network (--ensemble-with none) on 4,000 unlabeled frames
#   one4kraw  one4k without the savgol smoothing of the pseudo-labels (selftrain.smooth=none)
#   one6ke4   one network on 6,000 unlabeled frames, 4 student epochs
#   one6k     one network on 6,000 unlabeled frames (6 student epochs)
#   one8ke3   one network on 8,000 unlabeled frames (all of usi-track-a's 7,415), 3 epochs
#   one3ke8   one network on 3,000 unlabeled frames, 8 student epochs
#   ens4ke3   the ensemble of two, each on 4,000 unlabeled frames, 3 student epochs
# Round two (the default since "Closing the student-teacher gap" is one6ke4; these change it):
#   one6ke6   one network on 6,000 unlabeled frames, 6 student epochs
#   rep2      the default with the labelled frames twice an epoch (selftrain.label_repeat=2)
#   rep10     the default with the labelled frames 10 times an epoch
#   parent    the default with the student starting from the re-headed parent
#   win9      the default with the pseudo-labels smoothed over 9 frames, not 21
#   win31     the default with the pseudo-labels smoothed over 31 frames
#   spread    the default with the smoothed pseudo-labels stretched back to their raw spread
#   oracle    diagnostic: the default with the unlabeled frames' TRUE steering labels in
#             place of the motion teacher's, unsmoothed (benchmarks/oracle_student.py)
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
HERE=$(dirname "$0")
mkdir -p "$OUT"
flags() {
  case $1 in
    default) echo "" ;;
    one4k) echo "--ensemble-with none --set selftrain.max_frames=4000 --set selftrain.epochs=6" ;;
    one4kraw) echo "--ensemble-with none --set selftrain.max_frames=4000 --set selftrain.epochs=6 --set selftrain.smooth=none" ;;
    one6k) echo "--ensemble-with none --set selftrain.max_frames=6000 --set selftrain.epochs=6" ;;
    one8ke3) echo "--ensemble-with none --set selftrain.max_frames=8000 --set selftrain.epochs=3" ;;
    one6ke4) echo "--ensemble-with none --set selftrain.max_frames=6000 --set selftrain.epochs=4" ;;
    one3ke8) echo "--ensemble-with none --set selftrain.max_frames=3000 --set selftrain.epochs=8" ;;
    ens4ke3) echo "--ensemble-with pilotnet-styles --set selftrain.max_frames=4000 --set selftrain.epochs=3" ;;
    one6ke6) echo "--ensemble-with none --set selftrain.max_frames=6000 --set selftrain.epochs=6" ;;
    rep2) echo "--set selftrain.label_repeat=2" ;;
    rep10) echo "--set selftrain.label_repeat=10" ;;
    parent) echo "--set selftrain.init=parent" ;;
    win9) echo "--set selftrain.window=9" ;;
    win31) echo "--set selftrain.window=31" ;;
    spread) echo "--set selftrain.keep_spread=true" ;;
    oracle) echo "--set selftrain.smooth=none" ;;
    *) echo "unknown arm $1" >&2; exit 2 ;;
  esac
}
for arm in ${ARMS:-one4k one6ke4}; do
  extra=$(flags "$arm") || exit 2
  cmd="$S"
  [ "$arm" = oracle ] && cmd="$PY $HERE/oracle_student.py"
  for seed in $SEEDS; do
    d=$OUT/$TUB-n$N-$arm-s$seed
    if [ ! -f "$d/model.json" ]; then
      { date -u; uptime; } > "$d.time"
      # shellcheck disable=SC2086
      /usr/bin/time -a -o "$d.time" -f "user %U s, system %S s, wall %e s" \
        $cmd finetune --checkpoint pilotnet-recipe --data "$REAL/$TUB" --frames "$N" \
        --seed "$seed" $extra --set train.progress=false --out "$d" > "$d.log" 2>&1 \
        || echo "failed: $d"
      { date -u; uptime; } >> "$d.time"
    fi
    [ -f "$d-val.json" ] || $PY "$HERE/fit_sim/val_r.py" "$d-val.json" "$REAL" "$d" \
      > "$d-val.log" 2>&1 || echo "failed: $d-val"
    if [ "${TEST:-0}" = 1 ] && [ ! -f "$d-test.json" ]; then
      $S evaluate --checkpoint "$d" --data "$REAL/$TUB" --split test --json "$d-test.json" \
        > "$d-test.log" 2>&1 || echo "failed: $d-test"
    fi
  done
done
