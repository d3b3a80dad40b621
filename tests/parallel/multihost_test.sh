#!/usr/bin/env bash
# The MPI ranks on two "hosts" give the single-process result: identical greedy ids and logits
# within 1e-4 of `strata run`, for tp=2 pp=1, tp=1 pp=2 and tp=2 pp=2 (TP split across the hosts,
# then PP split across the hosts), on a generated llama model and on stories260K when present.
#
# The hosts are Linux network namespaces: a hub namespace holds a bridge (10.213.0.254) and one
# veth pair per host namespace (10.213.0.1, 10.213.0.2). mpirun runs in the hub and starts one
# orted per host through a launcher that Open MPI calls like ssh (`agent [options] HOST command`),
# which runs the command in that host's namespace. Open MPI may only use TCP on the test subnet
# (btl tcp,self: no shared memory), so every message between the hosts crosses a veth. Each rank
# records the namespace it ran in, and the test checks the ranks really were spread over both.
# Everything lives in namespaces this test creates (nothing is added to the root namespace), so
# traffic can only reach the test's own addresses and parallel runs cannot collide.
#
# Needs root and iproute2; skips (exit 0, "skip: reason") where namespaces cannot be made.
# Every namespace, veth and bridge it made is removed on exit, failure, timeout or signal; ones
# left behind by a run that was killed outright (SIGKILL) are removed by the next run.
# usage: multihost_test.sh BIN_DIR SOURCE_DIR [MPIEXEC]
set -u
BIN=$1
SRC=$2
MPIEXEC=${3:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Stop early enough that ctest (TIMEOUT 900) never has to kill this script before it cleans up.
DEADLINE=$((SECONDS + ${STRATA_MULTIHOST_BUDGET:-780}))
skip() { echo "skip: $1"; exit 0; }

[ "$(id -u)" = 0 ] || skip "not root: creating network namespaces needs root (uid $(id -u))"
command -v ip > /dev/null || skip "no 'ip' command (install iproute2)"
command -v timeout > /dev/null || skip "no 'timeout' command (coreutils)"
command -v "$MPIEXEC" > /dev/null || skip "no MPI launcher '$MPIEXEC'"

PREFIX=strata-mh-
HUB=${PREFIX}$$-hub
HOSTS=("${PREFIX}$$-h0" "${PREFIX}$$-h1")
NET=10.213.0  # /24 inside the test's own namespaces only
HOST_IPS=("$NET.1" "$NET.2")
HUB_IP=$NET.254
CREATED=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-mh-$$.XXXXXX")

# Processes still inside a namespace keep it alive after `ip netns del`: stop them first (only
# this test's processes can be in this test's namespaces).
reap_ns() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2> /dev/null)
  [ -n "$pids" ] || return 0
  kill -TERM $pids 2> /dev/null
  sleep 0.5
  pids=$(ip netns pids "$ns" 2> /dev/null)
  [ -n "$pids" ] && kill -KILL $pids 2> /dev/null
  return 0
}
delete_ns() { reap_ns "$1"; ip netns del "$1" 2> /dev/null; }
cleanup() {
  trap - EXIT INT TERM HUP
  local ns
  for ns in "${CREATED[@]}"; do delete_ns "$ns"; done  # the veths and the bridge go with them
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Namespaces of earlier runs that were killed before they could clean up: their pid is gone (or is
# this process, which has not created anything yet).
for ns in $(ip netns list 2> /dev/null | awk '{print $1}'); do
  case "$ns" in
    ${PREFIX}*-hub | ${PREFIX}*-h[0-9]) ;;
    *) continue ;;
  esac
  owner=${ns#"$PREFIX"}
  owner=${owner%%-*}
  case "$owner" in '' | *[!0-9]*) continue ;; esac
  if [ "$owner" = $$ ] || ! kill -0 "$owner" 2> /dev/null; then
    echo "note: removing namespace $ns left by an earlier run (pid $owner)"
    delete_ns "$ns"
  fi
done
for dir in "${TMPDIR:-/tmp}"/strata-mh-*.*; do
  [ -d "$dir" ] || continue
  owner=${dir##*/strata-mh-}
  owner=${owner%%.*}
  case "$owner" in '' | *[!0-9]*) continue ;; esac
  [ "$owner" != $$ ] && ! kill -0 "$owner" 2> /dev/null && rm -rf "$dir"
