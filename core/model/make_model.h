// Writes a GGUF model with random weights and a real tokenizer vocabulary, in a named shape
// (`strata make-model`). Used by tests and benchmarks so they never need downloaded weights.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor/dtype.h"

namespace strata {

struct ModelPreset {
  std::string arch;   // "llama" or "gpt2"
  std::string name;   // "tiny", "tinyllama-1.1b", "gpt2-124m", ...
  int32_t n_vocab, n_embd, n_layers, n_heads, n_kv_heads, n_ff, n_ctx;
  bool tied_output;   // llama only; gpt2 always ties
  float rope_base = 10000.0f;
  float norm_eps = 1e-5f;
};

// The presets of an architecture, for --help and error messages.
std::vector<ModelPreset> ModelPresets();
absl::StatusOr<ModelPreset> FindModelPreset(const std::string& arch, const std::string& name);

struct MakeModelOptions {
  ModelPreset preset;
  DType dtype = DType::kF32;  // type of every matrix; norms and biases stay f32 as in llama.cpp
  uint64_t seed = 0;
  std::string out;            // output path
};

// Writes the model. progress(bytes_done, bytes_total) is called as tensors are written.
absl::Status MakeModel(const MakeModelOptions& options,
                       const std::function<void(uint64_t, uint64_t)>& progress = nullptr);

}  // namespace strata
