#!/bin/bash
# Zero-label adaptation (issue 16): `sim2real adapt --checkpoint pilotnet-recipe --real TUB`
# (finetune's training part of TUB only, no label read) for each arm and seed, timed by
# /usr/bin/time (CPU s, wall, load before and after in OUT/RUN.time); then every network and
# pilotnet-recipe scored on TUB's validation and test blocks by benchmarks/adapt/score.py
# (r and R² as saved on each block, and the test block's R² after an affine map fitted on the
# validation block). Choose on the val_* columns; the test block only reports.
# CKPT=PATH adapts PATH instead of pilotnet-recipe (SEED in PATH becomes the seed, e.g.
# CKPT=OUT/TUB-pc2-sSEED: a second round by hand).
# With FINETUNE="NAME=CKPT[,ARGS] ...", also `finetune --checkpoint CKPT ARGS --frames 100`
# (commas for spaces; SEED in CKPT becomes the seed, e.g. OUT/TUB-w07-sSEED), scored the same
# way; its self-training uses the network teacher docs/adapt.md's figures were made with
# (TEACHER=motion: finetune's default since the motion merge), on the 2,000 unlabeled frames
# for 6 student epochs they were measured with (finetune's default since the student merge:
# 6,000 and 4, which a --set selftrain.* would otherwise get; ST_FRAMES, ST_EPOCHS change it).
#
#   bash benchmarks/adapt_zero_label.sh REAL_DIR OUT TUB "SEEDS" ARM...
#   ARM: NAME:ARGS with commas for spaces, e.g. w05:--weight,0.5  f2k:--frames,2000
set -u
REAL=$1
OUT=$2
TUB=$3
SEEDS=$4
shift 4
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
runs=()
for seed in $SEEDS; do
  for arm in "$@"; do
    name=${arm%%:*}
    args=${arm#*:}
    d=$OUT/$TUB-$name-s$seed
    runs+=("$d")
    [ -f "$d/model.json" ] && continue
    parent=${CKPT:-pilotnet-recipe}
    { date -u; uptime; } > "$d.time"
    # shellcheck disable=SC2086
    /usr/bin/time -a -o "$d.time" -f "user %U s, system %S s, wall %e s" \
      $S adapt --checkpoint "${parent//SEED/$seed}" --real "$REAL/$TUB" --seed "$seed" ${args//,/ } \
      --cache-dir "${CACHE:-$OUT/cache}" --set train.progress=false --out "$d" > "$d.log" 2>&1 ||
      echo "failed: $d"
    { date -u; uptime; } >> "$d.time"
  done
done
for arm in ${FINETUNE:-}; do
  name=${arm%%=*}
  for seed in $SEEDS; do
    spec=${arm#*=}
    spec=${spec//SEED/$seed}
    teacher=(--set "selftrain.teacher=${TEACHER:-network}")  # (a --set selftrain.* turns it on)
    teacher+=(--set "selftrain.max_frames=${ST_FRAMES:-2000}" --set "selftrain.epochs=${ST_EPOCHS:-6}")
    [[ $spec == *--pseudo-label,none* ]] && teacher=()
    d=$OUT/$TUB-ft100-$name-s$seed
    runs+=("$d")
    [ -f "$d/model.json" ] && continue
    { date -u; uptime; } > "$d.time"
    # shellcheck disable=SC2086
    /usr/bin/time -a -o "$d.time" -f "user %U s, system %S s, wall %e s" \
      $S finetune --checkpoint ${spec//,/ } --data "$REAL/$TUB" --frames 100 --seed "$seed" \
      --set train.progress=false "${teacher[@]}" --out "$d" > "$d.log" 2>&1 || echo "failed: $d"
    { date -u; uptime; } >> "$d.time"
  done
done
$PY "$(dirname "$0")/adapt/score.py" "$OUT/$TUB-scores.json" "$REAL/$TUB" pilotnet-recipe \
  "${runs[@]}"
