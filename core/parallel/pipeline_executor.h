// Runs one step of the engine across a TP × PP group. Every process runs the same engine in
// lockstep and calls Step with the same batch:
//   stage 0 embeds; stage s > 0 receives hidden states [n, n_embd] from stage s - 1 (same tensor
//   rank); each stage runs its layers (two all-reduces per layer inside its TP group) and sends
//   to stage s + 1; the last stage samples across its TP group (each rank's vocabulary slice
//   gives its top candidates and log-sum-exp, one small all-gather picks the token); the sampled
//   ids are broadcast to every process.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/comm/communicator.h"
#include "core/engine/executor.h"
#include "core/parallel/layout.h"

namespace strata {

struct PipelineGroups {
  Communicator* world = nullptr;  // all T * P processes, rank = layout.rank
  Communicator* tp = nullptr;     // this stage's T processes, rank = tensor rank
  Communicator* pp = nullptr;     // the P processes of this tensor rank, rank = stage
};

class PipelineExecutor final : public StepExecutor {
 public:
  static absl::StatusOr<std::unique_ptr<PipelineExecutor>> Create(Model* model, Backend* backend,
                                                                  const ParallelLayout& layout,
                                                                  const PipelineGroups& groups, int32_t block_size,
                                                                  int32_t n_blocks);

  const ModelConfig& config() const override { return model_->config(); }
  int32_t max_batch_tokens() const override { return model_->options().max_batch_tokens; }
  int32_t max_seqs() const override { return model_->options().max_logit_rows; }
  int32_t block_size() const override { return kv_->block_size(); }
  int32_t n_blocks() const override { return kv_->n_blocks(); }
  absl::Status Step(const Batch& batch, const std::vector<SampleRequest>& rows,
                    std::vector<SampledToken>* out) override;

  // Standalone runs (every process runs the engine) need the sampled tokens everywhere; under a
  // coordinator only the last stage reports them, and skipping the broadcast lets stage 0 start
  // the next step plan while later stages are still busy (pipelining).
  void set_broadcast_results(bool on) { broadcast_results_ = on; }

  // Seconds spent in communication (send/recv between stages, sampling exchange, broadcast) and
  // in the whole step, accumulated; the all-reduces inside the model count as compute here.
  double comm_seconds() const { return comm_seconds_; }
  double step_seconds() const { return step_seconds_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };
  PipelineExecutor(Model* model, const ParallelLayout& layout, const PipelineGroups& groups,
                   std::unique_ptr<KvCache> kv);
  absl::Status SampleLastStage(const std::vector<SampleRequest>& rows, std::vector<SampledToken>* out);
  absl::Status ObserveFullLogits(const float* local_row);

  Model* model_;
  ParallelLayout layout_;
  PipelineGroups groups_;
  std::unique_ptr<KvCache> kv_;
  std::vector<float> logits_;      // [max_logit_rows, vocab slice] on the last stage
  std::vector<float> scratch_;     // penalized local row
  std::vector<float> dense_;       // [n_vocab] candidates on -inf, for the sampler
  std::vector<Candidate> local_;   // [vocab slice] candidates being ranked
  std::vector<std::pair<int32_t, int32_t>> penalty_scratch_;  // reused by ApplyPenalties
  std::vector<char> send_, recv_;  // candidate exchange
  double comm_seconds_ = 0, step_seconds_ = 0;
  bool broadcast_results_ = true;
};

}  // namespace strata
