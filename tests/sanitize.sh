#!/usr/bin/env bash
# Sanitizers and fuzzing (CI runs this after tests/run.sh). Builds build-sanitize/ with clang:
# AddressSanitizer + UndefinedBehaviorSanitizer (undefined behaviour aborts; leak detection on)
# and the libFuzzer targets in fuzz/. Runs the unit tests (strata_core_tests,
# strata_coordinator_tests), then each fuzz target for FUZZ_SECONDS from a temporary copy of its
# seed corpus in fuzz/corpus/. Fails on any test failure, crash, leak, timeout, out-of-memory or
# sanitizer report; inputs that failed are kept in build-sanitize/fuzz-artifacts/.
#
#   bash tests/sanitize.sh [FUZZ_SECONDS]   # default 60 per target; 0 = only replay the seeds
#
# JOBS (default 2) sets the build parallelism. About 6 minutes on 2 cores from a clean tree with
# the default 60 s per target.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FUZZ_SECONDS=${1:-60}
JOBS=${JOBS:-2}
BUILD=build-sanitize
if ! [[ "$FUZZ_SECONDS" =~ ^[0-9]+$ ]]; then
  echo "usage: bash tests/sanitize.sh [FUZZ_SECONDS]" >&2
  exit 2
fi
for tool in clang clang++ cmake; do
  command -v "$tool" >/dev/null || { echo "sanitize: $tool not found (bash deploy/install-deps.sh)" >&2; exit 1; }
done

# Sanitizer settings for everything below (the build runs the test binaries too, to list tests).
# No suppressions are needed: the unit tests and fuzz targets never initialise MPI or start a gRPC
# server, and strata's own code is leak-free. Add an LSan suppressions file (LSAN_OPTIONS=
# suppressions=...) only for a third-party leak, with the reason next to each entry.
export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:strict_string_checks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
if ! command -v llvm-symbolizer >/dev/null && [ -x /usr/bin/llvm-symbolizer-14 ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14
fi

start=$SECONDS
# -O1 -g: the usual sanitizer trade-off (fast enough to fuzz, stack traces still exact); asserts
# stay on. Benchmarks are not built.
configure=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
           "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"
           -DSTRATA_SANITIZE=ON -DSTRATA_FUZZ=ON -DSTRATA_BUILD_BENCH=OFF)
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then
  configure=(-G Ninja "${configure[@]}")
fi
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" "${configure[@]}" >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
FUZZERS=(gguf_fuzz tokenizer_fuzz request_fuzz)
cmake --build "$BUILD" -j "$JOBS" --target strata_core_tests strata_coordinator_tests "${FUZZERS[@]}"
build_s=$((SECONDS - start))

summary=()
failed=0
LOGS="$BUILD/sanitize-logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"

# A log with a sanitizer report fails even if the exit status did not (belt and braces: every
# sanitizer here is set to abort).
sanitizer_report() {
  grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer" "$1"
}

# Unit tests: all of them. Under the sanitizers the core suite takes ~11 s (the real-weights tests
# use the 260K-parameter model in ../shared/models when it is there, and skip otherwise), so none
# is excluded.
for t in strata_core_tests strata_coordinator_tests; do
  t0=$SECONDS
  log="$LOGS/$t.log"
  if "$BUILD/bin/$t" --gtest_brief=1 >"$log" 2>&1 && ! sanitizer_report "$log"; then
    summary+=("PASS  $t ($(grep -oE '[0-9]+ tests? from [0-9]+ test suites? ran' "$log" | head -1), $((SECONDS - t0)) s)")
  else
    failed=1
    tail -n 60 "$log"
    summary+=("FAIL  $t (log: $log)")
  fi
done

# Fuzzing. -max_len: the largest seeds (GGUF) are ~40 KB; -timeout per input; -rss_limit_mb also
# bounds any single allocation, so a hostile size that makes us allocate gigabytes is a failure.
ARTIFACTS="$BUILD/fuzz-artifacts"
rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"
declare -A MAX_LEN=([gguf_fuzz]=131072 [tokenizer_fuzz]=4096 [request_fuzz]=4096)
for t in "${FUZZERS[@]}"; do
  t0=$SECONDS
  log="$LOGS/$t.log"
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$t" "$work/corpus"  # libFuzzer adds new inputs to it; the repository's stays as is
  seeds=$(find "$work/corpus" -type f | wc -l)
  if [ "$FUZZ_SECONDS" -gt 0 ]; then mode=(-max_total_time="$FUZZ_SECONDS"); else mode=(-runs=0); fi
  if "$BUILD/bin/$t" "${mode[@]}" -max_len="${MAX_LEN[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$ROOT/$ARTIFACTS/$t-" "$work/corpus" >"$log" 2>&1 && ! sanitizer_report "$log"; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    summary+=("PASS  $t (${execs:-?} inputs, ${rate:-?}/s, $cov, corpus $seeds -> $(find "$work/corpus" -type f | wc -l), $((SECONDS - t0)) s)")
  else
    failed=1
    grep -vE '^(INFO|#[0-9]+)' "$log" | tail -n 60
    artifact=$(ls -t "$ARTIFACTS/$t-"* 2>/dev/null | head -1 || true)
    summary+=("FAIL  $t (log: $log${artifact:+; input: $artifact, reproduce: $BUILD/bin/$t $artifact})")
  fi
  rm -rf "$work"
done

echo
echo "== sanitize summary (build ${build_s} s, total $((SECONDS - start)) s, fuzzing ${FUZZ_SECONDS} s per target) =="
printf '%s\n' "${summary[@]}"
exit "$failed"
