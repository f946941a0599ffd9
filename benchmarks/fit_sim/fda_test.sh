#!/bin/bash
# Test-block scoring of the Fourier domain adaptation arms chosen on validation (docs/fit-sim.md):
# zero-shot evaluate --split test on both recordings, then (FT=1) 100-frame fine-tunes, one
# network (--ensemble-with none), seeds 0-2, on a recording, scored on its validation (val_r.py)
# and test blocks.
# usage: bash benchmarks/fit_sim/fda_test.sh ARM_OUT... ; FT_TUB=usi-track-a|carpet-walls FT=1
#   ARM_OUT holds pre20k (fda.sh); each step is skipped when its output exists.
set -e
real=${REAL:-../shared/data/real}
here=$(cd "$(dirname "$0")" && pwd); bin=${SIM2REAL:-.venv/bin/sim2real}
export OMP_NUM_THREADS=1
stamp() { echo "$1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
for arm in "$@"; do
  for t in usi-track-a carpet-walls; do
    [ -f "$arm/eval_$t.json" ] || nice -n 5 $bin evaluate --checkpoint "$arm/pre20k" \
      --data "$real/$t" --split test --n-boot 300 --json "$arm/eval_$t.json" > "$arm/eval_$t.log" 2>&1
    stamp "$arm eval_$t"
  done
done
[ "${FT:-0}" = 1 ] || exit 0
for arm in "$@"; do
  for s in 0 1 2; do
    o=$arm/ft100_${FT_TUB}_s$s
    [ -f "$o/model.safetensors" ] || nice -n 5 $bin finetune --checkpoint "$arm/pre20k" \
      --data "$real/$FT_TUB" --out "$o" --frames 100 --seed "$s" --ensemble-with none \
      --pseudo-label none > "$o.log" 2>&1
    [ -f "$o/val.json" ] || nice -n 5 "$(dirname "$bin")/python" "$here/val_r.py" "$o/val.json" \
      "$real" "$o" > "$o.val.log" 2>&1
    [ -f "$o/eval.json" ] || nice -n 5 $bin evaluate --checkpoint "$o" --data "$real/$FT_TUB" \
      --split test --n-boot 300 --json "$o/eval.json" > "$o.eval.log" 2>&1
    stamp "$o"
  done
done
