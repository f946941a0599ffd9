#!/bin/bash
# Issue 20, temporal context: the runs behind docs/temporal.md, in order (one job at a time).
#   bash benchmarks/temporal/runs.sh OUT   (OUT: a data folder, e.g. /work/data)
# ~2 h on a loaded 2-core box: simulate ~3 min, each pretrain 20-35 min, each 20-track
# closed-loop block ~1 min, each real evaluation ~1 min.
set -eu
OUT=${1:?usage: runs.sh OUT}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1
S="nice -n 5 sim2real"
$S simulate --out $OUT/temporal-sim20k --frames 20000 --workers 1 --seed 21 --no-progress
# The reported single-frame row is /work/data/pre20k-styles, an earlier run of single.yaml on
# the same seed-21 recording (identical frames and first-epoch losses); this loop retrains it.
for arm in single prev prev-d06; do
  $S pretrain --config $HERE/$arm.yaml --data $OUT/temporal-sim20k --out $OUT/temporal-$arm \
    --set train.progress=false
done
E=$OUT/temporal-eval; mkdir -p $E
drive() {  # arm first-seed episodes
  $S evaluate --checkpoint $OUT/temporal-$1 --sim --episodes $3 --seed-start $2 \
    --json $E/$1-sim-$2.json > $E/$1-sim-$2.log
}
for arm in prev prev-d06; do drive $arm 20000 40; done  # the knob (action_dropout)
for start in 10000 10020 10040 10060 10080 10100; do
  for arm in single prev prev-d06; do drive $arm $start 20; done
done
for arm in single prev prev-d06; do
  $S evaluate --checkpoint $OUT/temporal-$arm --data ../shared/data/real/usi-track-a \
    --split test --json $E/$arm-usi-test.json
done
for arm in prev prev-d06; do
  python benchmarks/bench_temporal_real.py $OUT/temporal-$arm --json $E/$arm-usi-bench.json
done
python benchmarks/summarize_closed_loop.py $E single prev prev-d06 --seeds 10000 10119
python benchmarks/summarize_closed_loop.py $E prev prev-d06 --seeds 20000 20039
python benchmarks/temporal/sensitivity.py $OUT/temporal-sim20k $OUT/temporal-prev $OUT/temporal-prev-d06
