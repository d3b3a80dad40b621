#include "core/backend/cpu/q8_groups.h"

#include <cstring>

namespace strata::cpu {

void RepackQ8Groups(const Tensor& src, int64_t g0, int64_t g1, void* dst) {
  const int64_t nb = src.cols / kQ8Block;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t g = g0; g < g1; ++g) {
    uint8_t* group = out + g * Q8GroupBytes(src.cols);
    // Padding rows (past the last row) and the odd last block's padding are zeros.
    std::memset(group, 0, Q8GroupBytes(src.cols));
    for (int l = 0; l < kQ8GroupRows && g * kQ8GroupRows + l < src.rows; ++l) {
      const auto* row = static_cast<const BlockQ8_0*>(src.row(g * kQ8GroupRows + l));
      for (int64_t b = 0; b < nb; ++b) {
        std::memcpy(group + Q8GroupScalesAt(b) + 2 * l, &row[b].d, 2);
        uint8_t* qs = group + Q8GroupQuantsAt(b);
        for (int k4 = 0; k4 < kQ8Block / 4; ++k4) std::memcpy(qs + k4 * 4 * kQ8GroupRows + l * 4, row[b].qs + 4 * k4, 4);
      }
    }
  }
}

}  // namespace strata::cpu