done

# --- the network: hub (bridge) + one veth pair per host ---
make_ns() {
  local err
  err=$(ip netns add "$1" 2>&1) || skip "cannot create network namespace $1: ${err:-ip netns add failed}"
  CREATED+=("$1")
  ip -n "$1" link set lo up || skip "cannot bring up lo in namespace $1"
}
make_ns "$HUB"
err=$(ip netns exec "$HUB" true 2>&1) || skip "cannot run a command in a network namespace (ip netns exec): $err"
err=$(ip -n "$HUB" link add br0 type bridge 2>&1) || skip "cannot create a bridge in a namespace: $err"
ip -n "$HUB" addr add "$HUB_IP/24" dev br0 && ip -n "$HUB" link set br0 up || skip "cannot configure the bridge"
for i in "${!HOSTS[@]}"; do
  ns=${HOSTS[$i]}
  make_ns "$ns"
  err=$(ip -n "$HUB" link add "h$i" type veth peer name eth0 netns "$ns" 2>&1) ||
    skip "cannot create a veth pair between namespaces: $err"
  { ip -n "$HUB" link set "h$i" master br0 up &&
    ip -n "$ns" addr add "${HOST_IPS[$i]}/24" dev eth0 &&
    ip -n "$ns" link set eth0 up; } || skip "cannot configure veth h$i"
done

# The launcher Open MPI runs instead of ssh. Unlike ssh it inherits nothing: the remote daemon
# gets a fresh environment and everything else on its command line, as on a real host.
AGENT=$TMP/netns_agent.sh
cat > "$AGENT" << EOF
#!/bin/sh
# netns_agent.sh [ssh options] HOST command...: runs command in HOST's network namespace.
echo "\$*" >> "$TMP/agent.log"
while [ \$# -gt 0 ]; do
  case "\$1" in
    -o|-p|-l|-i|-F|-E|-J|-b|-c|-m) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host=\$1
shift
case "\$host" in
  ${HOST_IPS[0]}) ns=${HOSTS[0]} ;;
  ${HOST_IPS[1]}) ns=${HOSTS[1]} ;;
  *) echo "netns_agent: unknown host '\$host' (only ${HOST_IPS[*]})" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" env -i PATH="$PATH" HOME="${HOME:-/root}" LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}" \\
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 sh -c "\$*"
EOF
chmod +x "$AGENT"
printf '%s slots=2\n' "${HOST_IPS[@]}" > "$TMP/hostfile"

# Each rank writes "RANK NAMESPACE ADDRESSES" to $WHERE_DIR/RANK, then becomes the command.
WRAP=$TMP/where.sh
cat > "$WRAP" << 'EOF'
#!/bin/sh
echo "$OMPI_COMM_WORLD_RANK $(ip netns identify $$) $(ip -4 -o addr show scope global | awk '{print $4}')" \
  > "$WHERE_DIR/$OMPI_COMM_WORLD_RANK"
exec "$@"
EOF
chmod +x "$WRAP"

failures=0
passes=0
pass() { passes=$((passes + 1)); echo "ok: $1"; }
fail() { failures=$((failures + 1)); echo "FAIL: $1"; }

# Waits (up to 10 s) for the daemons of the previous job to leave the host namespaces, then
# stops any that did not: a new job whose daemon starts while the last one is still tearing down
# can lose that daemon and hang.
settle_hosts() {
  local ns
  for _ in $(seq 1 100); do
    local busy=0
    for ns in "${HOSTS[@]}"; do [ -n "$(ip netns pids "$ns" 2> /dev/null)" ] && busy=1; done
    [ $busy -eq 0 ] && return 0
    sleep 0.1
  done
  for ns in "${HOSTS[@]}"; do reap_ns "$ns"; done
}

