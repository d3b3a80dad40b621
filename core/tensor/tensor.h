// A non-owning view of a 2-D tensor: `rows` rows of `cols` values of type `dtype`, rows contiguous.
// Follows GGUF's order: cols is ne[0] (the fastest-varying dimension). A weight matrix used as
// y = W x has rows = output features and cols = input features.
#pragma once

#include <cstdint>

#include "core/tensor/dtype.h"

namespace strata {

// How a tensor's values are arranged in memory.
enum class Layout : uint8_t {
  kRows,         // row r at data + r * row_bytes() (GGUF's own layout; every view starts so)
  kQ8_0Groups8,  // Q8_0 rows interleaved in groups of 8, made by the CPU backend for its AVX2
                 // kernels (core/backend/cpu/q8_groups.h); only that backend's MatMul reads it
  kFloatGroups16,  // F32 or F16 rows in groups of 16, k-major, made by the CPU backend for its
                   // AVX2 kernels (core/backend/cpu/float_groups.h); only its MatMul reads it
};

struct Tensor {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;  // host or device memory, depending on the backend that owns it
  Layout layout = Layout::kRows;  // row(), RowSlice() and row_bytes() describe kRows only

  int64_t row_bytes() const { return RowBytes(dtype, cols); }
  int64_t nbytes() const { return rows * row_bytes(); }
  const void* row(int64_t r) const { return static_cast<const char*>(data) + r * row_bytes(); }
  // Rows [first, first + n) as a view (used to take a shard of a weight without copying).
  Tensor RowSlice(int64_t first, int64_t n) const { return {dtype, n, cols, row(first)}; }
  bool empty() const { return data == nullptr; }
};

}  // namespace strata
