// Text <-> token ids for the two GGUF tokenizer families: "llama" (SentencePiece BPE with scores and
// byte fallback, as llama.cpp's llm_tokenizer_spm) and "gpt2" (byte-level BPE with ranked merges).
// Tokenizers are immutable after Create, so one instance may be shared by many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/vocab.h"

namespace strata {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Validates the vocab (sizes of scores/types match tokens, ids in range, every byte representable:
  // llama needs <0xXX> byte tokens for byte fallback, gpt2 needs all 256 byte-level characters and
  // merges whose parts and results are tokens) and builds lookup tables. When `types` is empty the
  // types are inferred: bos/eos/pad are control, unk is unknown, llama's <0xXX> are bytes, the rest
  // normal.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(Vocab vocab);

  // Encodes UTF-8 or arbitrary bytes (invalid UTF-8 round-trips too). Special tokens written in the text
  // are not parsed: it is all plain text. add_bos: prepend BOS if the vocab has one.
  virtual std::vector<int32_t> Encode(absl::string_view text, bool add_bos) const = 0;

  // The raw bytes of one token as it appears in output (llama: '▁' -> ' ', <0x41> -> "A"; control and
  // unused tokens and out-of-range ids -> "").
  virtual std::string TokenBytes(int32_t id) const = 0;

  // Concatenation of TokenBytes. When strips_leading_space(), the space that add_space_prefix put in
  // front of the text is removed from the first token that produces bytes, provided only control
  // tokens (BOS) came before it.
  std::string Decode(const std::vector<int32_t>& ids) const;

  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  // Whether callers should prepend BOS by default (tokenizer.ggml.add_bos_token).
  bool add_bos() const { return vocab_.add_bos; }
  // llama with add_space_prefix: Decode and StreamDecoder drop the prefix space at the start.
  bool strips_leading_space() const { return strips_leading_space_; }

  TokenType token_type(int32_t id) const;  // kUnused for out-of-range ids
  bool IsControl(int32_t id) const { return token_type(id) == TokenType::kControl; }
  const std::string& TokenText(int32_t id) const;  // the raw vocab string; "" for out-of-range ids
  // End of generation: eos, plus end-of-text/turn markers such as gpt2's "<|endoftext|>".
  bool IsEog(int32_t id) const;

 protected:
  // `vocab` must already be validated and have one type per token.
  explicit Tokenizer(Vocab vocab);
  const Vocab& vocab() const { return vocab_; }

 private:
  Vocab vocab_;
  bool strips_leading_space_;
  std::vector<bool> is_eog_;
};

// GPT-2's byte-level alphabet: the code point that stands for byte `b` in gpt2 token texts (printable
// Latin-1 bytes stand for themselves, the others for U+0100 onwards). Sorting bytes by this code point
// gives the order of GPT-2's first 256 tokens.
uint32_t Gpt2ByteToCodepoint(uint8_t b);

// Splits text into GPT-2 pre-tokens, as the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does; invalid UTF-8 bytes count as single "other" characters. The pieces are views into `text` and
// concatenate to it. Shared by the gpt2 tokenizer and the vocab builder.
std::vector<absl::string_view> Gpt2PreTokenize(absl::string_view text);

}  // namespace strata