# mpi_once NP MAP(node|slot) WHERE_DIR COMMAND...: mpirun in the hub, ranks on the two hosts,
# under timeout. A job whose ranks have not all started within START_WAIT seconds lost a daemon
# at launch (an Open MPI start-up race: mpirun then waits forever); it is stopped at once and
# returns 125, so that the caller retries instead of waiting out the timeout.
START_WAIT=30
mpi_once() {
  local np=$1 map=$2 where=$3
  shift 3
  local left=$((DEADLINE - SECONDS))
  if [ $left -lt 20 ]; then
    echo "out of time (STRATA_MULTIHOST_BUDGET)" >&2
    return 124
  fi
  [ $left -gt 120 ] && left=120
  settle_hosts
  rm -rf "$where" && mkdir -p "$where"
  # In the background so that a signal to this script is handled at once (the trap cleans up),
  # not after mpirun ends.
  timeout -k 10 "$left" ip netns exec "$HUB" env WHERE_DIR="$where" "$MPIEXEC" --oversubscribe \
    --hostfile "$TMP/hostfile" --map-by "$map" -np "$np" -x WHERE_DIR \
    --mca plm rsh --mca plm_rsh_agent "$AGENT" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl tcp,self --mca btl_tcp_if_include "$NET.0/24" --mca oob_tcp_if_include "$NET.0/24" \
    "$WRAP" "$@" &
  local pid=$! ticks=0 rc
  while kill -0 "$pid" 2> /dev/null; do
    if [ $ticks -ge $((START_WAIT * 10)) ] && [ "$(ls "$where" 2> /dev/null | wc -l)" -lt "$np" ]; then
      echo "the job did not start within ${START_WAIT}s (a daemon lost at launch)" >&2
      kill -TERM "$pid" 2> /dev/null
      wait "$pid"
      for ns in "${HOSTS[@]}"; do reap_ns "$ns"; done
      ip netns pids "$HUB" 2> /dev/null | xargs -r kill -KILL 2> /dev/null
      return 125
    fi
    sleep 0.1
    ticks=$((ticks + 1))
  done
  wait "$pid"
  rc=$?
  [ $rc -eq 124 ] && echo "timed out after ${left}s" >&2
  # A daemon left behind by a killed run must not disturb the next one.
  if [ $rc -ne 0 ]; then for ns in "${HOSTS[@]}"; do reap_ns "$ns"; done; fi
  return $rc
}

# mpi: mpi_once, tried up to three times when the job fails to start or run (a lost daemon at
# launch is an Open MPI start-up race, not what this test checks); a wrong result is caught by the
# caller.
mpi() {
  local attempt
  for attempt in 1 2 3; do
    mpi_once "$@" && return 0
    [ $attempt -lt 3 ] && echo "note: mpirun failed; retrying" >&2
  done
  return 1
}

# placement NP MAP WHERE_DIR: prints "ok ..." when rank r ran in the namespace the mapping puts it
# in (node: host r % 2; slot, 2 slots a host: host r / 2) and the ranks span both namespaces.
placement() {
  local np=$1 map=$2 where=$3 r host line ns seen="" summary=""
  for ((r = 0; r < np; r++)); do
    if [ "$map" = node ]; then host=$((r % 2)); else host=$((r / 2)); fi
    line=$(cat "$where/$r" 2> /dev/null) || { echo "rank $r did not report its namespace"; return; }
    ns=$(awk '{print $2}' <<< "$line")
    [ "$ns" = "${HOSTS[$host]}" ] || { echo "rank $r ran in namespace '${ns:-root}', expected ${HOSTS[$host]}"; return; }
    grep -qw "${HOST_IPS[$host]}" <<< "$line" || { echo "rank $r: address is not ${HOST_IPS[$host]}: $line"; return; }
    case " $seen " in *" $ns "*) ;; *) seen="$seen $ns" ;; esac
    summary="$summary r$r@${HOST_IPS[$host]}"
  done
  [ "$(wc -w <<< "$seen")" -ge 2 ] || { echo "all ranks ran in one namespace:$seen"; return; }
  echo "ok:${summary# }"
}

veth_bytes() {  # bytes through the hub's side of both veths so far
  local total=0 i b
  for i in "${!HOSTS[@]}"; do
    b=$(ip netns exec "$HUB" cat "/sys/class/net/h$i/statistics/rx_bytes" "/sys/class/net/h$i/statistics/tx_bytes" 2> /dev/null |
      awk '{s += $1} END {print s + 0}')
    total=$((total + b))
  done
  echo $total
}

