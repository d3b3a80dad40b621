#!/usr/bin/env bash
# End-to-end test of `strata bench` against a real `strata serve` (tp=1, pp=1, tiny model): closed
# and open loop, the JSON report (every field present, counts that add up, positive and ordered
# latencies, token counts as asked), errors tallied by status code, bad flags, no server.
# usage: bench_test.sh BIN_DIR SOURCE_DIR
set -u
BIN=$1
STRATA=$BIN/strata
TMP=$(mktemp -d /tmp/strata_bench_test.XXXXXX)
source "$(dirname "$0")/harness.sh"

# expect_error NAME RC NEEDLE CMD...: the command must exit with RC and print NEEDLE on stderr.
expect_error() {
  local name=$1 want_rc=$2 needle=$3
  shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne "$want_rc" ]; then fail "$name: exit $rc, expected $want_rc ($err)"; return; fi
  if ! grep -qF -- "$needle" <<<"$err"; then fail "$name: message '$err' lacks '$needle'"; return; fi
  pass "$name ($(tail -n 1 <<<"$err"))"
}

# check_report NAME FILE [KEY=VALUE...]: FILE is a complete bench report, consistent with itself
# and with the expectations: sent, succeeded, output_tokens_total, good (exact integers),
# prompt_min/prompt_max (bounds on prompt_tokens_total), codes (the failure codes,
# comma-separated; "" = none), mode.
check_report() {
  local name=$1 file=$2
  shift 2
  local out
  if out=$(python3 - "$file" "$@" 2>&1 <<'EOF'
import json, math, sys
path, expect = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
j = json.load(open(path))
problems = []
def need(cond, what):
    if not cond: problems.append(what)

for k in ["config", "counts", "duration_s", "requests_per_s", "output_tokens_per_s", "total_tokens_per_s",
          "prompt_tokens_total", "output_tokens_total", "ttft_s", "itl_s", "tpot_s", "e2e_s", "goodput", "interrupted"]:
    need(k in j, f"missing {k}")
if problems: print("; ".join(problems)); sys.exit(1)
cfg = j["config"]
for k in ["server", "mode", "concurrency", "rate", "max_concurrency", "requests", "duration_limit_s", "warmup",
          "prompt_tokens", "prompts_file", "output_tokens", "seed", "temperature", "ignore_eos", "timeout_s", "model"]:
    need(k in cfg, f"missing config.{k}")
for k in ["name", "path", "architecture", "vocab_size", "context_length", "tp", "pp"]:
    need(k in cfg.get("model", {}), f"missing config.model.{k}")
need(cfg.get("model", {}).get("tp") == 1 and cfg.get("model", {}).get("pp") == 1, "config.model tp/pp")
c = j["counts"]
for k in ["sent", "succeeded", "failed", "failed_by_code", "error_examples"]:
    need(k in c, f"missing counts.{k}")
if problems: print("; ".join(problems)); sys.exit(1)

need(c["sent"] == c["succeeded"] + sum(c["failed_by_code"].values()),
     f"sent {c['sent']} != succeeded {c['succeeded']} + failed by code {c['failed_by_code']}")
need(c["failed"] == sum(c["failed_by_code"].values()), "failed != sum of failed_by_code")
need(set(c["error_examples"]) == set(c["failed_by_code"]), "an error example per failing code")
need(j["interrupted"] is False, "interrupted")
need(j["duration_s"] > 0, "duration_s > 0")
for k in ["sent", "succeeded", "output_tokens_total", "good"]:
    if k in expect:
        got = j["goodput"]["good"] if k == "good" else (j[k] if k in j else c[k])
        need(got == int(expect[k]), f"{k} = {got}, expected {expect[k]}")
if "prompt_min" in expect:
    need(int(expect["prompt_min"]) <= j["prompt_tokens_total"] <= int(expect["prompt_max"]),
         f"prompt_tokens_total {j['prompt_tokens_total']} outside [{expect['prompt_min']}, {expect['prompt_max']}]")
if "codes" in expect:
    want = set(filter(None, expect["codes"].split(",")))
    need(set(c["failed_by_code"]) == want, f"failure codes {sorted(c['failed_by_code'])}, expected {sorted(want)}")
if "mode" in expect:
    need(cfg["mode"] == expect["mode"], f"mode {cfg['mode']}")

ok = c["succeeded"]
for k in ["ttft_s", "itl_s", "tpot_s", "e2e_s"]:
    s = j[k]
    for f in ["count", "mean", "p50", "p90", "p99", "min", "max"]:
        need(f in s, f"missing {k}.{f}")
    if problems: continue
    if s["count"] == 0:
        need(all(s[f] is None for f in ["mean", "p50", "p90", "p99", "min", "max"]), f"{k}: null stats without a sample")
        continue
    vals = [s[f] for f in ["min", "p50", "p90", "p99", "max"]]
    need(all(isinstance(v, (int, float)) and v > 0 and math.isfinite(v) for v in vals + [s["mean"]]),
         f"{k}: not all positive: {s}")
    need(vals == sorted(vals), f"{k}: not min <= p50 <= p90 <= p99 <= max: {s}")
    need(s["min"] <= s["mean"] <= s["max"], f"{k}: mean outside [min, max]: {s}")
need(j["ttft_s"]["count"] == ok and j["e2e_s"]["count"] == ok, "a TTFT and an E2E per succeeded request")
need(j["ttft_s"]["p50"] is None or j["ttft_s"]["p50"] <= j["e2e_s"]["p50"] + 1e-9, "median TTFT <= median E2E")
need(j["itl_s"]["count"] <= max(0, j["output_tokens_total"] - ok), "ITL gaps <= output tokens - requests")
if ok:
    d = j["duration_s"]
    need(abs(j["requests_per_s"] - ok / d) < 1e-6 * max(1, ok / d), "requests_per_s = succeeded / duration")
    need(abs(j["output_tokens_per_s"] - j["output_tokens_total"] / d) < 1e-6 * max(1, j["output_tokens_per_s"]),
         "output_tokens_per_s = output tokens / duration")
g = j["goodput"]
for k in ["targets", "good", "requests_per_s", "fraction"]:
    need(k in g, f"missing goodput.{k}")
if not problems:
    need(0 <= g["good"] <= ok, "goodput.good <= succeeded")
    need(c["sent"] == 0 or abs(g["fraction"] - g["good"] / c["sent"]) < 1e-9, "goodput.fraction = good / sent")
print("; ".join(problems) if problems else
      f"sent {c['sent']}, ok {ok}, failed {c['failed_by_code']}, {j['output_tokens_total']} output tokens, "
      f"ttft p50 {j['ttft_s']['p50']}, good {g['good']}")
sys.exit(1 if problems else 0)
EOF
  ); then
    pass "$name: $out"
  else
    fail "$name: $out ($(head -c 3000 "$file" 2>/dev/null))"
  fi
}

