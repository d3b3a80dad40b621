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
  if (observer_ && !rows.empty()) observer_(logits_.data(), n_vocab);
  SampleRows(model_->backend(), logits_.data(), n_vocab, rows, out);
  return absl::OkStatus();
}

}  // namespace strata
