#include "core/backend/cpu/float_groups.h"

#include <cstring>

namespace strata::cpu {
namespace {

template <class T>
void Repack(const Tensor& src, int64_t g0, int64_t g1, T* dst) {
  const T* s = static_cast<const T*>(src.data);
  for (int64_t g = g0; g < g1; ++g) {
    T* d = dst + g * src.cols * kFloatGroupRows;  // [cols][16]
    for (int l = 0; l < kFloatGroupRows; ++l) {
      const int64_t r = g * kFloatGroupRows + l;
      if (r >= src.rows) {  // padding rows of the last group
        for (int64_t k = 0; k < src.cols; ++k) d[k * kFloatGroupRows + l] = T{0};
        continue;
      }
      const T* row = s + r * src.cols;
      for (int64_t k = 0; k < src.cols; ++k) d[k * kFloatGroupRows + l] = row[k];
    }
  }
}

}  // namespace

void RepackFloatGroups(const Tensor& src, int64_t g0, int64_t g1, void* dst) {
  if (src.dtype == DType::kF32) {
    Repack(src, g0, g1, static_cast<float*>(dst));
  } else {
    Repack(src, g0, g1, static_cast<uint16_t*>(dst));
  }
}

}  // namespace strata::cpu