M=$TMP/m.gguf
if ! "$STRATA" make-model --arch llama --preset tiny --dtype f32 --out "$M" >/dev/null 2>"$TMP/mm.err"; then
  echo "FAIL: make-model: $(cat "$TMP/mm.err")"
  exit 1
fi

# --- flags: exit 2, naming the flag, before anything is sent ---
expect_error "bench: missing --server" 2 "--server is required" "$STRATA" bench
expect_error "bench: unknown flag" 2 "unknown flag --bogus" "$STRATA" bench --server 127.0.0.1:1 --bogus
expect_error "bench: --concurrency 0" 2 "--concurrency" "$STRATA" bench --server 127.0.0.1:1 --concurrency 0
expect_error "bench: --rate with --concurrency" 2 "--max-concurrency" \
  "$STRATA" bench --server 127.0.0.1:1 --rate 5 --concurrency 2
expect_error "bench: --rate 0" 2 "--rate" "$STRATA" bench --server 127.0.0.1:1 --rate 0
expect_error "bench: bad --prompt-tokens" 2 "--prompt-tokens" "$STRATA" bench --server 127.0.0.1:1 --prompt-tokens 9:3
expect_error "bench: bad --output-tokens" 2 "--output-tokens" "$STRATA" bench --server 127.0.0.1:1 --output-tokens lots
expect_error "bench: bad --goodput" 2 "--goodput" "$STRATA" bench --server 127.0.0.1:1 --goodput latency=5
expect_error "bench: --timeout 0" 2 "--timeout" "$STRATA" bench --server 127.0.0.1:1 --timeout 0
expect_error "bench: missing --prompts-file" 2 "--prompts-file" "$STRATA" bench --server 127.0.0.1:1 --prompts-file "$TMP/none"
expect_error "bench: unwritable --json" 2 "--json: cannot write" "$STRATA" bench --server 127.0.0.1:1 --json "$TMP/no/such/dir.json"
"$STRATA" --help | grep -q "^  bench " && pass "strata --help lists bench" || fail "strata --help lacks bench"
"$STRATA" bench --help | grep -q -- "--goodput" && pass "bench --help lists its flags" || fail "bench --help"

