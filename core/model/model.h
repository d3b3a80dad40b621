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
#include "core/parallel/layout.h"

namespace strata {
namespace gguf {
class GgufFile;
}
class Communicator;

struct ModelOptions {
  int32_t max_batch_tokens = 512;  // tokens per step (sizes the workspace)
  int32_t max_logit_rows = 64;     // sequences that sample in one step
  ParallelLayout layout;           // which shard to load; default: the whole model
  Communicator* tp_comm = nullptr; // all-reduces inside the stage; required when layout.tp > 1
};

class Model {
 public:
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  const ShardSpec& shard() const { return shard_; }

  // Runs this shard's part of one step. Stage 0 embeds batch.tokens; a later stage starts from
  // hidden() as filled by the caller. Every stage leaves its output in hidden() [n, n_embd].
  // The last stage writes the logits of its vocabulary slice for batch.logit_rows to host
  // memory `logits` [logit_rows.size(), shard().n_vocab]; other stages ignore `logits`.
  absl::Status Forward(const Batch& batch, KvCache* kv, float* logits);

  // Hidden states between stages: [max_batch_tokens, n_embd] in backend memory.
  float* hidden() { return x_; }
  Backend* backend() const { return backend_; }

  // The KV cache shape this shard needs.
  KvCacheConfig KvConfig(int32_t block_size, int32_t n_blocks) const;

 protected:
  Model(ModelConfig config, ModelOptions options, ShardSpec shard, Backend* backend)
      : config_(std::move(config)), options_(options), shard_(shard), backend_(backend) {}
  virtual void Run(const Batch& batch, KvCache* kv, float* logits) = 0;

  // Allocates a workspace buffer of `floats` f32 values.
  absl::StatusOr<float*> Workspace(int64_t floats);
  // Sums x[count] over the tensor-parallel group (after a layer split by its input dimension).
  void AllReduce(float* x, int64_t count);

  ModelConfig config_;
  ModelOptions options_;
  ShardSpec shard_;
  Backend* backend_;
  std::shared_ptr<const gguf::GgufFile> file_;  // keeps the mapped weights alive
  float* x_ = nullptr;  // [max_batch_tokens, n_embd] residual stream, also the stage boundary
  absl::Status comm_status_;  // first communication error of the current step

 private:
  std::vector<std::unique_ptr<Buffer>> workspace_;
};

// Opens a GGUF model file and builds the model for its architecture.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(std::shared_ptr<const gguf::GgufFile> file, Backend* backend,
                                                 const ModelOptions& options);
// Per-architecture builders (llama.cc, gpt2.cc).
absl::StatusOr<std::unique_ptr<Model>> LoadLlama(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                 ShardSpec shard, Backend* backend, const ModelOptions& options);
absl::StatusOr<std::unique_ptr<Model>> LoadGpt2(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                ShardSpec shard, Backend* backend, const ModelOptions& options);

}  // namespace strata
