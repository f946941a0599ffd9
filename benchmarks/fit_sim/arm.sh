#!/bin/bash
# One 20,000-frame arm of the fit-sim measurement (docs/fit-sim.md): record with a spec, pretrain
# with the 20k recipe, score zero-shot on both real recordings' test blocks and validation r.
# usage: SIMSEED=21 TRAINSEED=0 bash benchmarks/fit_sim/arm.sh OUT SPEC [REAL_DIR]
#   OUT/{sim20k,pre20k,eval_<tub>.json,val.json}; each step is skipped when its output exists
#   (resumable). REAL_DIR defaults to ../shared/data/real (usi-track-a and carpet-walls).
set -e
out=$1; spec=$2; real=${3:-../shared/data/real}
here=$(cd "$(dirname "$0")" && pwd); bin=${SIM2REAL:-.venv/bin/sim2real}
config=$here/../temporal/single.yaml  # the 20k recipe: pretrain_closed_loop at 20k frames, 8 epochs
export OMP_NUM_THREADS=1
mkdir -p "$out"
stamp() { echo "$1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
stamp "$out start"
grep -q "recorded" "$out/sim.log" 2>/dev/null || nice -n 5 $bin simulate --out "$out/sim20k" \
  --frames 20000 --seed "$SIMSEED" --workers 1 --randomization "$spec" --no-progress > "$out/sim.log" 2>&1
stamp "$out simulated"
[ -f "$out/pre20k/model.safetensors" ] || nice -n 5 $bin pretrain --data "$out/sim20k" \
  --out "$out/pre20k" --config "$config" --seed "$TRAINSEED" > "$out/pretrain.log" 2>&1
stamp "$out pretrained"
for t in usi-track-a carpet-walls; do
  [ -f "$out/eval_$t.json" ] || nice -n 5 $bin evaluate --checkpoint "$out/pre20k" \
    --data "$real/$t" --split test --n-boot 300 --json "$out/eval_$t.json" > "$out/eval_$t.log" 2>&1
done
[ -f "$out/val.json" ] || nice -n 5 "$(dirname "$bin")/python" "$here/val_r.py" "$out/val.json" \
  "$real" "$out/pre20k" > "$out/val.log" 2>&1
stamp "$out done"