# --- no server: exit 1 ---
free_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_error "bench: no server" 1 "cannot reach the server at 127.0.0.1:$free_port: UNAVAILABLE" \
  "$STRATA" bench --server "127.0.0.1:$free_port" --requests 1

# --- a server: tp=1, pp=1, at most 32 new tokens per request ---
(exec "$STRATA" serve --model "$M" --tp 1 --pp 1 --listen 127.0.0.1:0 --max-new-tokens 32 \
   >"$TMP/serve.out" 2>"$TMP/serve.err" </dev/null) &
SERVE_PID=$!
if ! wait_for_serve "$TMP/serve.out"; then
  echo "FAIL: strata serve did not start; stdout: $(cat "$TMP/serve.out"); stderr:"
  cat "$TMP/serve.err"
  exit 1
fi
pass "serve: $(cat "$TMP/serve.out")"

# Closed loop: 4 streams, 12 requests of 16 + 16 tokens, 2 warm-up requests not counted; the table
# on stdout, the JSON in a file. Generous targets: every request is good.
"$STRATA" bench --server "$ADDR" --concurrency 4 --requests 12 --warmup 2 --prompt-tokens 16 --output-tokens 16 \
  --goodput ttft=60000,tpot=60000,e2e=60000 --json "$TMP/closed.json" >"$TMP/closed.out" 2>"$TMP/closed.err"
rc=$?
[ $rc -eq 0 ] && pass "closed loop: exit 0" || fail "closed loop: exit $rc: $(cat "$TMP/closed.err")"
check_report "closed loop" "$TMP/closed.json" mode=closed sent=12 succeeded=12 output_tokens_total=192 \
  prompt_min=192 prompt_max=192 good=12 codes=
for needle in "Requests sent: *12" "Succeeded: *12" "closed loop, 4 streams" "^TTFT  *12 " "^E2E  *12 " "Goodput"; do
  grep -q -- "$needle" "$TMP/closed.out" || fail "closed loop: table lacks '$needle': $(cat "$TMP/closed.out")"
done
pass "closed loop: table"
[ ! -s "$TMP/closed.err" ] && pass "closed loop: nothing on stderr without a terminal" \
  || fail "closed loop: stderr: $(cat "$TMP/closed.err")"

# Open loop: Poisson arrivals at 20 requests/s, at most 4 in flight, prompts of 4..24 tokens;
# --json - puts the JSON alone on stdout and the table on stderr.
"$STRATA" bench --server "$ADDR" --rate 20 --max-concurrency 4 --requests 10 --prompt-tokens 4:24 --output-tokens 8 \
  --seed 7 --json - >"$TMP/open.json" 2>"$TMP/open.err"
rc=$?
[ $rc -eq 0 ] && pass "open loop: exit 0" || fail "open loop: exit $rc: $(cat "$TMP/open.err")"
check_report "open loop" "$TMP/open.json" mode=open sent=10 succeeded=10 output_tokens_total=80 prompt_min=40 \
  prompt_max=240 codes=
grep -q "open loop, Poisson 20 req/s, at most 4 in flight" "$TMP/open.err" && pass "open loop: table on stderr" \
  || fail "open loop: stderr: $(cat "$TMP/open.err")"

