#!/bin/bash
# auto's 1-SE pick against the lowest-CV rung, by N: for each seed, `finetune` from the
# shipped network once with the 1-SE rule forced (one_se_max_frames past any N) and once
# with ladder.one_se=false; then every network is scored on the validation blocks of both
# recordings (benchmarks/fit_sim/val_r.py; read the line of the network's own recording).
#
#   bash benchmarks/one_se_by_n.sh REAL_DIR OUT TUB N [SEED...]
set -u
REAL=$1
OUT=$2
TUB=$3
N=$4
shift 4
SEEDS=${*:-0 1 2}
S=${SIM2REAL:-sim2real}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
for seed in $SEEDS; do
  for rule in onese lowest; do
    d=$OUT/$TUB-n$N-$rule-s$seed
    [ -f "$d/model.json" ] && continue
    set_rule="ladder.one_se_max_frames=1000000"
    [ $rule = lowest ] && set_rule="ladder.one_se=false"
    $S finetune --checkpoint pilotnet-recipe --data "$REAL/$TUB" --frames "$N" --seed "$seed" \
      --ensemble-with none --pseudo-label none --set "$set_rule" --out "$d" > "$d.log" 2>&1 || echo "failed: $d"
  done
done
$PY "$(dirname "$0")/fit_sim/val_r.py" "$OUT/$TUB-n$N-val.json" "$REAL" "$OUT/$TUB-n$N-"*/
