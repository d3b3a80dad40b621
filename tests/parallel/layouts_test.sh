#!/usr/bin/env bash
# Every (tp, pp) layout under mpirun gives the single-process result: identical greedy ids and
# logits within tolerance, on the real model and on generated llama (GQA, KV heads replicated at
# tp=4) and gpt2 models. Also: layouts a model cannot take fail fast with a clear message.
# usage: layouts_test.sh BIN_DIR SOURCE_DIR [MPIEXEC]
set -u
BIN=$1
SRC=$2
MPIEXEC=${3:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Keep Open MPI on shared memory and loopback TCP; no other interfaces are needed on one host.
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
passes=0
pass() { passes=$((passes + 1)); echo "ok: $1"; }
fail() { failures=$((failures + 1)); echo "FAIL: $1"; }

PROMPT="Once upon a time, in a small town"
# check_layouts NAME MODEL N_VOCAB MAX_TOKENS ATOL "T P" ...
# ATOL: 1e-4 for float weights (only the order of float additions changes with the split). Q8_0
# matmuls quantize their activations to int8 blocks, so a 1e-7 difference that moves a value
# across a rounding boundary changes it by one quantization step (max|x|/127 of its block);
# those steps propagate to logit differences of ~1e-3, hence 1e-2 there.
check_layouts() {
  local name=$1 model=$2 n_vocab=$3 max_tokens=$4 atol=$5
  shift 5
  "$BIN/strata" run --model "$model" --prompt "$PROMPT" --max-tokens "$max_tokens" --temperature 0 --ignore-eos \
    --json --threads 1 --dump-logits "$TMP/ref.logits" > "$TMP/ref.jsonl" 2> "$TMP/ref.err" ||
    { fail "$name: single-process run: $(cat "$TMP/ref.err")"; return; }
  for layout in "$@"; do
    set -- $layout
    local tp=$1 pp=$2
    if ! timeout 300 "$MPIEXEC" --oversubscribe -np $((tp * pp)) "$BIN/strata-worker" --model "$model" --tp "$tp" \
        --pp "$pp" --prompt "$PROMPT" --max-tokens "$max_tokens" --temperature 0 --ignore-eos --json --threads 1 \
        --dump-logits "$TMP/run.logits" > "$TMP/run.jsonl" 2> "$TMP/run.err"; then
      fail "$name tp=$tp pp=$pp: worker failed: $(tail -5 "$TMP/run.err")"
      continue
    fi
    local verdict
    verdict=$(python3 "$SRC/tests/parallel/compare_runs.py" "$TMP/ref.jsonl" "$TMP/ref.logits" "$TMP/run.jsonl" \
      "$TMP/run.logits" "$n_vocab" --atol "$atol")
    case "$verdict" in ok*) pass "$name tp=$tp pp=$pp: $verdict" ;; *) fail "$name tp=$tp pp=$pp: $verdict" ;; esac
  done
}

ALL="1 1|2 1|1 2|2 2|4 1|1 4"
IFS='|' read -r -a LAYOUTS <<< "$ALL"

STORIES=${STRATA_MODELS_DIR:-$SRC/../shared/models}/stories260K.gguf
if [ -r "$STORIES" ]; then
  check_layouts stories260K "$STORIES" 512 60 1e-4 "${LAYOUTS[@]}"
else
  echo "skip: stories260K.gguf not found at $STORIES (the generated models below still run)"
fi

"$BIN/strata" make-model --arch llama --preset tiny --dtype f32 --seed 3 --out "$TMP/llama.gguf" 2>/dev/null
"$BIN/strata" make-model --arch gpt2 --preset tiny --dtype f32 --seed 4 --out "$TMP/gpt2.gguf" 2>/dev/null
"$BIN/strata" make-model --arch llama --preset tiny --dtype q8_0 --seed 5 --out "$TMP/llama-q8.gguf" 2>/dev/null
check_layouts "llama tiny (8 heads, 2 KV heads)" "$TMP/llama.gguf" 512 40 1e-4 "${LAYOUTS[@]}"
check_layouts "gpt2 tiny" "$TMP/gpt2.gguf" 512 40 1e-4 "${LAYOUTS[@]}"
check_layouts "llama tiny q8_0" "$TMP/llama-q8.gguf" 512 40 1e-2 "2 1" "2 2"

# --- layouts the model cannot take: fail at start, non-zero exit, no hang ---
# expect_fail NAME NEEDLE NP ARGS...
expect_fail() {
  local name=$1 needle=$2 np=$3
  shift 3
  local out rc
  out=$(timeout 120 "$MPIEXEC" --oversubscribe -np "$np" "$BIN/strata-worker" "$@" --prompt hi --max-tokens 2 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then fail "$name: exit 0"; return; fi
  if [ $rc -eq 124 ]; then fail "$name: hung"; return; fi
  grep -qF -- "$needle" <<<"$out" && pass "$name: $(grep -F -- "$needle" <<<"$out" | head -1)" ||
    fail "$name: output lacks '$needle': $out"
}
expect_fail "heads not divisible by tp" "8 attention heads, which tp=3 does not divide" 3 --model "$TMP/llama.gguf" --tp 3 --pp 1
expect_fail "more stages than layers" "pp=5 stages is more than the model's 4 layers" 5 --model "$TMP/llama.gguf" --tp 1 --pp 5
expect_fail "world size mismatch" "world size is 3 but --tp 2 x --pp 2 = 4" 3 --model "$TMP/llama.gguf" --tp 2 --pp 2
expect_fail "q8_0 blocks cannot split 4 ways" "whole blocks of 32" 4 --model "$TMP/llama-q8.gguf" --tp 4 --pp 1
expect_fail "missing model file" "$TMP/none.gguf" 2 --model "$TMP/none.gguf" --tp 2 --pp 1

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
