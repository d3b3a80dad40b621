#!/usr/bin/env bash
# End-to-end tests of `strata serve` and `strata generate`: flags, streaming, errors, and that
# stopping serve (SIGINT, SIGTERM, a child dying) never leaves a process behind.
# usage: cli_serving_test.sh BIN_DIR SOURCE_DIR
set -u
BIN=$1
STRATA=$BIN/strata
TMP=$(mktemp -d /tmp/strata_cli_serving.XXXXXX)
source "$(dirname "$0")/harness.sh"

# expect_error NAME RC NEEDLE CMD...: the command must exit with RC ("nonzero": any but 0) and
# print NEEDLE on stderr.
expect_error() {
  local name=$1 want_rc=$2 needle=$3
  shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  local bad=0
  if [ "$want_rc" = nonzero ]; then [ $rc -ne 0 ] || bad=1; else [ $rc -eq "$want_rc" ] || bad=1; fi
  if [ $bad -eq 1 ]; then fail "$name: exit $rc, expected $want_rc ($err)"; return; fi
  if ! grep -qF -- "$needle" <<<"$err"; then fail "$name: message '$err' lacks '$needle'"; return; fi
  pass "$name ($err)"
}

# Every process descended from PID (children, grandchildren, ...), one per line.
descendants() {
  ps -eo pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      for (i in pids) {
        p = pids[i]; q = parent[p]
        while (q != "" && q != 0 && q != 1) { if (q == root) { print p; break } q = parent[q] }
      }
    }'
}

