// The paged KV cache of the layers a process runs: per layer, K and V for n_blocks blocks of
// block_size token slots each, in backend memory.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"

namespace strata {

struct KvCacheConfig {
  int32_t n_layers = 0;   // layers held by this process
  int32_t kv_dim = 0;     // n_kv_heads (local) * head_dim
  int32_t block_size = 16;
  int32_t n_blocks = 0;
};

class KvCache {
 public:
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(Backend* backend, const KvCacheConfig& config);

  const KvCacheConfig& config() const { return config_; }
  int32_t block_size() const { return config_.block_size; }
  int32_t n_blocks() const { return config_.n_blocks; }
  KvLayerView layer(int32_t i) const;
  // Bytes per block across all layers (K and V), to size the cache from a memory budget.
  static int64_t BytesPerBlock(const KvCacheConfig& config);

 private:
  KvCacheConfig config_;
  std::vector<std::unique_ptr<Buffer>> k_, v_;  // [n_layers] each [n_blocks * block_size, kv_dim] f32
};

}  // namespace strata
