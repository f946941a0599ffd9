#!/bin/bash
# Issue 20, stacked frames / frame difference: the runs behind docs/temporal.md's 2026-11-30
# afternoon section, in order (one job at a time).
#   bash benchmarks/temporal/frames-runs.sh OUT   (OUT: the folder holding temporal-sim20k,
#   the seed-21 v1 recording of runs.sh, and temporal-single-ref, the single-frame arm)
# ~1.5 h on a loaded 2-core box: each pretrain 26-30 min at load 5-9, each 20-track block ~1 min.
set -eu
OUT=${1:?usage: frames-runs.sh OUT}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1
S="nice -n 5 sim2real"
for arm in difference stack; do
  $S pretrain --config $HERE/frames-$arm.yaml --data $OUT/temporal-sim20k --out $OUT/stack-$arm \
    --set train.progress=false
done
E=$OUT/stack-eval; mkdir -p $E
drive() {  # arm first-seed episodes
  $S evaluate --checkpoint $OUT/stack-$1 --sim --episodes $3 --seed-start $2 \
    --json $E/$1-sim-$2.json > $E/$1-sim-$2.log
}
for arm in difference stack; do drive $arm 20000 40; done  # the choice: more laps (tie: val loss)
for arm in difference stack; do
  $S evaluate --checkpoint $OUT/stack-$arm --data ../shared/data/real/usi-track-a \
    --split test --json $E/$arm-usi-test.json
done
for arm in difference stack; do  # (the chosen arm first; the other as time allows)
  for start in 10000 10020 10040 10060 10080 10100; do drive $arm $start 20; done
done
cp $OUT/temporal-eval/single-ref-sim-1*.json $E/  # the single-frame arm's held-out drives
ln -sfn $OUT/temporal-single-ref $OUT/stack-single-ref
drive single-ref 20000 40  # context only
for start in 10120 10140 10160 10180 10200 10220; do  # a second held-out set, all three arms
  for arm in single-ref stack difference; do drive $arm $start 20; done
done
python benchmarks/summarize_closed_loop.py $E single-ref difference stack --seeds 20000 20039
python benchmarks/summarize_closed_loop.py $E single-ref difference stack --seeds 10000 10119
python benchmarks/summarize_closed_loop.py $E single-ref difference stack --seeds 10120 10239
python benchmarks/summarize_closed_loop.py $E single-ref difference stack --seeds 10000 10239
$S simulate --out $OUT/stack-sim-check --frames 1200 --workers 1 --seed 31 --no-progress
python benchmarks/temporal/frame_use.py $OUT/stack-sim-check $OUT/stack-stack $OUT/stack-difference
