#!/usr/bin/python3
# Interpreter: /usr/bin/python3 (Debian's, with python3-numpy from apt).
# The pyenv `python3` on PATH has no numpy; run as `/usr/bin/python3 tools/reference/ref_model.py ...`.
"""Independent float64 reference for the strata engine: llama + gpt2 forward, SPM tokenizer.

Shares no code with the C++ engine. Deliberately naive: every step recomputes the whole
sequence (no KV cache), all math in float64.

Usage:
  /usr/bin/python3 tools/reference/ref_model.py MODEL.gguf --prompt "Once upon a time" --max-tokens 200
  /usr/bin/python3 tools/reference/ref_model.py MODEL.gguf --ids 1,403,407 --max-tokens 10
  ... --dump-logits logits.npy   # float64 array (steps, n_vocab): logits of the last position
                                 # at each generation step (step 0 = after the prompt)
  ... --out result.json          # also write the JSON there

Prints JSON:
  prompt_ids      ids fed to the model (BOS + tokenized prompt, or --ids)
  ids             greedy continuation, stopped before the first EOS (if any)
  eos_position    index in ids_ignore_eos of the first EOS, or null
  ids_ignore_eos  greedy continuation of exactly --max-tokens tokens, EOS ignored
  text            decode(ids); full_text = decode(prompt_ids + ids)
  first_logits    first 16 logits at the first generated position
  top5_per_step   per step: [[id, logit], ...] for the 5 largest logits
  min_top1_margin smallest (top1 - top2) logit gap over the steps (near-ties could flip
                  the argmax in a float32 engine)
Greedy = argmax; ties go to the lowest id (np.argmax returns the first maximum).
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_reader import GGUFFile  # noqa: E402


# --------------------------------------------------------------------------------------
# Building blocks (all float64)
# --------------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    """RMSNorm: y = x / sqrt(mean(x^2) + eps) * w   (over the last axis)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    """LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b   (biased variance)."""
    mu = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def silu(x):
    """SiLU(x) = x * sigmoid(x)."""
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    """GELU, tanh approximation (as GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def linear(x, w, b=None):
    """y = x W^T (+ b). W has numpy shape (out, in), i.e. GGUF dims [in, out]."""
    y = x @ w.T
    return y if b is None else y + b


def rope_adjacent(x, positions, base, scale=1.0):
    """RoPE on adjacent pairs (x[2i], x[2i+1]) of each head.

    x: (T, n_heads, head_dim). For pair i (0 <= i < head_dim/2) at position p:
      theta_i = base^(-2i/head_dim),  angle = (p / scale) * theta_i
      x'[2i]   = x[2i] cos(angle) - x[2i+1] sin(angle)
      x'[2i+1] = x[2i] sin(angle) + x[2i+1] cos(angle)
    `scale` is llama.rope.scaling.factor for linear scaling (positions divided by it).
    """
    T, H, D = x.shape
    i = np.arange(D // 2, dtype=np.float64)
    theta = base ** (-2.0 * i / D)                                   # (D/2,)
    angle = (np.asarray(positions, dtype=np.float64) / scale)[:, None] * theta[None, :]  # (T, D/2)
    cos = np.cos(angle)[:, None, :]                                  # (T, 1, D/2)
    sin = np.sin(angle)[:, None, :]
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def causal_attention(q, k, v, n_head, n_head_kv):
    """Multi-head causal attention with grouped-query sharing.

    q: (T, n_head, hd); k, v: (T, n_head_kv, hd).
    Query head h reads kv head h // (n_head / n_head_kv).
    out_h = softmax(q_h k_g^T / sqrt(hd) + causal_mask) v_g      -> (T, n_head * hd)
    """
    T, _, hd = q.shape
    group = n_head // n_head_kv
    mask = np.triu(np.full((T, T), -np.inf), k=1)  # position t sees positions <= t
    out = np.empty((T, n_head, hd))
    for h in range(n_head):
        g = h // group
        scores = q[:, h, :] @ k[:, g, :].T / math.sqrt(hd) + mask   # (T, T)
        out[:, h, :] = softmax(scores) @ v[:, g, :]
    return out.reshape(T, n_head * hd)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

class Model:
    """Loads weights as float64 and exposes forward(ids) -> logits (T, n_vocab)."""

    def __init__(self, gguf):
        self.g = gguf
        self.arch = gguf.get("general.architecture")
        if self.arch not in ("llama", "gpt2"):
            raise SystemExit(f"unsupported architecture {self.arch!r}")
        self._cache = {}

    def w(self, name):
        if name not in self._cache:
            self._cache[name] = self.g.tensor(name).astype(np.float64)
        return self._cache[name]

    def has(self, name):
        return name in self.g.tensors

    def hp(self, key, default=None):
        v = self.g.get(f"{self.arch}.{key}", default)
        if v is None:
            raise SystemExit(f"missing metadata {self.arch}.{key}")
        return v

    def output_matrix(self):
        # Separate output head if present, else tied to the token embedding.
        return self.w("output.weight") if self.has("output.weight") else self.w("token_embd.weight")

    def forward(self, ids):
        return self._forward_llama(ids) if self.arch == "llama" else self._forward_gpt2(ids)

    # ---- llama ------------------------------------------------------------------------
    def _forward_llama(self, ids):
        n_embd = self.hp("embedding_length")
        n_layer = self.hp("block_count")
        n_head = self.hp("attention.head_count")
        n_head_kv = self.hp("attention.head_count_kv", n_head)
        eps = self.hp("attention.layer_norm_rms_epsilon")
        base = self.hp("rope.freq_base", 10000.0)
        scale = self.hp("rope.scaling.factor", 1.0) or 1.0
        if self.g.get("llama.rope.scaling.type", "linear") not in ("linear", "none"):
            raise SystemExit("only linear RoPE scaling is implemented")
        hd = n_embd // n_head
        T = len(ids)
        pos = np.arange(T)

        x = self.w("token_embd.weight")[np.asarray(ids)]          # (T, n_embd)
        for l in range(n_layer):
            p = f"blk.{l}."
            # --- attention block: x += Wo · attn(rope(Wq h), rope(Wk h), Wv h), h = RMSNorm(x)
            h = rms_norm(x, self.w(p + "attn_norm.weight"), eps)
            q = linear(h, self.w(p + "attn_q.weight")).reshape(T, n_head, hd)
            k = linear(h, self.w(p + "attn_k.weight")).reshape(T, n_head_kv, hd)
            v = linear(h, self.w(p + "attn_v.weight")).reshape(T, n_head_kv, hd)
            q = rope_adjacent(q, pos, base, scale)
            k = rope_adjacent(k, pos, base, scale)
            x = x + linear(causal_attention(q, k, v, n_head, n_head_kv),
                           self.w(p + "attn_output.weight"))
            # --- SwiGLU FFN: x += down(silu(gate(h)) * up(h)), h = RMSNorm(x)
            h = rms_norm(x, self.w(p + "ffn_norm.weight"), eps)
            ff = silu(linear(h, self.w(p + "ffn_gate.weight"))) * linear(h, self.w(p + "ffn_up.weight"))
            x = x + linear(ff, self.w(p + "ffn_down.weight"))
        x = rms_norm(x, self.w("output_norm.weight"), eps)
        return linear(x, self.output_matrix())                     # (T, n_vocab)

    # ---- gpt2 -------------------------------------------------------------------------
    def _forward_gpt2(self, ids):
        n_embd = self.hp("embedding_length")
        n_layer = self.hp("block_count")
        n_head = self.hp("attention.head_count")
        eps = self.hp("attention.layer_norm_epsilon")
        hd = n_embd // n_head
        T = len(ids)

        def b(name):  # optional bias
            return self.w(name) if self.has(name) else None

        # Learned absolute positions.
        x = self.w("token_embd.weight")[np.asarray(ids)] + self.w("position_embd.weight")[:T]
        for l in range(n_layer):
            p = f"blk.{l}."
            h = layer_norm(x, self.w(p + "attn_norm.weight"), self.w(p + "attn_norm.bias"), eps)
            # Fused QKV projection: (T, 3*n_embd) split into q | k | v.
            qkv = linear(h, self.w(p + "attn_qkv.weight"), b(p + "attn_qkv.bias"))
            q, k, v = (qkv[:, i * n_embd:(i + 1) * n_embd].reshape(T, n_head, hd) for i in range(3))
            x = x + linear(causal_attention(q, k, v, n_head, n_head),
                           self.w(p + "attn_output.weight"), b(p + "attn_output.bias"))
            # MLP: x += down(gelu(up(h)))
            h = layer_norm(x, self.w(p + "ffn_norm.weight"), self.w(p + "ffn_norm.bias"), eps)
            ff = gelu_tanh(linear(h, self.w(p + "ffn_up.weight"), b(p + "ffn_up.bias")))
            x = x + linear(ff, self.w(p + "ffn_down.weight"), b(p + "ffn_down.bias"))
        x = layer_norm(x, self.w("output_norm.weight"), self.w("output_norm.bias"), eps)
        return linear(x, self.output_matrix())


# --------------------------------------------------------------------------------------
# SentencePiece-BPE tokenizer (tokenizer.ggml.model == "llama")
# --------------------------------------------------------------------------------------

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6
SPACE = "\u2581"  # '▁'


class SPMTokenizer:
    def __init__(self, gguf):
        self.tokens = gguf.get("tokenizer.ggml.tokens")
        self.scores = gguf.get("tokenizer.ggml.scores") or [0.0] * len(self.tokens)
        self.types = gguf.get("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(self.tokens)
        self.bos = gguf.get("tokenizer.ggml.bos_token_id", 1)
        self.eos = gguf.get("tokenizer.ggml.eos_token_id", 2)
        self.unk = gguf.get("tokenizer.ggml.unknown_token_id", 0)
        # Pieces that text may turn into. Like SentencePiece, control (<s>, </s>),
        # unknown and byte (<0xXX>) tokens are never matched from raw text.
        self.piece_to_id = {}
        for i, (t, ty) in enumerate(zip(self.tokens, self.types)):
            if ty in (TOKEN_NORMAL, TOKEN_USER_DEFINED):
                self.piece_to_id.setdefault(t, i)
        self.byte_to_id = {}
        for i, (t, ty) in enumerate(zip(self.tokens, self.types)):
            if ty == TOKEN_BYTE:
                self.byte_to_id[int(t[3:5], 16)] = i   # "<0xXX>"

    def encode(self, text, add_bos=True):
        """Text -> ids.

        1. ' ' -> '▁', and prepend '▁' (SentencePiece's dummy prefix).
        2. Start from single Unicode characters.
        3. Repeatedly merge the adjacent pair whose concatenation is a vocab piece with
           the highest score (leftmost pair on ties), until no pair is in the vocab.
        4. Map symbols to ids; a symbol not in the vocab (only possible for a single char)
           becomes its UTF-8 bytes as <0xXX> tokens (or <unk> if those are missing).
        """
        ids = [self.bos] if add_bos else []
        if not text:
            return ids
        syms = list(SPACE + text.replace(" ", SPACE))
        while True:
            best, best_i = None, -1
            for i in range(len(syms) - 1):
                tid = self.piece_to_id.get(syms[i] + syms[i + 1])
                if tid is not None and (best is None or self.scores[tid] > best):
                    best, best_i = self.scores[tid], i   # strict '>' keeps the leftmost on ties
            if best_i < 0:
                break
            syms[best_i:best_i + 2] = [syms[best_i] + syms[best_i + 1]]
        for s in syms:
            tid = self.piece_to_id.get(s)
            if tid is not None:
                ids.append(tid)
            else:
                for byte in s.encode("utf-8"):
                    ids.append(self.byte_to_id.get(byte, self.unk))
        return ids

    def decode(self, ids, strip_leading_space=False):
        """ids -> text: pieces concatenated, '▁' -> ' ', <0xXX> -> that byte,
        control tokens (<s>, </s>) -> nothing."""
        out = bytearray()
        for i in ids:
            ty = self.types[i]
            t = self.tokens[i]
            if ty == TOKEN_BYTE:
                out.append(int(t[3:5], 16))
            elif ty in (TOKEN_CONTROL, TOKEN_UNKNOWN, TOKEN_UNUSED):
                continue
            else:
                out += t.replace(SPACE, " ").encode("utf-8")
        s = out.decode("utf-8", errors="replace")
        if strip_leading_space and s.startswith(" "):
            s = s[1:]
        return s


# --------------------------------------------------------------------------------------
# Greedy generation
# --------------------------------------------------------------------------------------

def greedy(model, prompt_ids, max_tokens):
    """Generate exactly max_tokens greedily (EOS ignored); return ids and per-step logits."""
    seq = list(prompt_ids)
    gen, step_logits = [], []
    for _ in range(max_tokens):
        logits = model.forward(seq)[-1]          # full recompute; last position only
        nxt = int(np.argmax(logits))             # first maximum -> lowest id on ties
        step_logits.append(logits)
        gen.append(nxt)
        seq.append(nxt)
    return gen, np.array(step_logits)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="text; encoded with BOS prepended")
    src.add_argument("--ids", help="comma-separated ids fed as-is (no BOS added)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--dump-logits", help="write float64 npy (steps, n_vocab)")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--no-top5", action="store_true", help="omit top5_per_step")
    args = ap.parse_args()

    g = GGUFFile(args.model)
    model = Model(g)
    tok = SPMTokenizer(g) if g.get("tokenizer.ggml.model") == "llama" else None

    if args.ids is not None:
        prompt_ids = [int(s) for s in args.ids.split(",") if s.strip()]
    else:
        if tok is None:
            raise SystemExit("--prompt needs a llama (SPM) tokenizer; use --ids")
        prompt_ids = tok.encode(args.prompt)

    gen, logits = greedy(model, prompt_ids, args.max_tokens)
    eos = tok.eos if tok else g.get("tokenizer.ggml.eos_token_id")
    eos_pos = gen.index(eos) if eos in gen else None
    ids = gen if eos_pos is None else gen[:eos_pos]

    result = {}
    if args.prompt is not None:
        result["prompt"] = args.prompt
    result["prompt_ids"] = prompt_ids
    result["ids"] = ids
    result["eos_position"] = eos_pos
    result["ids_ignore_eos"] = gen
    if tok:
        result["text"] = tok.decode(ids)
        result["full_text"] = tok.decode(prompt_ids + ids, strip_leading_space=True)
        result["text_ignore_eos"] = tok.decode(gen)
    if len(logits):
        result["first_logits"] = [float(v) for v in logits[0][:16]]
        srt = np.sort(logits, axis=1)
        margins = srt[:, -1] - srt[:, -2]
        result["min_top1_margin"] = float(margins.min())
        result["min_top1_margin_step"] = int(margins.argmin())
        if not args.no_top5:
            result["top5_per_step"] = [
                [[int(i), round(float(row[i]), 6)] for i in np.argsort(-row, kind="stable")[:5]]
                for row in logits]
    if args.dump_logits:
        np.save(args.dump_logits, logits)

    text = json.dumps(result, ensure_ascii=False)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
