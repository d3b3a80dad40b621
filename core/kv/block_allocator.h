// Hands out fixed-size KV-cache blocks by index. Pure bookkeeping: the memory lives in KvCache.
#pragma once

#include <cstdint>
#include <vector>

namespace strata {

class BlockAllocator {
 public:
  explicit BlockAllocator(int32_t n_blocks);

  int32_t n_blocks() const { return n_blocks_; }
  int32_t n_free() const { return static_cast<int32_t>(free_.size()); }

  // Appends `n` blocks to `table`. All or nothing: returns false (table unchanged) if fewer than n are free.
  bool Allocate(int32_t n, std::vector<int32_t>* table);
  // Returns every block of `table` and clears it.
  void Free(std::vector<int32_t>* table);

 private:
  int32_t n_blocks_;
  std::vector<int32_t> free_;  // stack: the most recently freed block is reused first
};

// Blocks needed to hold n_tokens tokens.
inline int32_t BlocksFor(int32_t n_tokens, int32_t block_size) { return (n_tokens + block_size - 1) / block_size; }

}  // namespace strata
