#!/usr/bin/env bash
# End-to-end tests of the `strata` binary: make-model, run, and every kind of bad input.
# usage: cli_test.sh PATH_TO_STRATA SOURCE_DIR
set -u
STRATA=$1
SRC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
passes=0

pass() { passes=$((passes + 1)); echo "ok: $1"; }
fail() { failures=$((failures + 1)); echo "FAIL: $1"; }

# expect_error NAME NEEDLE CMD...: the command must exit non-zero and print NEEDLE on stderr.
expect_error() {
  local name=$1 needle=$2
  shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -eq 0 ]; then fail "$name: exit 0, expected an error"; return; fi
  if ! grep -qF -- "$needle" <<<"$err"; then fail "$name: message '$err' lacks '$needle'"; return; fi
  pass "$name ($err)"
}

# --- make-model for both architectures and every dtype, then generate from each ---
for arch in llama gpt2; do
  for dtype in f32 f16 bf16 q8_0; do
    m=$TMP/$arch-$dtype.gguf
    if ! "$STRATA" make-model --arch $arch --preset tiny --dtype $dtype --out "$m" 2>"$TMP/mm.err"; then
      fail "make-model $arch $dtype: $(cat "$TMP/mm.err")"; continue
    fi
    out=$("$STRATA" run --model "$m" --prompt "Once upon a time" --max-tokens 12 --temperature 0 --json 2>/dev/null)
    n=$(grep -c '"id"' <<<"$out")
    last=$(tail -n 1 <<<"$out")
    if [ "$n" = 12 ] && grep -q '"finish_reason":"length"' <<<"$last" && grep -q '"completion_tokens":12' <<<"$last"; then
      pass "run $arch $dtype: 12 tokens, finish length"
    else
      fail "run $arch $dtype: got $n tokens, last line: $last"
    fi
  done
done
grep -q 'progress\|writing' "$TMP/mm.err" && pass "make-model reports progress" || fail "make-model printed no progress"

# --- determinism: same seed, same output; greedy is deterministic ---
M=$TMP/llama-f32.gguf
a=$("$STRATA" run --model "$M" --prompt "Hello there" --max-tokens 20 --temperature 1 --seed 5 --json 2>/dev/null)
b=$("$STRATA" run --model "$M" --prompt "Hello there" --max-tokens 20 --temperature 1 --seed 5 --json 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && pass "same seed, same output" || fail "same seed gave different output"
a=$("$STRATA" run --model "$M" --prompt "Hello there" --max-tokens 20 --temperature 0 --threads 1 2>/dev/null)
b=$("$STRATA" run --model "$M" --prompt "Hello there" --max-tokens 20 --temperature 0 --threads 2 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && pass "greedy output independent of thread count" || fail "greedy differs by threads"

# --- bad input: a message naming the problem and a non-zero exit ---
expect_error "unknown command" "unknown command" "$STRATA" frobnicate
expect_error "unknown flag" "--bogus" "$STRATA" run --model "$M" --prompt hi --bogus 1
expect_error "missing model flag" "--model is required" "$STRATA" run --prompt hi
expect_error "missing prompt flag" "--prompt is required" "$STRATA" run --model "$M"
expect_error "missing file" "$TMP/nope.gguf" "$STRATA" run --model "$TMP/nope.gguf" --prompt hi
expect_error "max tokens zero" "max-tokens" "$STRATA" run --model "$M" --prompt hi --max-tokens 0
expect_error "max tokens negative" "max-tokens" "$STRATA" run --model "$M" --prompt hi --max-tokens -3
expect_error "max tokens not a number" "expects an integer" "$STRATA" run --model "$M" --prompt hi --max-tokens ten
expect_error "negative temperature" "temperature" "$STRATA" run --model "$M" --prompt hi --temperature -0.5
expect_error "top-p zero" "top_p" "$STRATA" run --model "$M" --prompt hi --top-p 0
expect_error "top-p above one" "top_p" "$STRATA" run --model "$M" --prompt hi --top-p 1.5
long_prompt=$(printf 'the cat sat on the mat %.0s' $(seq 1 400))
expect_error "prompt longer than context" "context length" "$STRATA" run --model "$M" --prompt "$long_prompt"
head -c 1000 "$M" > "$TMP/truncated.gguf"
expect_error "truncated model" "truncated.gguf" "$STRATA" run --model "$TMP/truncated.gguf" --prompt hi
printf 'not a gguf file at all' > "$TMP/garbage.gguf"
expect_error "not a gguf file" "garbage.gguf" "$STRATA" run --model "$TMP/garbage.gguf" --prompt hi
expect_error "unknown preset" "unknown preset" "$STRATA" make-model --arch llama --preset huge --out "$TMP/x.gguf"
expect_error "unknown arch" "unknown architecture" "$STRATA" make-model --arch mamba --preset tiny --out "$TMP/x.gguf"
expect_error "bad dtype" "--dtype" "$STRATA" make-model --arch llama --preset tiny --dtype q4_0 --out "$TMP/x.gguf"
expect_error "missing out" "--out is required" "$STRATA" make-model --arch llama --preset tiny
expect_error "unwritable out" "/nonexistent-dir" "$STRATA" make-model --arch llama --preset tiny --out /nonexistent-dir/x.gguf

# --- the real model, when present: 200 tokens of the reference story ---
STORIES=${STRATA_MODELS_DIR:-$SRC/../shared/models}/stories260K.gguf
if [ -r "$STORIES" ]; then
  out=$("$STRATA" run --model "$STORIES" --prompt "Once upon a time" --max-tokens 200 --temperature 0 --json 2>/dev/null)
  n=$(grep -c '"id"' <<<"$out")
  text=$("$STRATA" run --model "$STORIES" --prompt "Once upon a time" --max-tokens 40 --temperature 0 2>/dev/null)
  if [ "$n" = 200 ] && grep -q "there was a little girl named Lily" <<<"$text"; then
    pass "stories260K: 200 tokens, the reference story"
  else
    fail "stories260K: $n tokens; text: $text"
  fi
else
  echo "skip: stories260K.gguf not found at $STORIES"
fi

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