# The same seed, the same prompts: the same prompt token total.
"$STRATA" bench --server "$ADDR" --rate 20 --max-concurrency 4 --requests 10 --prompt-tokens 4:24 --output-tokens 8 \
  --seed 7 --json "$TMP/open2.json" >/dev/null 2>&1
same=$(python3 -c 'import json, sys; a, b = (json.load(open(p))["prompt_tokens_total"] for p in sys.argv[1:]); print(a == b)' \
  "$TMP/open.json" "$TMP/open2.json" 2>&1)
[ "$same" = True ] && pass "open loop: --seed repeats the workload" || fail "open loop: --seed: $same"

# Errors tallied by code: text prompts whose max_tokens alternate 8 (fine) and 40 (above the
# server's --max-new-tokens 32: INVALID_ARGUMENT). Some succeed: exit 0.
printf '%s\n' '{"prompt": "Once upon a time", "max_tokens": 8}' '{"prompt": "Hello there", "max_tokens": 40}' \
  >"$TMP/prompts.jsonl"
"$STRATA" bench --server "$ADDR" --concurrency 2 --requests 6 --prompts-file "$TMP/prompts.jsonl" \
  --json "$TMP/mixed.json" >"$TMP/mixed.out" 2>"$TMP/mixed.err"
rc=$?
[ $rc -eq 0 ] && pass "mixed: exit 0 with some failures" || fail "mixed: exit $rc: $(cat "$TMP/mixed.err")"
check_report "mixed: INVALID_ARGUMENT tallied" "$TMP/mixed.json" sent=6 succeeded=3 output_tokens_total=24 \
  codes=INVALID_ARGUMENT
grep -q "INVALID_ARGUMENT: *3 *(max_new_tokens must be in \[1, 32\], got 40)" "$TMP/mixed.out" \
  && pass "mixed: the table shows the code, count and message" || fail "mixed: table: $(cat "$TMP/mixed.out")"
grep -q "warning: outputs of up to 40 tokens; the server's max_new_tokens is 32" "$TMP/mixed.err" \
  && pass "mixed: a warning about the file's max_tokens" || fail "mixed: stderr: $(cat "$TMP/mixed.err")"

# A deadline too short for 32 tokens: DEADLINE_EXCEEDED (a rare request may still make it).
"$STRATA" bench --server "$ADDR" --concurrency 8 --requests 16 --output-tokens 32 --timeout 0.001 \
  --json "$TMP/deadline.json" >"$TMP/deadline.out" 2>"$TMP/deadline.err"
rc=$?
check_report "deadline: DEADLINE_EXCEEDED tallied" "$TMP/deadline.json" sent=16 codes=DEADLINE_EXCEEDED

# Every request fails: the report is still written, exit 1.
"$STRATA" bench --server "$ADDR" --concurrency 2 --requests 4 --output-tokens 33 \
  --json "$TMP/allfail.json" >"$TMP/allfail.out" 2>"$TMP/allfail.err"
rc=$?
[ $rc -eq 1 ] && grep -q "all 4 requests failed" "$TMP/allfail.err" && grep -q "warning: outputs of up to 33 tokens" "$TMP/allfail.err" \
  && pass "all failing: exit 1, a warning and a message" || fail "all failing: exit $rc, stderr $(cat "$TMP/allfail.err")"
check_report "all failing: the report" "$TMP/allfail.json" sent=4 succeeded=0 output_tokens_total=0 good=0 \
  codes=INVALID_ARGUMENT

# --duration: sends until the time is up, then waits for the requests in flight.
"$STRATA" bench --server "$ADDR" --concurrency 2 --duration 1 --output-tokens 4 --json "$TMP/duration.json" \
  >/dev/null 2>"$TMP/duration.err"
rc=$?
[ $rc -eq 0 ] && pass "duration: exit 0" || fail "duration: exit $rc: $(cat "$TMP/duration.err")"
check_report "duration" "$TMP/duration.json" codes=
python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["duration_s"] >= 1 and j["config"]["requests"] is None and j["counts"]["sent"] >= 2, j' \
  "$TMP/duration.json" 2>/dev/null && pass "duration: ran 1 s, no request limit" || fail "duration: $(head -c 500 "$TMP/duration.json")"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
