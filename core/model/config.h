// The shape of a model, read from GGUF metadata. Separate from the weights and the run state.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace strata {
namespace gguf {
class GgufFile;
}

enum class Arch { kLlama, kGpt2 };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;  // general.architecture ("llama", "qwen2", "gpt2", ...)
  std::string name;       // general.name, if any
  int32_t n_vocab = 0;
  int32_t n_embd = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;   // n_embd / n_heads
  int32_t n_ff = 0;
  int32_t n_ctx = 0;      // context length the model was trained for
  float norm_eps = 1e-5f;
  // RoPE (llama family only).
  int32_t rope_dim = 0;
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / linear scaling factor
  bool rope_neox = false;        // qwen2 rotates halves; llama adjacent pairs

  int32_t q_dim() const { return n_heads * head_dim; }
  int32_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Reads and validates the model shape. Errors name the file and the key.
absl::StatusOr<ModelConfig> ReadModelConfig(const gguf::GgufFile& file);

}  // namespace strata
