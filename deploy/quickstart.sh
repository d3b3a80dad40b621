#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to generated text:
# installs packages, builds, makes a demo model unless one is given, and streams a generation.
#
#   bash deploy/quickstart.sh [MODEL.gguf] [PROMPT]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-}
PROMPT=${2:-Once upon a time}

bash deploy/install-deps.sh
bash deploy/build.sh

if [ -z "$MODEL" ]; then
  MODEL=build/demo/llama-tiny.gguf
  if [ ! -f "$MODEL" ]; then
    mkdir -p build/demo
    build/bin/strata make-model --arch llama --preset tiny --dtype f32 --out "$MODEL"
  fi
  echo "quickstart: no model given; using $MODEL (random weights: expect random text;"
  echo "            pass a real GGUF file, e.g. bash deploy/quickstart.sh stories260K.gguf)"
fi
echo "quickstart: strata run --model $MODEL --prompt \"$PROMPT\""
build/bin/strata run --model "$MODEL" --prompt "$PROMPT" --max-tokens 100 --temperature 0
