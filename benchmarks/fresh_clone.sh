#!/usr/bin/env bash
# The DonkeyCar owner's first steps, timed from a fresh clone (issue 17's target: <= 3 min on
# 2 cores): git clone, scripts/install.sh, finetune of the shipped network on 100 real frames,
# export. Each step prints wall, user and system seconds and the load average.
#
#   bash benchmarks/fresh_clone.sh [REPO] [BRANCH] [TUB] [WORK]
#
# REPO (default: this checkout) is cloned into WORK (default: a new /tmp folder); TUB defaults
# to ../shared/data/real/usi-track-a, else the sample shipped in transfer/sample_data.
# SIM2REAL_CACHE points at an empty folder; pip's own download cache is left as it is (say so
# when quoting the install time: a first install also downloads ~1 GB). EXTRAS and TORCH_SPEC
# pass through to scripts/install.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="${1:-$here}"
branch="${2:-$(git -C "$here" rev-parse --abbrev-ref HEAD)}"
tub="${3:-}"
if [ -z "$tub" ]; then
  tub="$here/../shared/data/real/usi-track-a"
  [ -d "$tub" ] || tub="$here/transfer/sample_data/usi-track-a-sample"
fi
work="${4:-$(mktemp -d /tmp/sim2real-fresh.XXXXXX)}"
mkdir -p "$work"
export OMP_NUM_THREADS=1 SIM2REAL_CACHE="$work/cache"
step() {  # step NAME COMMAND...: run it (output to WORK/NAME.log), print times and load
  local name="$1"
  shift
  /usr/bin/time -f "$name: %e s wall, %U s user, %S s system" -o "$work/$name.time" "$@" \
    >"$work/$name.log" 2>&1
  echo "$(cat "$work/$name.time"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
echo "started $(date -u +%FT%TZ) on $(getconf _NPROCESSORS_ONLN) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s.%N)
step clone git clone -q --branch "$branch" "$repo" "$work/sim2real"
cd "$work/sim2real"
step install bash scripts/install.sh
cd "$work"
# one network without self-training, as docs/donkeycar.md's rows were measured (the defaults
# now add the pilotnet-styles ensemble and self-training: about 105 CPU s instead of 35-40)
step finetune sim2real/.venv/bin/sim2real finetune --checkpoint pilotnet-recipe --data "$tub" \
  --frames 100 --ensemble-with none --pseudo-label none --out ft
step export sim2real/.venv/bin/sim2real export --checkpoint ft --onnx pilot.onnx
total=$(echo "$(date +%s.%N) - $started" | bc)
echo "total ${total%.*} s wall (clone + install + finetune + export); logs in $work"
echo "venv $(du -sm "$work/sim2real/.venv" | cut -f1) MB"
tail -n 3 "$work/finetune.log" "$work/export.log"