# --- 1. Open MPI reaches both hosts, and only over the veths ---
if out=$(mpi 4 node "$TMP/where" true 2>&1); then
  verdict=$(placement 4 node "$TMP/where")
  case "$verdict" in
    ok*) pass "mpirun from the hub namespace, 4 ranks on 2 hosts: ${verdict#ok:}" ;;
    *) fail "rank placement: $verdict" ;;
  esac
else
  fail "mpirun across namespaces failed: $(tail -20 <<< "$out")"
  echo "agent calls:"
  cat "$TMP/agent.log" 2> /dev/null
fi
n_agent_hosts=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^10\.213\./) {print $i; break}}' "$TMP/agent.log" 2> /dev/null |
  sort -u | wc -l)
[ "$n_agent_hosts" -eq 2 ] && pass "the launcher started a daemon on each of the 2 hosts" ||
  fail "the launcher was called for $n_agent_hosts hosts, expected 2"

# --- 2. the identity, layouts spread over the two hosts ---
PROMPT="Once upon a time, in a small town"
# check_layouts NAME MODEL N_VOCAB MAX_TOKENS "T P MAP" ...
check_layouts() {
  local name=$1 model=$2 n_vocab=$3 max_tokens=$4
  shift 4
  "$BIN/strata" run --model "$model" --prompt "$PROMPT" --max-tokens "$max_tokens" --temperature 0 --ignore-eos \
    --json --threads 1 --dump-logits "$TMP/ref.logits" > "$TMP/ref.jsonl" 2> "$TMP/ref.err" ||
    { fail "$name: single-process run: $(cat "$TMP/ref.err")"; return; }
  local layout
  for layout in "$@"; do
    set -- $layout
    local tp=$1 pp=$2 map=$3 what
    what="$name tp=$tp pp=$pp (map-by $map)"
    rm -f "$TMP/run.logits"
    local before after
    before=$(veth_bytes)
    if ! mpi $((tp * pp)) "$map" "$TMP/where" "$BIN/strata-worker" --model "$model" --tp "$tp" --pp "$pp" \
        --prompt "$PROMPT" --max-tokens "$max_tokens" --temperature 0 --ignore-eos --json --threads 1 \
        --dump-logits "$TMP/run.logits" > "$TMP/run.jsonl" 2> "$TMP/run.err"; then
      fail "$what: worker failed: $(tail -5 "$TMP/run.err")"
      continue
    fi
    after=$(veth_bytes)
    local where verdict
    where=$(placement $((tp * pp)) "$map" "$TMP/where")
    case "$where" in ok*) ;; *) fail "$what: $where"; continue ;; esac
    verdict=$(python3 "$SRC/tests/parallel/compare_runs.py" "$TMP/ref.jsonl" "$TMP/ref.logits" "$TMP/run.jsonl" \
      "$TMP/run.logits" "$n_vocab" --atol 1e-4)
    case "$verdict" in
      ok*) pass "$what: $verdict; ${where#ok:}; $(((after - before) / 1024)) KiB over the veths" ;;
      *) fail "$what: $verdict" ;;
    esac
  done
}

# map-by node with 2 ranks a stage: the TP all-reduces cross the hosts; map-by slot: the
# stage-to-stage sends cross them.
LAYOUTS=("2 1 node" "1 2 node" "2 2 node" "2 2 slot")
"$BIN/strata" make-model --arch llama --preset tiny --dtype f32 --seed 3 --out "$TMP/llama.gguf" 2> /dev/null ||
  fail "make-model failed"
[ -r "$TMP/llama.gguf" ] && check_layouts "llama tiny" "$TMP/llama.gguf" 512 40 "${LAYOUTS[@]}"

STORIES=${STRATA_MODELS_DIR:-$SRC/../shared/models}/stories260K.gguf
if [ -r "$STORIES" ]; then
  check_layouts stories260K "$STORIES" 512 60 "${LAYOUTS[@]}"
else
  echo "skip: stories260K.gguf not found at $STORIES (the generated model above still ran)"
fi

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
