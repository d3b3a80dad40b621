#!/usr/bin/env bash
# Security end to end, with certificates made here by openssl:
#  - `strata serve` with TLS on both ports and API keys (tp=2: two workers that must present the
#    per-run join token over TLS): the right key works (flag, file, environment); a missing or wrong
#    key gets UNAUTHENTICATED; a client without the CA, or trusting another CA, is refused; health
#    stays open (serve's own probe sends no key); a worker without the join token, or with a wrong
#    one, is refused and logged; the prompt never appears in the logs.
#  - `strata-coordinator` with client certificates required (mutual TLS) and a join-token file: a
#    client without a certificate is refused, one with a certificate signed by the CA is served.
#  - Bad security flags exit 2 with a message naming the flag or file.
# usage: security_test.sh BIN_DIR SOURCE_DIR
set -u
BIN=$1
STRATA=$BIN/strata
TMP=$(mktemp -d /tmp/strata_security.XXXXXX)
source "$(dirname "$0")/harness.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
unset STRATA_API_KEY STRATA_JOIN_TOKEN
finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
  exit $?
}
command -v openssl >/dev/null || { echo "SKIP: openssl not found (apt-get install openssl)"; exit 77; }

# --- certificates: a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and
# an unrelated CA.
cd "$TMP" || exit 1
mkca() {  # NAME
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
mkcert() {  # NAME CA EXTENSIONS
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null &&
    printf '%s\n' "$3" > "$1.ext" &&
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days 2 \
      -extfile "$1.ext" 2>/dev/null
}
mkca ca && mkca otherca &&
  mkcert server ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" &&
  mkcert client ca "extendedKeyUsage=clientAuth" || { fail "openssl could not make the certificates"; finish; }
printf '# keys of the test\nkey-one-1234\n\n  key-two-5678  # the second\n' > keys.txt
echo "key-two-5678" > key2.txt
cd - >/dev/null || exit 1

M=$TMP/m.gguf
"$STRATA" make-model --arch llama --preset tiny --dtype f32 --out "$M" >/dev/null 2>&1 || { fail "make-model"; finish; }

# --- bad flags first: each exits 2 naming the problem.
expect_flag_error() {  # NAME PATTERN COMMAND...
  local name=$1 pattern=$2
  shift 2
  local out rc
  out=$("$@" 2>&1 </dev/null)
  rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$pattern" <<<"$out"; then pass "$name"; else fail "$name: exit $rc: $out"; fi
}
C=(--model "$M" --listen 127.0.0.1:0 --cluster-listen 127.0.0.1:0)
expect_flag_error "coordinator --tls-cert without --tls-key" "tls-key" "$BIN/strata-coordinator" "${C[@]}" --tls-cert "$TMP/server.pem"
expect_flag_error "coordinator --tls-key not a key" "no PEM private key" "$BIN/strata-coordinator" "${C[@]}" --tls-cert "$TMP/server.pem" --tls-key "$TMP/server.pem"
expect_flag_error "coordinator --api-keys missing file" "$TMP/nokeys" "$BIN/strata-coordinator" "${C[@]}" --api-keys "$TMP/nokeys"
: > "$TMP/empty"
expect_flag_error "coordinator --api-keys empty file" "holds no key" "$BIN/strata-coordinator" "${C[@]}" --api-keys "$TMP/empty"
expect_flag_error "coordinator --join-token-file empty" "join-token-file" "$BIN/strata-coordinator" "${C[@]}" --join-token-file "$TMP/empty"
expect_flag_error "serve --tls-ca without --tls-cert" "need --tls-cert" "$STRATA" serve --model "$M" --tls-ca "$TMP/ca.pem"
expect_flag_error "generate --tls-cert without --tls-ca" "need --tls-ca" "$STRATA" generate --server 127.0.0.1:1 --prompt x --tls-cert "$TMP/client.pem" --tls-key "$TMP/client.key"

# --- strata serve with TLS and API keys.
PROMPT="the secret words are purple elephant"
"$STRATA" serve --model "$M" --tp 2 --pp 1 --listen 127.0.0.1:0 --threads 1 --tls-cert "$TMP/server.pem" \
  --tls-key "$TMP/server.key" --tls-ca "$TMP/ca.pem" --api-keys "$TMP/keys.txt" > "$TMP/serve.out" 2> "$TMP/serve.err" &
SERVE_PID=$!
if ! wait_for_serve "$TMP/serve.out"; then
  fail "strata serve with TLS and API keys did not start: $(tail -5 "$TMP/serve.err")"
  finish
fi
# serve's readiness probe is a health check without a key: reaching SERVING shows health is open.
pass "serve with TLS + API keys is up at $ADDR (its keyless health probe saw SERVING)"
PORT=${ADDR##*:}
GEN=("$STRATA" generate --prompt "$PROMPT" --max-tokens 4 --temperature 0 --timeout 60)
expect_ok() {  # NAME ARGS...
  local name=$1
  shift
  local out
  if out=$("${GEN[@]}" "$@" 2>&1); then pass "$name"; else fail "$name: $out"; fi
}
expect_refused() {  # NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  local out rc
  out=$("${GEN[@]}" "$@" 2>&1)
  rc=$?
  if [ $rc -ne 0 ] && grep -q -- "$pattern" <<<"$out"; then pass "$name ($(tail -1 <<<"$out"))"; else fail "$name: exit $rc: $out"; fi
}
expect_ok "TLS + --api-key" --server "127.0.0.1:$PORT" --tls-ca "$TMP/ca.pem" --api-key key-one-1234
expect_ok "TLS + --api-key-file, name localhost" --server "localhost:$PORT" --tls-ca "$TMP/ca.pem" --api-key-file "$TMP/key2.txt"
STRATA_API_KEY=key-two-5678 expect_ok "TLS + STRATA_API_KEY" --server "127.0.0.1:$PORT" --tls-ca "$TMP/ca.pem"
expect_refused "no API key" "UNAUTHENTICATED: missing API key" --server "127.0.0.1:$PORT" --tls-ca "$TMP/ca.pem"
expect_refused "wrong API key" "UNAUTHENTICATED: invalid API key" --server "127.0.0.1:$PORT" --tls-ca "$TMP/ca.pem" --api-key key-one-123
expect_refused "a key's prefix" "UNAUTHENTICATED" --server "127.0.0.1:$PORT" --tls-ca "$TMP/ca.pem" --api-key key-one
expect_refused "plaintext client" "UNAVAILABLE" --server "127.0.0.1:$PORT" --api-key key-one-1234 --timeout 5
expect_refused "client trusting another CA" "UNAVAILABLE" --server "127.0.0.1:$PORT" --tls-ca "$TMP/otherca.pem" --api-key key-one-1234 --timeout 5
expect_refused "certificate name mismatch" "UNAVAILABLE" --server "127.0.0.1:$PORT" --tls-ca "$TMP/ca.pem" --tls-server-name other.example --api-key key-one-1234 --timeout 5

# Workers: the per-run join token is required on the cluster port.
CLUSTER=$(sed -n 's/^strata serve: workers attach at \([^ ]*\) .*/\1/p' "$TMP/serve.err")
if [ -z "$CLUSTER" ]; then
  fail "serve did not report the cluster address"
else
  rogue() {  # NAME PATTERN [ENV...]
    local name=$1 pattern=$2
    shift 2
    local out rc
    out=$(env "$@" timeout 60 mpirun -np 2 --oversubscribe "$BIN/strata-worker" --coordinator "$CLUSTER" \
          --tls-ca "$TMP/ca.pem" --threads 1 2>&1 </dev/null)
    rc=$?
    if [ $rc -ne 0 ] && grep -q "$pattern" <<<"$out"; then pass "$name"; else fail "$name: exit $rc: $(tail -3 <<<"$out")"; fi
  }
  rogue "worker without a join token is refused" "refused this worker: no join token"
  rogue "worker with a wrong join token is refused" "refused this worker: wrong join token" STRATA_JOIN_TOKEN=guess
  if [ "$(grep -c "refused a worker from .*join token" "$TMP/serve.err")" -ge 2 ]; then
    pass "the coordinator logged the refused workers"
  else
    fail "no refusal in the coordinator's log"
  fi
  expect_ok "still serving after the refused workers" --server "127.0.0.1:$PORT" --tls-ca "$TMP/ca.pem" --api-key key-one-1234
fi
if grep -q "purple elephant" "$TMP/serve.out" "$TMP/serve.err"; then fail "the prompt appears in serve's logs"; else pass "the prompt is not logged"; fi
if grep -q "key-one-1234\|key-two-5678" "$TMP/serve.out" "$TMP/serve.err"; then fail "an API key appears in the logs"; else pass "no API key in the logs"; fi
kill -TERM $SERVE_PID
wait $SERVE_PID
SERVE_PID=""

# --- strata-coordinator with mutual TLS and a join-token file, one worker.
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/join.token"
"$BIN/strata-coordinator" --model "$M" --listen 127.0.0.1:0 --cluster-listen 127.0.0.1:0 \
  --tls-cert "$TMP/server.pem" --tls-key "$TMP/server.key" --tls-client-ca "$TMP/ca.pem" \
  --join-token-file "$TMP/join.token" > "$TMP/coord.out" 2> "$TMP/coord.err" &
COORD=$!
LINE=""
for _ in $(seq 1 100); do
  LINE=$(grep -m1 "listening:" "$TMP/coord.out")
  [ -n "$LINE" ] && break
  sleep 0.1
done
PUB=$(sed -n 's/.*public=\([^ ]*\).*/\1/p' <<<"$LINE")
CLU=$(sed -n 's/.*cluster=\([^ ]*\).*/\1/p' <<<"$LINE")
mpirun -np 1 "$BIN/strata-worker" --coordinator "$CLU" --tls-ca "$TMP/ca.pem" --join-token-file "$TMP/join.token" \
  --threads 1 > "$TMP/worker.out" 2>&1 </dev/null &
WORKER=$!
for _ in $(seq 1 300); do
  grep -q "worker rank 0 ready" "$TMP/coord.err" && break
  sleep 0.1
done
grep -q "worker rank 0 ready" "$TMP/coord.err" && pass "worker with --join-token-file attached over TLS" ||
  fail "worker did not attach: $(tail -3 "$TMP/worker.out")"
expect_refused "mutual TLS: client without a certificate" "UNAVAILABLE" --server "$PUB" --tls-ca "$TMP/ca.pem" --timeout 5
expect_refused "mutual TLS: client certificate from another CA" "UNAVAILABLE" --server "$PUB" --tls-ca "$TMP/ca.pem" \
  --tls-cert "$TMP/otherca.pem" --tls-key "$TMP/otherca.key" --timeout 5
expect_ok "mutual TLS: client with a certificate" --server "$PUB" --tls-ca "$TMP/ca.pem" --tls-cert "$TMP/client.pem" --tls-key "$TMP/client.key"
kill -TERM $COORD
wait $COORD
rc=$?
[ $rc -eq 0 ] && pass "coordinator exits 0 on SIGTERM" || fail "coordinator exit $rc"
wait $WORKER 2>/dev/null
finish
