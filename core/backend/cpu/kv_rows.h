// The K or V rows of one KV head through a sequence's block table, for the attention kernels.
// Internal linkage (an anonymous namespace): each kernel file compiles these under its own target
// (AVX2, AVX-512), and the linker must never hand one file's copy to another, where a CPU without
// the wider instructions would run it.
#pragma once

#include <algorithm>
#include <cstdint>

namespace strata::cpu {
namespace {

// Calls f(p, row) for p in [0, ctx) with row = base + slot(p) * kv_dim.
template <class F>
inline void ForEachRow(const float* base, int64_t kv_dim, const int32_t* block_table, int32_t block_size,
                       int ctx, F&& f) {
  for (int p0 = 0, blk = 0; p0 < ctx; p0 += block_size, ++blk) {
    const float* row = base + static_cast<int64_t>(block_table[blk]) * block_size * kv_dim;
    const int end = std::min(ctx, p0 + block_size);
    for (int p = p0; p < end; ++p, row += kv_dim) f(p, row);
  }
}

struct KvRows {
  const float* base;
  int64_t kv_dim;
  const int32_t* block_table;
  int32_t block_size;
  template <class F>
  void ForEach(int n, F&& f) const {
    ForEachRow(base, kv_dim, block_table, block_size, n, f);
  }
};

}  // namespace
}  // namespace strata::cpu
