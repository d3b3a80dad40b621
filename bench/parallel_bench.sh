#!/usr/bin/env bash
# Decode and prefill speed of strata-worker for three layouts of the same 2 cores, on the
# tinyllama-1.1b preset (Q8_0, random weights):
#   T=1 P=1, 2 threads;   T=2 P=1, 1 thread a rank;   T=1 P=2, 1 thread a rank.
# decode:  tokens/s over BENCH_DECODE_TOKENS tokens after a short prompt, the first token excluded
#          (from the arrival times of the --json lines rank 0 streams; best of BENCH_DECODE_REPEATS).
# prefill: time to first token for a ~260-token prompt (--max-tokens 1; the worker's own timer,
#          which starts after loading; best of BENCH_PREFILL_REPEATS), and prompt tokens / that time.
# memory:  each rank's peak resident set (getrusage of the rank's process: weights it touched
#          through the mmap, its copies, KV cache, buffers) next to the model file's size.
# Prints a table and the ratio T=2 decode / T=1 decode (target >= 0.9). Not part of ctest.
#
# usage: bench/parallel_bench.sh [BIN_DIR]          (default: build/bin of this checkout)
# environment: BENCH_MODEL (default /tmp/strata-bench/tinyllama-q8_0.gguf, made if absent),
#   BENCH_DECODE_TOKENS (64), BENCH_DECODE_REPEATS (2), BENCH_PREFILL_REPEATS (1),
#   BENCH_PREFILL_REPEAT_TEXT (12: copies of a 22-token sentence in the prefill prompt),
#   BENCH_MAX_LOAD (1.5) and BENCH_IDLE_WAIT (600 s): wait up to that long for the 1-minute load
#   average to drop below BENCH_MAX_LOAD before measuring (0 to skip), BENCH_TIMEOUT (1200 s a run),
#   MPIEXEC (mpirun).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build/bin}
MPIEXEC=${MPIEXEC:-mpirun}
MODEL=${BENCH_MODEL:-/tmp/strata-bench/tinyllama-q8_0.gguf}
DECODE_TOKENS=${BENCH_DECODE_TOKENS:-64}
DECODE_REPEATS=${BENCH_DECODE_REPEATS:-2}
PREFILL_REPEATS=${BENCH_PREFILL_REPEATS:-1}
PREFILL_COPIES=${BENCH_PREFILL_REPEAT_TEXT:-12}
MAX_LOAD=${BENCH_MAX_LOAD:-1.5}
IDLE_WAIT=${BENCH_IDLE_WAIT:-600}
RUN_TIMEOUT=${BENCH_TIMEOUT:-1200}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One host: shared memory between ranks, loopback TCP for the launcher.
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo

die() { echo "parallel_bench: $*" >&2; exit 1; }
for b in strata strata-worker; do [ -x "$BIN/$b" ] || die "$BIN/$b not found (build first)"; done
command -v "$MPIEXEC" > /dev/null || die "no MPI launcher '$MPIEXEC'"
command -v python3 > /dev/null || die "python3 is needed"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- the model: reuse, or make it (to a temporary name, so an interrupted run leaves no half file) ---
if [ ! -s "$MODEL" ]; then
  mkdir -p "$(dirname "$MODEL")" || die "cannot create $(dirname "$MODEL")"
  echo "making $MODEL (tinyllama-1.1b, q8_0, about 1.1 GB)..."
  "$BIN/strata" make-model --arch llama --preset tinyllama-1.1b --dtype q8_0 --out "$MODEL.tmp.$$" ||
    { rm -f "$MODEL.tmp.$$"; die "make-model failed"; }
  mv "$MODEL.tmp.$$" "$MODEL"
fi
MODEL_BYTES=$(stat -c %s "$MODEL")
cat "$MODEL" > /dev/null  # into the page cache, so no run pays for the disk

# --- wait for a quiet machine ---
load1() { cut -d' ' -f1 /proc/loadavg; }
waited=0
while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN {exit !(l >= m)}'; do
  if [ "$waited" -ge "$IDLE_WAIT" ]; then
    echo "warning: load average $(load1) is still >= $MAX_LOAD after ${waited}s; measuring anyway (figures will be low)"
    break
  fi
  [ "$waited" -eq 0 ] && echo "load average $(load1) >= $MAX_LOAD: waiting up to ${IDLE_WAIT}s for the machine to quieten..."
  sleep 15
  waited=$((waited + 15))
