#!/usr/bin/env bash
# Faults under `strata serve` (tp=2, pp=2): a worker rank killed (SIGKILL) or hung (SIGSTOP)
# mid-stream. The coordinator keeps the request, serve relaunches the worker group, the request
# resumes by recompute and finishes with exactly the tokens of an undisturbed run; health goes
# NOT_SERVING and back to SERVING.
# usage: fault_test.sh BIN_DIR SOURCE_DIR
set -u
BIN=$1
STRATA=$BIN/strata
TMP=$(mktemp -d /tmp/strata_fault.XXXXXX)
source "$(dirname "$0")/harness.sh"

# A model big enough that a 32-token generation takes seconds on 2 cores, so the fault lands
# mid-stream: the tinyllama-1.1b shape in Q8_0 (1.1 GB, written in ~15 s).
MODEL=$TMP/tinyllama-q8_0.gguf
"$STRATA" make-model --arch llama --preset tinyllama-1.1b --dtype q8_0 --out "$MODEL" 2>/dev/null ||
  { fail "make-model"; echo "$passes passed, $failures failed"; exit 1; }

"$STRATA" serve --model "$MODEL" --tp 2 --pp 2 --listen 127.0.0.1:0 --threads 1 --step-timeout 3 \
  > "$TMP/serve.out" 2> "$TMP/serve.err" &
SERVE_PID=$!
if ! wait_for_serve "$TMP/serve.out"; then
  fail "strata serve did not start: $(tail -5 "$TMP/serve.err")"
  echo "$passes passed, $failures failed"
  exit 1
fi

GEN=("$STRATA" generate --server "$ADDR" --prompt "Once upon a time" --max-tokens 32 --temperature 0
     --ignore-eos --json --timeout 600)
"${GEN[@]}" > "$TMP/ref.jsonl" 2>&1 || fail "reference generation: $(tail -2 "$TMP/ref.jsonl")"
ids() { grep '"id"' "$1" | sed 's/.*"id":\([0-9]*\).*/\1/' | tr '\n' ' '; }
REF=$(ids "$TMP/ref.jsonl")

# One worker rank of the current group: a child of serve's mpirun.
some_worker() {
  local mpirun
  mpirun=$(pgrep -P "$SERVE_PID" -x mpirun | head -1)
  [ -n "$mpirun" ] && pgrep -P "$mpirun" -f strata-worker | tail -1
}

# fault NAME SIGNAL: start the generation, send SIGNAL to a worker after 4 tokens, expect the
# same tokens as the reference.
fault() {
  local name=$1 sig=$2
  local restarts_before
  restarts_before=$(grep -c "relaunching" "$TMP/serve.err")
  "${GEN[@]}" > "$TMP/$name.jsonl" 2>&1 &
  local gen=$!
  for _ in $(seq 1 600); do
    [ "$(grep -c '"id"' "$TMP/$name.jsonl")" -ge 4 ] && break
    kill -0 $gen 2>/dev/null || break
    sleep 0.05
  done
  local victim
  victim=$(some_worker)
  if [ -z "$victim" ]; then fail "$name: no worker process found"; wait $gen; return; fi
  kill "-$sig" "$victim"
  local t0=$SECONDS
  wait $gen
  local rc=$?
  local got
  got=$(ids "$TMP/$name.jsonl")
  local restarts
  restarts=$(grep -c "relaunching" "$TMP/serve.err")
  if [ $rc -ne 0 ]; then
    fail "$name: generate failed (exit $rc): $(tail -2 "$TMP/$name.jsonl")"
  elif [ "$got" != "$REF" ]; then
    fail "$name: tokens differ from the undisturbed run: got [$got] want [$REF]"
  elif [ "$restarts" -le "$restarts_before" ]; then
    fail "$name: the request finished but serve never relaunched the workers (was the fault mid-stream?)"
  else
    pass "$name: identical $(wc -w <<<"$got") tokens after the worker group was relaunched ($((SECONDS - t0)) s)"
  fi
  # Health comes back.
  for _ in $(seq 1 300); do
    grep -q '"finish_reason"' <("$STRATA" generate --server "$ADDR" --prompt hi --max-tokens 1 --json 2>/dev/null) && break
    sleep 0.2
  done
}

fault kill KILL
fault hang STOP
grep -q "worker group lost" "$TMP/serve.err" && pass "the coordinator reported the lost group" ||
  fail "no 'worker group lost' in the coordinator's log"
grep -q "resuming" "$TMP/serve.err" && pass "the coordinator resumed the waiting request" ||
  fail "no 'resuming' in the coordinator's log"
kill -0 $SERVE_PID 2>/dev/null && pass "strata serve still running" || fail "strata serve exited"

# SIGTERM drain: the running request finishes, a new one is refused with UNAVAILABLE, serve exits 0.
"${GEN[@]}" > "$TMP/drain.jsonl" 2>&1 &
gen=$!
for _ in $(seq 1 600); do
  [ "$(grep -c '"id"' "$TMP/drain.jsonl")" -ge 4 ] && break
  sleep 0.05
done
kill -TERM $SERVE_PID
sleep 0.5
late=$("$STRATA" generate --server "$ADDR" --prompt "too late" --max-tokens 4 2>&1)
grep -q "UNAVAILABLE" <<<"$late" && pass "drain: a new request is refused ($late)" || fail "drain: new request got: $late"
wait $gen
rc=$?
[ $rc -eq 0 ] && [ "$(ids "$TMP/drain.jsonl")" = "$REF" ] && pass "drain: the running request finished with its tokens" ||
  fail "drain: running request exit $rc: $(tail -2 "$TMP/drain.jsonl")"
wait $SERVE_PID
rc=$?
SERVE_PID=""
[ $rc -eq 0 ] && pass "drain: strata serve exited 0" || fail "drain: strata serve exited $rc"

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
