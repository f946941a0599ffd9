#!/bin/bash
# One warm-start arm (docs/fit-sim.md): pilotnet-recipe continued on an existing 20k sim recording,
# then validation r on both real recordings (val_r.py; the test block is untouched).
# usage: bash benchmarks/fit_sim/warm.sh OUT SIM_TUB EPOCHS LR [REAL_DIR]
#   OUT/{pre20k,val.json}; each step is skipped when its output exists (resumable).
set -e
out=$1; sim=$2; epochs=$3; lr=$4; real=${5:-../shared/data/real}
here=$(cd "$(dirname "$0")" && pwd); bin=${SIM2REAL:-.venv/bin/sim2real}
export OMP_NUM_THREADS=1
mkdir -p "$out"
stamp() { echo "$1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
stamp "$out start"
[ -f "$out/pre20k/model.safetensors" ] || nice -n 5 $bin pretrain --data "$sim" --resume \
  --out "$out/pre20k" --config "$here/warm.yaml" --epochs "$epochs" --set train.lr="$lr" \
  --set train.progress=false > "$out/pretrain.log" 2>&1
stamp "$out pretrained"
[ -f "$out/val.json" ] || nice -n 5 "$(dirname "$bin")/python" "$here/val_r.py" "$out/val.json" \
  "$real" "$out/pre20k" > "$out/val.log" 2>&1
stamp "$out done"