done
LOAD_AT_START=$(load1)

# Each rank runs under this: it runs the worker, then prints the worker's peak resident set.
cat > "$TMP/maxrss.py" << 'EOF'
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("bench-maxrss rank=%s kib=%d\n" % (os.environ.get("OMPI_COMM_WORLD_RANK", "?"), usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
EOF

# Reads the --json lines on stdin, writes them to $1 with the arrival time (s) in front.
cat > "$TMP/stamp.py" << 'EOF'
import sys, time
with open(sys.argv[1], "w") as out:
    for line in sys.stdin:
        out.write("%.6f %s" % (time.monotonic(), line))
        out.flush()
EOF

# worker T P THREADS OUT_PREFIX ARGS...: one mpirun; stdout time-stamped to OUT.out, stderr to OUT.err.
worker() {
  local tp=$1 pp=$2 threads=$3 out=$4
  shift 4
  # 2 threads in one rank must not be bound to one core (Open MPI binds to core for np <= 2).
  local bind=core
  [ "$threads" -gt 1 ] && bind=none
  set -o pipefail
  timeout -k 10 "$RUN_TIMEOUT" "$MPIEXEC" --oversubscribe --bind-to "$bind" -np $((tp * pp)) \
    python3 "$TMP/maxrss.py" "$BIN/strata-worker" --model "$MODEL" --tp "$tp" --pp "$pp" --threads "$threads" \
    --temperature 0 --ignore-eos --json "$@" 2> "$out.err" | python3 "$TMP/stamp.py" "$out.out"
  local rc=$?
  set +o pipefail
  [ $rc -eq 124 ] && echo "timed out after ${RUN_TIMEOUT}s" >> "$out.err"
  return $rc
}

# The worker's own summary: "[N ranks, ...] K tokens in S s (R tokens/s)" -> "K S".
worker_total() { sed -n 's/.*\] \([0-9]*\) tokens in \([0-9.]*\) s.*/\1 \2/p' "$1" | tail -1; }
prompt_tokens() { sed -n 's/.*"prompt_tokens":\([0-9]*\).*/\1/p' "$1" | tail -1; }

SHORT_PROMPT="Once upon a time"
LONG_PROMPT=$(for ((i = 0; i < PREFILL_COPIES; i++)); do
  printf 'Once upon a time, there was a little girl named Lily who loved to play in the park with her friends. '
done)

LAYOUTS=("1 1 2" "2 1 1" "1 2 1")  # T P threads-per-rank
declare -A DECODE PREFILL TTFT NPROMPT RSS
failed=0
for layout in "${LAYOUTS[@]}"; do
  read -r tp pp threads <<< "$layout"
  key="$tp $pp"
  echo "T=$tp P=$pp, $threads thread(s) a rank:"
  # decode
  best=""
  for ((r = 0; r < DECODE_REPEATS; r++)); do
    o=$TMP/decode-$tp-$pp-$r
    if ! worker "$tp" "$pp" "$threads" "$o" --prompt "$SHORT_PROMPT" --max-tokens $((DECODE_TOKENS + 1)) --timings; then
      echo "  decode run failed: $(tail -5 "$o.err")"
      failed=$((failed + 1))
      continue
    fi
    # Lines a fast model streams can arrive in bursts: a span under 0.5 s is not timed.
    rate=$(awk '$2 ~ /^\{"id"/ {n++; if (n == 1) t1 = $1; tn = $1}
               END {if (n > 1 && tn - t1 >= 0.5) printf "%.2f", (n - 1) / (tn - t1); else print "?"}' "$o.out")
    n=$(grep -c '^[0-9.]* {"id"' "$o.out")
    echo "  decode: $((n - 1)) tokens after the first at $rate tokens/s   ($(grep '\] .* tokens in' "$o.err" | tail -1))"
    # Per rank: time per step and the part spent communicating (all-reduce; stage sends/receives
    # and the sampling exchange, which for a pipeline stage includes waiting for the other stage).
    grep '^timings' "$o.err" | sort | sed 's/^/    /'
    [ "$rate" = "?" ] && echo "  (the $((n - 1)) tokens took under 0.5 s: too fast to time from the stream; raise BENCH_DECODE_TOKENS)"
    # peak resident set of each rank, MiB
    RSS[$key]=$(sed -n 's/^bench-maxrss rank=\([0-9]*\) kib=\([0-9]*\).*/\1 \2/p' "$o.err" | sort -n |
      awk '{printf "%s%.0f", (NR > 1 ? " / " : ""), $2 / 1024}')
    if [ "$rate" != "?" ] && { [ -z "$best" ] || awk -v a="$rate" -v b="$best" 'BEGIN {exit !(a > b)}'; }; then best=$rate; fi
  done
  DECODE[$key]=${best:-?}
  # prefill
  best=""
  for ((r = 0; r < PREFILL_REPEATS; r++)); do
    o=$TMP/prefill-$tp-$pp-$r
    if ! worker "$tp" "$pp" "$threads" "$o" --prompt "$LONG_PROMPT" --max-tokens 1; then
      echo "  prefill run failed: $(tail -5 "$o.err")"
      failed=$((failed + 1))
      continue
    fi
    read -r _ secs <<< "$(worker_total "$o.err")"
    NPROMPT[$key]=$(prompt_tokens "$o.out")
    echo "  prefill: ${NPROMPT[$key]} prompt tokens, first token after $secs s"
    if [ -n "$secs" ] && { [ -z "$best" ] || awk -v a="$secs" -v b="$best" 'BEGIN {exit !(a < b)}'; }; then best=$secs; fi
  done
  TTFT[$key]=${best:-?}
  if [ -n "$best" ] && [ -n "${NPROMPT[$key]:-}" ]; then
    PREFILL[$key]=$(awk -v n="${NPROMPT[$key]}" -v s="$best" 'BEGIN {printf "%.1f", (s > 0 ? n / s : 0)}')
  else
    PREFILL[$key]="?"
  fi
done

n_prompt=${NPROMPT["1 1"]:-${NPROMPT["2 1"]:-${NPROMPT["1 2"]:-?}}}
if [ "$n_prompt" != "?" ] && { [ "$n_prompt" -lt 256 ] || [ "$n_prompt" -gt 512 ]; }; then
  echo "note: the prefill prompt has $n_prompt tokens (outside 256-512): adjust BENCH_PREFILL_REPEAT_TEXT"
fi

echo
echo "model: $MODEL ($(awk -v b="$MODEL_BYTES" 'BEGIN {printf "%.0f MiB", b / 1048576}')), $(nproc) cores," \
  "load average $LOAD_AT_START at start, $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-9s %-12s %14s %16s %9s %-24s %s\n' layout threads "decode tok/s" "prefill tok/s" "TTFT s" \
  "peak RSS/rank MiB" "RSS/file"
for layout in "${LAYOUTS[@]}"; do
  read -r tp pp threads <<< "$layout"
  key="$tp $pp"
  ratio=$(awk -v r="${RSS[$key]:-}" -v b="$MODEL_BYTES" 'BEGIN {
    n = split(r, a, " / "); s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? " / " : "") sprintf("%.2f", a[i] * 1048576 / b);
    print (n ? s : "?") }')
  printf '%-9s %-12s %14s %16s %9s %-24s %s\n' "T=$tp P=$pp" "$threads x $((tp * pp)) rank" "${DECODE[$key]}" \
    "${PREFILL[$key]}" "${TTFT[$key]}" "${RSS[$key]:-?}" "$ratio"
done
echo
if [ "${DECODE["1 1"]}" != "?" ] && [ "${DECODE["2 1"]}" != "?" ]; then
  awk -v a="${DECODE["2 1"]}" -v b="${DECODE["1 1"]}" 'BEGIN {
    r = a / b; printf "T=2 decode / T=1 decode = %.2f (target >= 0.90): %s\n", r, (r >= 0.9 ? "met" : "NOT met") }'
else
  echo "T=2 decode / T=1 decode: not available (no decode rate for one of them)"
fi
[ $failed -eq 0 ] || { echo "$failed run(s) failed"; exit 1; }
