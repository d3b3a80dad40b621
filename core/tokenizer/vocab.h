// The plain data a tokenizer is built from: the GGUF tokenizer.ggml.* keys, with no dependency on any
// file format so model loaders (GGUF, Hugging Face) and the synthetic-model builder can all fill it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata {

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab {
  std::string model;                // "llama" (SentencePiece BPE with scores) or "gpt2" (byte-level BPE)
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens
  std::vector<float> scores;        // tokenizer.ggml.scores (may be empty: all 0)
  std::vector<int32_t> types;       // tokenizer.ggml.token_type (may be empty: see Tokenizer::Create)
  std::vector<std::string> merges;  // tokenizer.ggml.merges, "a b" strings (gpt2)
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false;           // tokenizer.ggml.add_bos_token (llama default true, gpt2 default false)
  bool add_space_prefix = true;   // tokenizer.ggml.add_space_prefix (llama; default true)
};

}  // namespace strata
