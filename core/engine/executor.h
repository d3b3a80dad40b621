// Runs the model for one step and turns logit rows into tokens. The engine (scheduling, stop
// conditions, text) is the same whether the model runs in this process (LocalExecutor) or
// across a TP × PP group of processes (PipelineExecutor in core/parallel).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "core/kv/kv_cache.h"
#include "core/model/batch.h"
#include "core/model/model.h"
#include "core/sampling/sampler.h"

namespace strata {

// How to pick the next token of one sequence: its sampler (RNG state) and token history.
struct SampleRequest {
  Sampler* sampler = nullptr;
  const std::vector<int32_t>* history = nullptr;  // prompt + generated
  size_t generated_begin = 0;                     // history[generated_begin...] are generated
  int32_t top_logprobs = 0;                       // alternatives to report (top_logprobs())
  bool logprob = true;  // report the sampled token's logprob (false: NaN, one pass over the vocabulary saved)
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;  // natural log, after penalties, before temperature and truncation
};

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int32_t max_batch_tokens() const = 0;
  virtual int32_t max_seqs() const = 0;  // sequences that may sample in one step
  virtual int32_t block_size() const = 0;
  virtual int32_t n_blocks() const = 0;
  // Runs one step and samples batch.logit_rows[r] with rows[r] into (*out)[r].
  virtual absl::Status Step(const Batch& batch, const std::vector<SampleRequest>& rows,
                            std::vector<SampledToken>* out) = 0;
  // Debugging and tests: called with the full logits [n_vocab] of the first sampled row of every
  // step, on one process of the group.
  void set_logits_observer(std::function<void(const float*, int32_t)> f) { observer_ = std::move(f); }
  // After Step, on the process that sampled: for row r, its rows[r].top_logprobs most likely
  // tokens (most likely first) with their log-probabilities.
  const std::vector<std::vector<Sampler::TokenLogprob>>& top_logprobs() const { return top_; }

 protected:
  // Samples rows[r] from logits [rows.size(), n_vocab] into (*out)[r] and top_[r], rows in
  // parallel on the backend's threads: each row has its request's own sampler and writes only
  // its own entries, so the tokens are those of a serial loop. (~0.2 ms per 32000-token row:
  // serially, 32 rows left one of two cores idle for 7 ms of a decode step.)
  void SampleRows(Backend* backend, const float* logits, int32_t n_vocab, const std::vector<SampleRequest>& rows,
                  std::vector<SampledToken>* out);

  std::function<void(const float*, int32_t)> observer_;
  std::vector<std::vector<Sampler::TokenLogprob>> top_;
};

// The whole model in this process.
class LocalExecutor final : public StepExecutor {
 public:
  // Creates the KV cache (n_blocks of block_size tokens) for `model`, which must outlive this.
  static absl::StatusOr<std::unique_ptr<LocalExecutor>> Create(Model* model, Backend* backend, int32_t block_size,
                                                               int32_t n_blocks);
  const ModelConfig& config() const override { return model_->config(); }
  int32_t max_batch_tokens() const override { return model_->options().max_batch_tokens; }
  int32_t max_seqs() const override { return model_->options().max_logit_rows; }
  int32_t block_size() const override { return kv_->block_size(); }
  int32_t n_blocks() const override { return kv_->n_blocks(); }
  absl::Status Step(const Batch& batch, const std::vector<SampleRequest>& rows,
                    std::vector<SampledToken>* out) override;

 private:
  LocalExecutor(Model* model, std::unique_ptr<KvCache> kv);
  Model* model_;
  std::unique_ptr<KvCache> kv_;
  std::vector<float> logits_;  // [max_logit_rows, n_vocab]
};

}  // namespace strata