# start_serve NAME ARGS...: starts serve in the background (SERVE_PID), output in $TMP/NAME.{out,err}.
start_serve() {
  local name=$1
  shift
  (exec "$STRATA" serve "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null) &
  SERVE_PID=$!
}

# wait_serving NAME: waits for the "serving" line; sets ADDR. Returns 1 if serve exits or 120 s pass.
wait_serving() {
  local name=$1
  for _ in $(seq 1 1200); do
    if grep -q '^strata serve: serving ' "$TMP/$name.out" 2>/dev/null; then
      ADDR=$(sed -n 's/^strata serve: serving .* on \([^ ]*\)$/\1/p' "$TMP/$name.out" | head -n 1)
      return 0
    fi
    kill -0 "$SERVE_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# wait_exit PID SECONDS: waits for our background child to exit; sets RC (or "timeout").
wait_exit() {
  local pid=$1 limit=$2
  for _ in $(seq 1 $((limit * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; RC=$?; return 0; fi
    sleep 0.1
  done
  RC=timeout
  return 1
}

# expect_gone NAME PIDS...: none of the processes may still exist (not even as zombies).
expect_gone() {
  local name=$1 left=""
  shift
  for p in "$@"; do
    [ -e "/proc/$p" ] && left="$left $p($(cat /proc/$p/comm 2>/dev/null))"
  done
  local stray
  stray=$(pgrep -f "$TMP" | tr '\n' ' ')
  if [ -z "$left" ] && [ -z "$stray" ]; then
    pass "$name: no process left"
  else
    fail "$name: processes left:$left ${stray:+(matching $TMP: $stray)}"
    [ -n "$left$stray" ] && kill -KILL $left $stray 2>/dev/null
  fi
}

M=$TMP/m.gguf
if ! "$STRATA" make-model --arch llama --preset tiny --dtype f32 --out "$M" >/dev/null 2>"$TMP/mm.err"; then
  echo "FAIL: make-model: $(cat "$TMP/mm.err")"
  exit 1
fi

# --- flags: checked before anything starts ---
expect_error "serve: unknown flag" 2 "unknown flag --bogus" "$STRATA" serve --model "$M" --bogus
expect_error "serve: missing --model" 2 "--model is required" "$STRATA" serve
expect_error "serve: --tp 0" 2 "--tp" "$STRATA" serve --model "$M" --tp 0
expect_error "serve: bad --listen" 2 "--listen" "$STRATA" serve --model "$M" --listen nocolon
expect_error "serve: --max-waiting not a number" 2 "--max-waiting" "$STRATA" serve --model "$M" --max-waiting lots
expect_error "serve: missing model file" nonzero "$TMP/nope.gguf" "$STRATA" serve --model "$TMP/nope.gguf"
expect_error "generate: missing --server" 2 "--server is required" "$STRATA" generate --prompt hi
expect_error "generate: missing --prompt" 2 "--prompt is required" "$STRATA" generate --server 127.0.0.1:1
expect_error "generate: unknown flag" 2 "unknown flag --bogus" "$STRATA" generate --server 127.0.0.1:1 --prompt hi --bogus
expect_error "generate: --timeout 0" 2 "--timeout" "$STRATA" generate --server 127.0.0.1:1 --prompt hi --timeout 0
"$STRATA" --help | grep -q "serve" && "$STRATA" --help | grep -q "generate" && pass "strata --help lists serve and generate" \
  || fail "strata --help lacks serve or generate"

# --- no server: UNAVAILABLE ---
free_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_error "generate: no server" 1 "strata generate: UNAVAILABLE:" \
  "$STRATA" generate --server "127.0.0.1:$free_port" --prompt hi --timeout 20

# --- a server: tp=2 × pp=2 ---
start_serve main --model "$M" --tp 2 --pp 2 --listen 127.0.0.1:0
if ! wait_serving main; then
  echo "FAIL: strata serve did not start; stdout: $(cat "$TMP/main.out"); stderr:"
  cat "$TMP/main.err"
  exit 1
fi
pass "serve: $(cat "$TMP/main.out")"
grep -q "^strata serve: serving $M (tp=2, pp=2) on 127.0.0.1:[0-9]*$" "$TMP/main.out" \
  && pass "serve: the serving line names model, layout and address" || fail "serve: serving line: $(cat "$TMP/main.out")"

out=$("$STRATA" generate --server "$ADDR" --prompt "Once upon a time" --max-tokens 8 --temperature 0 --ignore-eos --json 2>"$TMP/gen.err")
rc=$?
n=$(grep -c '^{"id":' <<<"$out")
last=$(tail -n 1 <<<"$out")
if [ $rc -eq 0 ] && [ "$n" = 8 ] && grep -q '"finish_reason":"length"' <<<"$last" && grep -q '"completion_tokens":8' <<<"$last"; then
  pass "generate --json: 8 token lines and a finish line"
else
  fail "generate --json: rc $rc, $n token lines, last line '$last', stderr $(cat "$TMP/gen.err")"
fi
if python3 -c '
import json, sys
lines = sys.stdin.read().splitlines()
for l in lines[:-1]:
    t = json.loads(l); assert set(t) == {"id", "text"}, t
f = json.loads(lines[-1]); assert f["usage"]["prompt_tokens"] > 0, f
' <<<"$out"; then pass "generate --json: every line is a JSON object"; else fail "generate --json: not JSON: $out"; fi

text=$("$STRATA" generate --server "$ADDR" --prompt "Once upon a time" --max-tokens 8 --temperature 0 --ignore-eos 2>/dev/null)
joined=$(python3 -c '
import json, sys
print("".join(json.loads(l)["text"] for l in sys.stdin.read().splitlines()[:-1]))' <<<"$out")
[ "$text" = "$joined" ] && pass "generate: text output is the JSON pieces joined" \
  || fail "generate: text '$text' differs from JSON pieces '$joined'"

lp=$("$STRATA" generate --server "$ADDR" --prompt "Hello" --max-tokens 4 --temperature 0 --ignore-eos --logprobs --json 2>/dev/null)
[ "$(grep -c '"logprob":-\?[0-9]' <<<"$lp")" = 4 ] && pass "generate --logprobs: a logprob per token" \
  || fail "generate --logprobs: $lp"

seeded=(generate --server "$ADDR" --prompt "Hello there" --max-tokens 20 --temperature 1 --top-p 0.9 --seed 5
        --ignore-eos --json --request-id seeded)
a=$("$STRATA" "${seeded[@]}" 2>&1)
b=$("$STRATA" "${seeded[@]}" 2>&1)
[ -n "$a" ] && [ "$a" = "$b" ] && pass "generate: same seed, same output" || fail "generate: same seed gave '$a' and '$b'"

rid=$("$STRATA" generate --server "$ADDR" --prompt "Hello" --max-tokens 2 --request-id my-req-7 --json 2>/dev/null | tail -n 1)
grep -q '"request_id":"my-req-7"' <<<"$rid" && pass "generate --request-id is echoed" || fail "generate --request-id: $rid"

expect_error "generate: invalid argument from the server" 1 "strata generate: INVALID_ARGUMENT:" \
  "$STRATA" generate --server "$ADDR" --prompt hi --max-tokens 0
expect_error "generate: the message names the field" 1 "top_p" \
  "$STRATA" generate --server "$ADDR" --prompt hi --top-p 1.5
expect_error "generate: --timeout" 1 "strata generate: DEADLINE_EXCEEDED:" \
  "$STRATA" generate --server "$ADDR" --prompt hi --max-tokens 400 --ignore-eos --temperature 0 --timeout 0.2

# A second serve on the same address: the coordinator cannot bind (gRPC would share the port
# with SO_REUSEPORT unless the server turns it off); serve says so, cleans up and exits 1.
main_pid=$SERVE_PID
start_serve clash --model "$M" --tp 2 --pp 2 --listen "$ADDR"
if wait_serving clash; then
  fail "serve on a taken address: a second server is serving on $ADDR too"
  kill -TERM "$SERVE_PID"
  wait_exit "$SERVE_PID" 30
elif wait_exit "$SERVE_PID" 30 && [ "$RC" = 1 ] && grep -q "strata-coordinator" "$TMP/clash.err"; then
  pass "serve on a taken address: exit 1 ($(grep '^strata serve:' "$TMP/clash.err" | head -n 1))"
else
  fail "serve on a taken address: exit $RC, stderr: $(cat "$TMP/clash.err")"
fi
SERVE_PID=$main_pid

# Ctrl-C: everything stops, serve exits 0.
procs=$(descendants "$SERVE_PID")
nprocs=$(wc -w <<<"$procs")
[ "$nprocs" -ge 6 ] && pass "serve runs coordinator, mpirun and 4 workers ($nprocs descendants)" \
  || fail "serve has $nprocs descendants: $(ps -o pid,comm -p "$(tr '\n' ',' <<<"$procs")0" 2>/dev/null)"
kill -INT "$SERVE_PID"
if wait_exit "$SERVE_PID" 30 && [ "$RC" = 0 ]; then pass "SIGINT: serve exits 0"; else fail "SIGINT: serve exit $RC"; fi
expect_gone "SIGINT" "$SERVE_PID" $procs
SERVE_PID=""

# SIGTERM while starting up.
start_serve early --model "$M" --tp 2 --pp 2 --listen 127.0.0.1:0
sleep 0.5
procs=$(descendants "$SERVE_PID")
kill -TERM "$SERVE_PID"
if wait_exit "$SERVE_PID" 30 && [ "$RC" = 0 ]; then pass "SIGTERM during startup: exit 0"; else fail "SIGTERM during startup: exit $RC"; fi
expect_gone "SIGTERM during startup" "$SERVE_PID" $procs $(descendants "$SERVE_PID")
SERVE_PID=""

# A child dies with worker restarts turned off: serve stops the rest, says which one died, exits 1.
# (With restarts on, the default, a dead worker group is relaunched: tests/serving/fault_test.sh.)
for victim in strata-coordina mpirun strata-worker; do
  start_serve "kill-$victim" --model "$M" --tp 2 --pp 2 --listen 127.0.0.1:0 --restart-workers 0
  if ! wait_serving "kill-$victim"; then fail "kill $victim: serve did not start: $(cat "$TMP/kill-$victim.err")"; continue; fi
  procs=$(descendants "$SERVE_PID")
  target=$(for p in $procs; do [ "$(cat /proc/$p/comm 2>/dev/null)" = "$victim" ] && echo "$p"; done | head -n 1)
  kill -KILL "$target"
  if wait_exit "$SERVE_PID" 30 && [ "$RC" = 1 ]; then
    msg=$(grep '^strata serve:' "$TMP/kill-$victim.err" | tail -n 1)
    case $victim in
      strata-coordina) want="strata-coordinator, pid $target, was killed by signal 9" ;;
      *) want="mpirun (the workers)" ;;
    esac
    grep -qF "$want" <<<"$msg" && pass "kill -9 $victim: serve exits 1 ($msg)" || fail "kill -9 $victim: message '$msg' lacks '$want'"
  else
    fail "kill -9 $victim: serve exit $RC; stderr: $(tail -n 5 "$TMP/kill-$victim.err")"
  fi
  expect_gone "kill -9 $victim" "$SERVE_PID" $procs
  SERVE_PID=""
done

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
