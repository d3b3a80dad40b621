#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to streamed text from a local cluster:
# installs packages, builds, makes a demo model unless one is given, starts `strata serve`
# (a coordinator plus an MPI group of workers, tensor x pipeline parallel) and streams a
# generation from it with `strata generate`, then stops the cluster.
#
#   bash deploy/quickstart.sh [MODEL.gguf] [PROMPT]
# Environment: TP and PP (default 2 and 1), MAX_TOKENS (100).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-}
PROMPT=${2:-Once upon a time}
TP=${TP:-2}
PP=${PP:-1}

bash deploy/install-deps.sh
bash deploy/build.sh

if [ -z "$MODEL" ]; then
  MODEL=build/demo/llama-tiny.gguf
  if [ ! -f "$MODEL" ]; then
    mkdir -p build/demo
    build/bin/strata make-model --arch llama --preset tiny --dtype f32 --out "$MODEL"
  fi
  echo "quickstart: no model given; using $MODEL (random weights: expect random text;"
  echo "            pass a real GGUF file, e.g. bash deploy/quickstart.sh ../shared/models/stories260K.gguf)"
fi

LOG=$(mktemp)
build/bin/strata serve --model "$MODEL" --tp "$TP" --pp "$PP" --listen 127.0.0.1:0 > "$LOG" 2>&1 &
SERVE=$!
trap 'kill -INT $SERVE 2>/dev/null; wait $SERVE 2>/dev/null; rm -f "$LOG"' EXIT
ADDR=""
for _ in $(seq 1 600); do
  ADDR=$(sed -n 's/^strata serve: serving .* on \(.*\)$/\1/p' "$LOG")
  [ -n "$ADDR" ] && break
  kill -0 $SERVE 2>/dev/null || { cat "$LOG"; echo "quickstart: strata serve exited"; exit 1; }
  sleep 0.2
done
[ -n "$ADDR" ] || { cat "$LOG"; echo "quickstart: strata serve did not start"; exit 1; }
cat "$LOG"
echo "quickstart: strata generate --server $ADDR --prompt \"$PROMPT\""
build/bin/strata generate --server "$ADDR" --prompt "$PROMPT" --max-tokens "${MAX_TOKENS:-100}" --temperature 0
