#include "core/kv/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "core/util/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(Backend* backend, const KvCacheConfig& config) {
  if (config.n_layers <= 0 || config.kv_dim <= 0 || config.block_size <= 0 || config.n_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid KV cache shape: layers ", config.n_layers, ", kv_dim ",
                                                   config.kv_dim, ", block_size ", config.block_size, ", blocks ",
                                                   config.n_blocks));
  }
  auto cache = std::unique_ptr<KvCache>(new KvCache());
  cache->config_ = config;
  const size_t bytes = static_cast<size_t>(config.n_blocks) * config.block_size * config.kv_dim * sizeof(float);
  for (int32_t l = 0; l < config.n_layers; ++l) {
    STRATA_ASSIGN_OR_RETURN(auto k, backend->Allocate(bytes));
    STRATA_ASSIGN_OR_RETURN(auto v, backend->Allocate(bytes));
    cache->k_.push_back(std::move(k));
    cache->v_.push_back(std::move(v));
  }
  return cache;
}

KvLayerView KvCache::layer(int32_t i) const {
  return {k_[i]->f32(), v_[i]->f32(), config_.block_size, config_.kv_dim};
}

int64_t KvCache::BytesPerBlock(const KvCacheConfig& config) {
  return 2LL * config.n_layers * config.block_size * config.kv_dim * sizeof(float);
}

}  // namespace strata
