#include "core/engine/executor.h"
#include "core/util/status.h"

namespace strata {

LocalExecutor::LocalExecutor(Model* model, std::unique_ptr<KvCache> kv) : model_(model), kv_(std::move(kv)) {
  logits_.resize(static_cast<size_t>(model_->options().max_logit_rows) * model_->config().n_vocab);
}

absl::StatusOr<std::unique_ptr<LocalExecutor>> LocalExecutor::Create(Model* model, Backend* backend,
                                                                     int32_t block_size, int32_t n_blocks) {
  STRATA_ASSIGN_OR_RETURN(auto kv, KvCache::Create(backend, model->KvConfig(block_size, n_blocks)));
  return std::unique_ptr<LocalExecutor>(new LocalExecutor(model, std::move(kv)));
}

absl::Status LocalExecutor::Step(const Batch& batch, const std::vector<SampleRequest>& rows,
                                 std::vector<SampledToken>* out) {
  STRATA_RETURN_IF_ERROR(model_->Forward(batch, kv_.get(), logits_.data()));
  const int32_t n_vocab = model_->config().n_vocab;
  out->resize(rows.size());
  top_.resize(rows.size());
  if (observer_ && !rows.empty()) observer_(logits_.data(), n_vocab);
  // Rows in parallel: each has its own sampler and writes only its own entries (as the pipeline
  // executor does), so the tokens are those of a serial loop.
  model_->backend()->HostParallelFor(static_cast<int64_t>(rows.size()), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = logits_.data() + r * static_cast<size_t>(n_vocab);
      const SampleRequest& q = rows[r];
      (*out)[r].id = q.sampler->Sample(row, n_vocab, *q.history, q.generated_begin);
      (*out)[r].logprob = q.sampler->ChosenLogprob();
      if (q.top_logprobs > 0) top_[r] = q.sampler->TopLogprobs(q.top_logprobs);
      else top_[r].clear();
    }
  });
  return absl::OkStatus();
}

}  // namespace strata
