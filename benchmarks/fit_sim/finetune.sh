#!/bin/bash
# 100-frame fine-tunes (finetune's defaults without self-training, as measured) from an
# arm's pretrain, scored on the test block.
# usage: bash benchmarks/fit_sim/finetune.sh ARM_OUT TUB_DIR SEED... -> ARM_OUT/ft100_<tub>_s<seed>/
set -e
out=$1; tub=$2; shift 2; bin=${SIM2REAL:-.venv/bin/sim2real}; export OMP_NUM_THREADS=1
for s in "$@"; do
  o=$out/ft100_$(basename "$tub")_s$s
  [ -f "$o/model.safetensors" ] || nice -n 5 $bin finetune --checkpoint "$out/pre20k" \
    --data "$tub" --out "$o" --frames 100 --seed "$s" --pseudo-label none > "$o.log" 2>&1
  [ -f "$o/eval.json" ] || nice -n 5 $bin evaluate --checkpoint "$o" --data "$tub" --split test \
    --n-boot 300 --json "$o/eval.json" > "$o.eval.log" 2>&1
  echo "$o $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
