#!/bin/bash
# Fourier domain adaptation arms of the warm start (docs/fit-sim.md, "Fourier domain adaptation"):
# pilotnet-recipe continued 2 epochs (warm.yaml) on one sim recording, a share of its sim frames
# restyled toward a real recording's TRAINING frames (first 65%) at window beta; then r and R² on
# both recordings' validation blocks (val_r.py; the test block is untouched).
# usage: bash benchmarks/fit_sim/fda.sh OUT SIM_TUB [REAL_DIR]
#   ARMS (default below): control, or TUB:BETA[:SHARE] (e.g. usi-track-a:0.05, share 0.5 unless
#   given); SEED (default 0): the training seed, a suffix -s<SEED> on the arm's folder when not 0.
#   OUT/ARM/{pre20k,val.json}; each step is skipped when its output exists (resumable).
set -e
out=$1; sim=$2; real=${3:-../shared/data/real}
arms=${ARMS:-control usi-track-a:0.05 carpet-walls:0.05 usi-track-a:0.02 carpet-walls:0.02 \
usi-track-a:0.09 carpet-walls:0.09}
seed=${SEED:-0}; suffix=$([ "$seed" = 0 ] || echo "-s$seed")
here=$(cd "$(dirname "$0")" && pwd); bin=${SIM2REAL:-.venv/bin/sim2real}
export OMP_NUM_THREADS=1
stamp() { echo "$1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
for arm in $arms; do
  if [ "$arm" = control ]; then
    dir=$out/control$suffix; fda=()
  else
    IFS=: read -r tub beta share <<< "$arm"
    dir=$out/fda-$tub-b$beta${share:+-share$share}$suffix
    fda=(--real-unlabeled "$real/$tub" --fda-beta "$beta" --set "align.span=[0,0.65]"
         --set "align.fda_share=${share:-0.5}" --set align.coral_weight=0 --set align.adabn=false)
  fi
  mkdir -p "$dir"
  stamp "$dir start"
  [ -f "$dir/pre20k/model.safetensors" ] || nice -n 5 $bin pretrain --data "$sim" --resume \
    --out "$dir/pre20k" --config "$here/warm.yaml" "${fda[@]}" --seed "$seed" \
    --set train.progress=false > "$dir/pretrain.log" 2>&1
  stamp "$dir pretrained"
  [ -f "$dir/val.json" ] || nice -n 5 "$(dirname "$bin")/python" "$here/val_r.py" \
    "$dir/val.json" "$real" "$dir/pre20k" > "$dir/val.log" 2>&1
  stamp "$dir done"
done
