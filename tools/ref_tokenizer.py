#!/usr/bin/env python3
"""Reference SentencePiece-BPE encoder over a GGUF "llama" vocabulary, for checking strata's tokenizer.

Written from the algorithm's description, deliberately simple (quadratic) rather than fast:
  1. replace every ' ' by U+2581 and, with add_space_prefix, put one U+2581 in front of non-empty text;
  2. start from single characters;
  3. repeatedly merge the adjacent pair whose concatenation is a normal or user-defined vocabulary
     token with the highest score (on a tie, the leftmost pair), until no pair is a token;
  4. emit each piece's id, or when the piece is not a token, the <0xXX> byte tokens of its UTF-8 bytes.
BOS is prepended when add_bos_token is true (the default for "llama" when the key is absent).

Usage: python3 tools/ref_tokenizer.py MODEL.gguf TEXT [TEXT ...]
Prints one line per text: the text as a Python literal, then the ids.
"""

import struct
import sys

NORMAL, USER_DEFINED = 1, 4

SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
                  12: "d"}


class Reader:
  def __init__(self, data):
    self.data = data
    self.pos = 0

  def scalar(self, fmt):
    value = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
    self.pos += struct.calcsize("<" + fmt)
    return value

  def string(self):
    n = self.scalar("Q")
    raw = self.data[self.pos:self.pos + n]
    self.pos += n
    return raw.decode("utf-8", errors="surrogateescape")

  def value(self, type_id):
    if type_id == 8:
      return self.string()
    if type_id == 9:
      elem_type = self.scalar("I")
      count = self.scalar("Q")
      return [self.value(elem_type) for _ in range(count)]
    return self.scalar(SCALAR_FORMATS[type_id])


def read_metadata(path):
  with open(path, "rb") as f:
    r = Reader(f.read())
  if r.data[:4] != b"GGUF":
    raise ValueError("%s is not a GGUF file" % path)
  r.pos = 4
  r.scalar("I")  # version
  r.scalar("Q")  # tensor count
  n_kv = r.scalar("Q")
  meta = {}
  for _ in range(n_kv):
    key = r.string()
    meta[key] = r.value(r.scalar("I"))
  return meta


class SpmReference:
  def __init__(self, meta):
    if meta.get("tokenizer.ggml.model") != "llama":
      raise ValueError("only tokenizer.ggml.model == llama is supported")
    self.tokens = meta["tokenizer.ggml.tokens"]
    self.scores = meta.get("tokenizer.ggml.scores", [0.0] * len(self.tokens))
    types = meta.get("tokenizer.ggml.token_type", [NORMAL] * len(self.tokens))
    self.add_bos = meta.get("tokenizer.ggml.add_bos_token", True)
    self.add_space_prefix = meta.get("tokenizer.ggml.add_space_prefix", True)
    self.bos = meta.get("tokenizer.ggml.bos_token_id", 1)
    self.mergeable = {}  # text -> id, for the token types that text may turn into
    for i, (tok, typ) in enumerate(zip(self.tokens, types)):
      if typ in (NORMAL, USER_DEFINED) and tok not in self.mergeable:
        self.mergeable[tok] = i
    self.byte_token = {b: self.tokens.index("<0x%02X>" % b) for b in range(256)}

  def encode(self, text):
    ids = [self.bos] if self.add_bos else []
    if not text:
      return ids
    text = text.replace(" ", "\u2581")
    if self.add_space_prefix:
      text = "\u2581" + text
    pieces = list(text)
    while True:
      best = None  # (score, index)
      for i in range(len(pieces) - 1):
        joined = pieces[i] + pieces[i + 1]
        if joined in self.mergeable:
          score = self.scores[self.mergeable[joined]]
          if best is None or score > best[0]:
            best = (score, i)
      if best is None:
        break
      i = best[1]
      pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    for piece in pieces:
      if piece in self.mergeable:
        ids.append(self.mergeable[piece])
      else:
        ids.extend(self.byte_token[b] for b in piece.encode("utf-8"))
    return ids


def main():
  if len(sys.argv) < 3:
    sys.stderr.write(__doc__)
    return 2
  ref = SpmReference(read_metadata(sys.argv[1]))
  for text in sys.argv[2:]:
    print("%r: {%s}" % (text, ", ".join(str(i) for i in ref.encode(text))))
  return 0


if __name__ == "__main__":
  sys.exit(main())
