# Shared by the serving test scripts (sourced): pass/fail counters, and a cleanup that stops the
# `strata serve` the script started (SERVE_PID) and anything else whose command line names the
# script's temp dir (TMP), then removes TMP. Set TMP before sourcing.
SERVE_PID=""
failures=0
passes=0
pass() { passes=$((passes + 1)); echo "ok: $1"; }
fail() { failures=$((failures + 1)); echo "FAIL: $1"; }
cleanup() {
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID"
    for _ in $(seq 1 150); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVE_PID" 2>/dev/null
  fi
  pkill -KILL -f "$TMP" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# wait_for_serve OUT_FILE: waits (up to 180 s) for the `strata serve` started as SERVE_PID to
# print "strata serve: serving ... on ADDR" to OUT_FILE and sets ADDR; fails (ADDR empty) when
# serve exits first or the time runs out.
wait_for_serve() {
  ADDR=""
  for _ in $(seq 1 1800); do
    ADDR=$(sed -n 's/^strata serve: serving .* on \([^ ]*\)$/\1/p' "$1" 2>/dev/null | head -n 1)
    [ -n "$ADDR" ] && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
