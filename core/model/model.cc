#include "core/model/model.h"

#include "absl/strings/str_cat.h"
#include "core/comm/communicator.h"
#include "core/model/gguf.h"
#include "core/util/status.h"

namespace strata {

absl::StatusOr<float*> Model::Workspace(int64_t floats) {
  STRATA_ASSIGN_OR_RETURN(auto buf, backend_->Allocate(static_cast<size_t>(floats) * sizeof(float)));
  workspace_.push_back(std::move(buf));
  return workspace_.back()->f32();
}

void Model::AllReduce(float* x, int64_t count) {
  if (shard_.tp_size == 1 || !comm_status_.ok()) return;
  comm_status_ = options_.tp_comm->AllReduceSum(x, count);
}

KvCacheConfig Model::KvConfig(int32_t block_size, int32_t n_blocks) const {
  KvCacheConfig kc;
  kc.n_layers = shard_.n_layers();
  kc.kv_dim = shard_.n_kv_heads * config_.head_dim;
  kc.block_size = block_size;
  kc.n_blocks = n_blocks;
  return kc;
}

absl::Status Model::Forward(const Batch& batch, KvCache* kv, float* logits) {
  const int32_t n = batch.n_tokens();
  if (n <= 0 || n > options_.max_batch_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch has ", n, " tokens; this model runs 1 to ", options_.max_batch_tokens, " per step"));
  }
  if (static_cast<int32_t>(batch.logit_rows.size()) > options_.max_logit_rows) {
    return absl::InvalidArgumentError(absl::StrCat("batch asks for ", batch.logit_rows.size(),
                                                   " logit rows; at most ", options_.max_logit_rows));
  }
  const KvCacheConfig want = KvConfig(kv->block_size(), kv->n_blocks());
  if (kv->config().n_layers != want.n_layers || kv->config().kv_dim != want.kv_dim) {
    return absl::InvalidArgumentError("KV cache shape does not match the model shard");
  }
  for (int32_t id : batch.tokens) {
    if (id < 0 || id >= config_.n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside the vocabulary [0, ",
                                                     config_.n_vocab, ")"));
    }
  }
  for (const SeqStep& s : batch.seqs) {
    if (s.end_pos() > config_.n_ctx) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence reaches position ", s.end_pos(), ", past the context length ", config_.n_ctx));
    }
    if (static_cast<int64_t>(s.n_blocks) * kv->block_size() < s.end_pos()) {
      return absl::InvalidArgumentError(absl::StrCat("block table of ", s.n_blocks, " blocks cannot hold ",
                                                     s.end_pos(), " tokens"));
    }
    for (int32_t b = 0; b < s.n_blocks; ++b) {
      if (s.block_table[b] < 0 || s.block_table[b] >= kv->n_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat("block id ", s.block_table[b], " is outside the cache"));
      }
    }
  }
  comm_status_ = absl::OkStatus();
  Run(batch, kv, logits);
  return comm_status_;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(std::shared_ptr<const gguf::GgufFile> file, Backend* backend,
                                                 const ModelOptions& options) {
  STRATA_ASSIGN_OR_RETURN(ModelConfig config, ReadModelConfig(*file));
  if (options.max_batch_tokens <= 0 || options.max_logit_rows <= 0) {
    return absl::InvalidArgumentError("max_batch_tokens and max_logit_rows must be positive");
  }
  STRATA_ASSIGN_OR_RETURN(ShardSpec shard, MakeShardSpec(config, options.layout));
  if (options.layout.tp > 1 && (options.tp_comm == nullptr || options.tp_comm->size() != options.layout.tp)) {
    return absl::InvalidArgumentError(absl::StrCat("tp=", options.layout.tp, " needs a tensor-parallel communicator of ",
                                                   options.layout.tp, " ranks"));
  }
  switch (config.arch) {
    case Arch::kLlama: return LoadLlama(std::move(file), std::move(config), shard, backend, options);
    case Arch::kGpt2: return LoadGpt2(std::move(file), std::move(config), shard, backend, options);
  }
  return absl::InternalError("unknown architecture");
}

}  // namespace strata
