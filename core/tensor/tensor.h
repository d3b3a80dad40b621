// A non-owning view of a 2-D tensor: `rows` rows of `cols` values of type `dtype`, rows contiguous.
// Follows GGUF's order: cols is ne[0] (the fastest-varying dimension). A weight matrix used as
// y = W x has rows = output features and cols = input features.
#pragma once

#include <cstdint>

#include "core/tensor/dtype.h"

namespace strata {

struct Tensor {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;  // host or device memory, depending on the backend that owns it

  int64_t row_bytes() const { return RowBytes(dtype, cols); }
  int64_t nbytes() const { return rows * row_bytes(); }
  const void* row(int64_t r) const { return static_cast<const char*>(data) + r * row_bytes(); }
  // Rows [first, first + n) as a view (used to take a shard of a weight without copying).
  Tensor RowSlice(int64_t first, int64_t n) const { return {dtype, n, cols, row(first)}; }
  bool empty() const { return data == nullptr; }
};

}  // namespace strata
