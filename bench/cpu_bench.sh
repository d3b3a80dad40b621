#!/usr/bin/env bash
# CPU speed of strata on this machine, in one run: makes TinyLlama-1.1B-shaped models (random
# weights) in F32, F16 and Q8_0 if they are not there yet, then runs strata-cpu-bench on them at
# 1 and 2 threads. The bench measures the machine's read bandwidth and FMA peak itself and prints
# each model's decode and prefill speed against them, plus peak resident memory.
#
# usage: bench/cpu_bench.sh [BUILD_DIR] [extra strata-cpu-bench flags, e.g. --reps 5 --threads 1,2]
# env:   STRATA_BENCH_DIR  where the models go (default /tmp/strata-bench; F32 is 4.4 GB)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
[ $# -gt 0 ] && shift
DIR=${STRATA_BENCH_DIR:-/tmp/strata-bench}
STRATA=$BUILD/bin/strata
BENCH=$BUILD/bin/strata-cpu-bench
for bin in "$STRATA" "$BENCH"; do
  if [ ! -x "$bin" ]; then
    echo "missing $bin: build it first (cmake --build $BUILD --target strata strata-cpu-bench)" >&2
    exit 1
  fi
done
mkdir -p "$DIR"
models=()
for dtype in f32 f16 q8_0; do
  m=$DIR/tinyllama-$dtype.gguf
  if [ ! -s "$m" ]; then
    echo "making $m" >&2
    "$STRATA" make-model --arch llama --preset tinyllama-1.1b --dtype $dtype --out "$m" >&2
  fi
  models+=(--model "$m")
done
echo "# strata CPU bench, $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
echo "# decode: 8-token prompt then 128 greedy steps; prefill: one 512-token step; 3 runs: tokens/s of the best, fractions the median of each run against the machine measured around it"
exec "$BENCH" "${models[@]}" --threads 1,2 --decode 128 --prompt 512 --reps 3 "$@"
