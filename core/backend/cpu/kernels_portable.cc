// Portable kernels: plain C++ for any CPU. Each output element has a single code path (no tiles),
// so batch invariance holds by construction; speed comes from whatever the compiler vectorizes.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/backend/cpu/kernels.h"

namespace strata::cpu {
namespace {

constexpr int kLanes = 8;

// x · w with lane l summing k ≡ l (mod 8) in increasing k, then a fixed pairwise tree; the same
// shape as the SIMD kernels (not the same bits: those fuse the multiply-add).
float DotLanes(const float* x, const float* w, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[k + l] * w[k + l];
  for (int l = 0; k + l < n; ++l) acc[l] += x[k + l] * w[k + l];
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

size_t MatMulFloatScratch(int n, int64_t cols) { return static_cast<size_t>(cols); }

void MatMulFloat(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                 int64_t r1, KernelScratch scratch) {
  for (int64_t r = r0; r < r1; ++r) {
    // Each weight row is converted once and used by all n token rows.
    const float* wr = static_cast<const float*>(w.row(r));
    if (w.dtype != DType::kF32) {
      DequantizeRow(w.dtype, w.row(r), scratch.data, w.cols);
      wr = scratch.data;
    }
    for (int i = 0; i < n; ++i) out[i * ldo + r] = DotLanes(x + i * ldx, wr, w.cols);
  }
}

void QuantizeQ8(Q8Rows q, const float* x, int64_t i0, int64_t i1) {
  const int64_t nb = q.cols / kQ8Block;
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + i * q.cols + b * kQ8Block;
      float amax = 0.0f;
      for (int k = 0; k < kQ8Block; ++k) amax = std::max(amax, std::fabs(xb[k]));
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      q.d[i * nb + b] = d;
      int8_t* qs = q.qs + i * q.cols + b * kQ8Block;
      uint8_t* abs = q.abs + i * q.cols + b * kQ8Block;
      for (int k = 0; k < kQ8Block; ++k) {
        qs[k] = static_cast<int8_t>(std::nearbyint(xb[k] * id));
        abs[k] = static_cast<uint8_t>(std::abs(qs[k]));
      }
    }
  }
}

size_t MatMulQ8Scratch(int n, const Tensor& w) { return 0; }

void MatMulQ8(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
              KernelScratch) {
  const int64_t nb = w.cols / kQ8Block;
  for (int64_t r = r0; r < r1; ++r) {
    const auto* wb = static_cast<const BlockQ8_0*>(w.row(r));
    for (int i = 0; i < n; ++i) {
      const int8_t* xq = x.row_qs(i);
      const float* xd = x.row_d(i);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t isum = 0;  // exact: |Σ| <= 32 * 127 * 127
        for (int k = 0; k < kQ8Block; ++k) isum += int32_t(xq[b * kQ8Block + k]) * wb[b].qs[k];
        acc += F16ToF32(wb[b].d) * xd[b] * static_cast<float>(isum);
      }
      out[i * ldo + r] = acc;
    }
  }
}

void AttendOne(float* out, const float* q, int n_q, const float* k, const float* v, int64_t kv_dim,
               const int32_t* block_table, int32_t block_size, int ctx, int hd, float scale, float* scratch) {
  for (int h = 0; h < n_q; ++h) {
    const float* qh = q + h * hd;
    float* att = scratch + static_cast<int64_t>(h) * ctx;
    float max_score = -INFINITY;
    for (int p = 0; p < ctx; ++p) {
      const int64_t slot = static_cast<int64_t>(block_table[p / block_size]) * block_size + p % block_size;
      att[p] = DotLanes(qh, k + slot * kv_dim, hd) * scale;
      max_score = std::max(max_score, att[p]);
    }
    float sum = 0.0f;
    for (int p = 0; p < ctx; ++p) {
      att[p] = std::exp(att[p] - max_score);
      sum += att[p];
    }
    const float inv = 1.0f / sum;
    float* oh = out + h * hd;
    std::fill(oh, oh + hd, 0.0f);
    for (int p = 0; p < ctx; ++p) {
      const int64_t slot = static_cast<int64_t>(block_table[p / block_size]) * block_size + p % block_size;
      const float* vp = v + slot * kv_dim;
      const float a = att[p] * inv;
      for (int d = 0; d < hd; ++d) oh[d] += a * vp[d];
    }
  }
}

void Attend(float* out, const float* q, int64_t ldq, int n_tok, int n_q, const float* k, const float* v,
            int64_t kv_dim, const int32_t* block_table, int32_t block_size, int ctx0, int hd, float scale,
            float* scratch) {
  for (int t = 0; t < n_tok; ++t)
    AttendOne(out + t * ldq, q + t * ldq, n_q, k, v, kv_dim, block_table, block_size, ctx0 + t, hd, scale, scratch);
}

void SwiGlu(float* out, const float* gate, const float* up, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace

const Kernels& PortableKernels() {
  static const Kernels k = [] {
    Kernels t;
    t.isa = Isa::kPortable;
    t.matmul_float_scratch = MatMulFloatScratch;
    t.matmul_float = MatMulFloat;
    t.quantize_q8 = QuantizeQ8;
    t.matmul_q8_scratch = MatMulQ8Scratch;
    t.matmul_q8 = MatMulQ8;
    t.attend = Attend;
    t.swiglu = SwiGlu;
    return t;
  }();
  return k;
}

}  // namespace strata::cpu
