#!/usr/bin/env bash
# An independent client (tools/python_client/client.py: stubs generated from the protos, Debian's
# python3-grpcio) against `strata serve`: health, server reflection, GetModelInfo and a streaming
# Generate that must give the same tokens as `strata generate`. Skips (exit 77) when the Python
# gRPC packages or the proto tools are missing.
# usage: python_client_test.sh BIN_DIR SOURCE_DIR
set -u
BIN=$1
SRC=$2
STRATA=$BIN/strata
PY=/usr/bin/python3
CLIENT=$SRC/tools/python_client/client.py

skip() { echo "SKIP: $1"; exit 77; }
[ -x "$PY" ] || skip "$PY not found"
"$PY" -c 'import grpc, google.protobuf' 2>/dev/null || skip "$PY lacks grpc or protobuf (apt-get install python3-grpcio python3-protobuf)"
command -v protoc >/dev/null || skip "protoc not found (apt-get install protobuf-compiler)"
[ -x /usr/bin/grpc_python_plugin ] || skip "/usr/bin/grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)"
for f in grpc/health/v1/health.proto grpc/reflection/v1alpha/reflection.proto; do
  [ -f "/usr/share/grpc-proto/$f" ] || skip "/usr/share/grpc-proto/$f not found (apt-get install grpc-proto)"
done

TMP=$(mktemp -d /tmp/strata_pyclient_test.XXXXXX)
source "$(dirname "$0")/harness.sh"

M=$TMP/m.gguf
"$STRATA" make-model --arch llama --preset tiny --dtype f32 --out "$M" >/dev/null 2>&1 || { echo "FAIL: make-model"; exit 1; }
(exec "$STRATA" serve --model "$M" --tp 2 --pp 2 --listen 127.0.0.1:0 >"$TMP/serve.out" 2>"$TMP/serve.err" </dev/null) &
SERVE_PID=$!
if ! wait_for_serve "$TMP/serve.out"; then
  echo "FAIL: strata serve did not start:"
  cat "$TMP/serve.err"
  exit 1
fi

client() { "$PY" "$CLIENT" --server "$ADDR" "$@"; }

out=$(client health 2>&1)
[ "$out" = SERVING ] && pass "health: SERVING" || fail "health: '$out'"

out=$(client services 2>&1)
if grep -qx "strata.v1.Generation" <<<"$out" && grep -qx "grpc.health.v1.Health" <<<"$out"; then
  pass "reflection lists strata.v1.Generation and grpc.health.v1.Health ($(tr '\n' ' ' <<<"$out"))"
else
  fail "reflection services: '$out'"
fi

out=$(client describe strata.v1.Generation 2>&1)
if grep -q "rpc Generate(strata.v1.GenerateRequest) returns (strata.v1.GenerateResponse): server streaming" <<<"$out" \
   && grep -q "rpc Tokenize" <<<"$out" && grep -q "rpc GetModelInfo" <<<"$out" && grep -q "rpc GetClusterStatus" <<<"$out"; then
  pass "reflection describes strata.v1.Generation"
else
  fail "reflection describe: '$out'"
fi

out=$(client model-info 2>&1)
if "$PY" -c 'import json,sys; m = json.loads(sys.argv[1]); assert m["tp"] == 2 and m["pp"] == 2 and m["architecture"] == "llama", m' "$out"; then
  pass "model-info: llama, tp 2, pp 2"
else
  fail "model-info: '$out'"
fi

py=$(client generate --prompt "Once upon a time" --max-tokens 12 --temperature 0 --ignore-eos --json 2>&1)
cc=$("$STRATA" generate --server "$ADDR" --prompt "Once upon a time" --max-tokens 12 --temperature 0 --ignore-eos --json 2>&1)
ids() { "$PY" -c 'import json,sys; print(" ".join(str(json.loads(l)["id"]) for l in sys.stdin if l.startswith("{\"id\"")))'; }
py_ids=$(ids <<<"$py")
cc_ids=$(ids <<<"$cc")
if [ "$(wc -w <<<"$py_ids")" = 12 ] && [ "$py_ids" = "$cc_ids" ] && grep -q '"finish_reason": "length"' <<<"$(tail -n 1 <<<"$py")"; then
  pass "generate: 12 tokens, the same as strata generate ($py_ids)"
else
  fail "generate: python '$py' vs strata generate '$cc'"
fi

out=$(client generate --prompt "" 2>&1)
grep -q "INVALID_ARGUMENT" <<<"$out" && pass "generate: empty prompt is INVALID_ARGUMENT ($out)" || fail "generate empty prompt: '$out'"

kill -TERM "$SERVE_PID"
for _ in $(seq 1 300); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SERVE_PID"
rc=$?
[ $rc = 0 ] && pass "serve stops on SIGTERM with exit 0" || fail "serve exit $rc after SIGTERM"
SERVE_PID=""

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
