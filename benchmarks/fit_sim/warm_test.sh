#!/bin/bash
# Test-block scoring of the warm-start arms at the setting chosen on validation (docs/fit-sim.md):
# zero-shot evaluate --split test on both recordings (then mirror-averaged), and the 100-frame
# fine-tunes (finetune.sh) on the recording each arm's camera was fitted to.
# usage: bash benchmarks/fit_sim/warm_test.sh ROOT SUFFIX [REAL_DIR]
#   arms ROOT/warm-{carpet,usi,default-s3}-SUFFIX (warm.sh outputs); each step skipped when done.
set -e
root=$1; suffix=$2; real=${3:-../shared/data/real}
here=$(cd "$(dirname "$0")" && pwd); bin=${SIM2REAL:-.venv/bin/sim2real}
export OMP_NUM_THREADS=1
stamp() { echo "$1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
evaluate() {  # ARM TUB [MIRROR]
  local name=eval_$2${3:+_mirror}.json
  [ -f "$1/$name" ] || nice -n 5 $bin evaluate --checkpoint "$1/pre20k" --data "$real/$2" \
    --split test --n-boot 300 ${3:+--mirror-average on} --json "$1/$name" > "$1/${name%.json}.log" 2>&1
  stamp "$1 $name"
}
for arm in carpet usi default-s3; do
  for t in usi-track-a carpet-walls; do evaluate "$root/warm-$arm-$suffix" $t; done
done
bash "$here/finetune.sh" "$root/warm-carpet-$suffix" "$real/carpet-walls" 0 1 2
bash "$here/finetune.sh" "$root/warm-usi-$suffix" "$real/usi-track-a" 0 1 2
bash "$here/finetune.sh" "$root/warm-default-s3-$suffix" "$real/carpet-walls" 0 1 2
bash "$here/finetune.sh" "$root/warm-default-s3-$suffix" "$real/usi-track-a" 0 1 2
for arm in carpet usi default-s3; do
  for t in usi-track-a carpet-walls; do evaluate "$root/warm-$arm-$suffix" $t mirror; done
done
stamp "$root $suffix done"
