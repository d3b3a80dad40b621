// F32 and F16 weights repacked for the AVX2 kernels: rows in groups of 16, each group k-major.
//
// Group g holds rows [16g, 16g + 16) as cols entries of 16 values, one per row: the weights of
// column k for the 16 rows are contiguous (64 bytes of F32, 32 of F16). A kernel then keeps 16
// outputs of one token in two vectors and adds x[k] · (16 weights) with one broadcast and two
// FMAs, so each output is a single FMA chain over k, in increasing k (the canonical order of
// these weights: acc = +0, then acc = fma(x[k], w[k], acc) for k = 0, 1, ...). No horizontal sum,
// and between column blocks only the outputs themselves wait in memory. The last group is padded
// with zero rows. Groups are consecutive: group g at g · FloatGroupBytes(dtype, cols).
#pragma once

#include <cstdint>

#include "core/tensor/tensor.h"

namespace strata::cpu {

constexpr int kFloatGroupRows = 16;

inline int64_t FloatGroupElemBytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }
inline int64_t FloatGroupBytes(DType dtype, int64_t cols) {
  return cols * kFloatGroupRows * FloatGroupElemBytes(dtype);
}
inline int64_t FloatGroups(int64_t rows) { return (rows + kFloatGroupRows - 1) / kFloatGroupRows; }
inline int64_t FloatGroupsBytes(DType dtype, int64_t rows, int64_t cols) {
  return FloatGroups(rows) * FloatGroupBytes(dtype, cols);
}

// Writes groups [g0, g1) of the F32 or F16 weight src (Layout::kRows) into dst, laid out as above.
void RepackFloatGroups(const Tensor& src, int64_t g0, int64_t g1, void* dst);

}  // namespace strata::cpu
