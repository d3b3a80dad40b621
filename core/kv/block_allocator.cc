#include "core/kv/block_allocator.h"

namespace strata {

BlockAllocator::BlockAllocator(int32_t n_blocks) : n_blocks_(n_blocks) {
  free_.reserve(n_blocks);
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_.push_back(b);  // block 0 is handed out first
}

bool BlockAllocator::Allocate(int32_t n, std::vector<int32_t>* table) {
  if (n > n_free()) return false;
  for (int32_t i = 0; i < n; ++i) {
    table->push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void BlockAllocator::Free(std::vector<int32_t>* table) {
  for (auto it = table->rbegin(); it != table->rend(); ++it) free_.push_back(*it);
  table->clear();
}

}  // namespace strata
