// A loaded model: config, weights (memory-mapped) and the activation workspace of one step.
// Forward runs one batched step (prefill chunks and decode tokens mixed) against a paged KV cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/kv/kv_cache.h"
#include "core/model/batch.h"
#include "core/model/config.h"

namespace strata {
namespace gguf {
class GgufFile;
}

struct ModelOptions {
  int32_t max_batch_tokens = 512;  // tokens per step (sizes the workspace)
  int32_t max_logit_rows = 64;     // sequences that sample in one step
};

class Model {
 public:
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }

  // Checks the batch against the model and the cache, then runs it. Writes the logits of
  // batch.logit_rows to host memory `logits` [logit_rows.size(), n_vocab].
  absl::Status Forward(const Batch& batch, KvCache* kv, float* logits);

 protected:
  Model(ModelConfig config, ModelOptions options, Backend* backend)
      : config_(std::move(config)), options_(options), backend_(backend) {}
  virtual void Run(const Batch& batch, KvCache* kv, float* logits) = 0;

  // Allocates a workspace buffer of `floats` f32 values.
  absl::StatusOr<float*> Workspace(int64_t floats);

  ModelConfig config_;
  ModelOptions options_;
  Backend* backend_;
  std::shared_ptr<const gguf::GgufFile> file_;  // keeps the mapped weights alive

 private:
  std::vector<std::unique_ptr<Buffer>> workspace_;
};

// Opens a GGUF model file and builds the model for its architecture.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(std::shared_ptr<const gguf::GgufFile> file, Backend* backend,
                                                 const ModelOptions& options);
// Per-architecture builders (llama.cc, gpt2.cc).
absl::StatusOr<std::unique_ptr<Model>> LoadLlama(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                 Backend* backend, const ModelOptions& options);
absl::StatusOr<std::unique_ptr<Model>> LoadGpt2(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                Backend* backend, const ModelOptions& options);

}  // namespace strata
