// Naive reference implementations of the backend ops, written straight from the math in double
// precision. Every fast kernel is tested against these.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/model/batch.h"
#include "core/tensor/tensor.h"

namespace strata::ref {

inline std::vector<float> WeightRow(const Tensor& w, int64_t r) {
  std::vector<float> out(w.cols);
  DequantizeRow(w.dtype, w.row(r), out.data(), w.cols);
  return out;
}

// out[n, w.rows] = x[n, w.cols] · wᵀ
inline void MatMul(float* out, const float* x, const Tensor& w, int n) {
  for (int64_t r = 0; r < w.rows; ++r) {
    const std::vector<float> wr = WeightRow(w, r);
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t c = 0; c < w.cols; ++c) s += double(x[i * w.cols + c]) * wr[c];
      out[i * w.rows + r] = static_cast<float>(s);
    }
  }
}

// The activation quantization the Q8_0 kernels use: per block of 32, d = max|x| / 127 (f32) and
// q = round-half-even(x · (1/d)).
struct Q8Act {
  std::vector<int8_t> qs;  // [n, cols]
  std::vector<float> d;    // [n, cols / 32]
};
inline Q8Act QuantizeQ8Act(const float* x, int n, int64_t cols) {
  Q8Act q;
  q.qs.resize(n * cols);
  q.d.resize(n * cols / kQ8Block);
  for (int64_t b = 0; b < n * cols / kQ8Block; ++b) {
    float amax = 0;
    for (int k = 0; k < kQ8Block; ++k) amax = std::max(amax, std::fabs(x[b * kQ8Block + k]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    q.d[b] = d;
    for (int k = 0; k < kQ8Block; ++k)
      q.qs[b * kQ8Block + k] = static_cast<int8_t>(std::nearbyint(x[b * kQ8Block + k] * id));
  }
  return q;
}

// out[n, w.rows] = Σ_b d_x · d_w · Σ q_x q_w for Q8_0 weights and activations quantized as above,
// in double.
inline void MatMulQ8Act(float* out, const Q8Act& x, const Tensor& w, int n) {
  const int64_t nb = w.cols / kQ8Block;
  for (int64_t r = 0; r < w.rows; ++r) {
    const auto* wb = static_cast<const BlockQ8_0*>(w.row(r));
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int64_t isum = 0;
        for (int k = 0; k < kQ8Block; ++k) isum += int64_t(x.qs[(i * nb + b) * kQ8Block + k]) * wb[b].qs[k];
        s += double(x.d[i * nb + b]) * F16ToF32(wb[b].d) * double(isum);
      }
      out[i * w.rows + r] = static_cast<float>(s);
    }
  }
}

inline void RmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps) {
  for (int i = 0; i < n; ++i) {
    double ss = 0;
    for (int j = 0; j < dim; ++j) ss += double(x[i * dim + j]) * x[i * dim + j];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int j = 0; j < dim; ++j) out[i * dim + j] = static_cast<float>(x[i * dim + j] * inv * w[j]);
  }
}

inline void LayerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim, float eps) {
  for (int i = 0; i < n; ++i) {
    double mean = 0, var = 0;
    for (int j = 0; j < dim; ++j) mean += x[i * dim + j];
    mean /= dim;
    for (int j = 0; j < dim; ++j) var += (x[i * dim + j] - mean) * (x[i * dim + j] - mean);
    var /= dim;
    for (int j = 0; j < dim; ++j) {
      out[i * dim + j] = static_cast<float>((x[i * dim + j] - mean) / std::sqrt(var + eps) * w[j] + b[j]);
    }
  }
}

// RoPE as complex multiplication: pair (a, b) of head h at position p rotates by p * base^(-2j/rot_dim).
inline void Rope(float* x, const int32_t* pos, int n, int n_heads, int head_dim, int rot_dim, double base,
                 double freq_scale, bool neox) {
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < n_heads; ++h)
      for (int j = 0; j < rot_dim / 2; ++j) {
        float* v = x + (int64_t(i) * n_heads + h) * head_dim;
        const int a = neox ? j : 2 * j, b = neox ? j + rot_dim / 2 : 2 * j + 1;
        const double th = pos[i] * freq_scale * std::pow(base, -2.0 * j / rot_dim);
        const double re = v[a], im = v[b];
        v[a] = static_cast<float>(re * std::cos(th) - im * std::sin(th));
        v[b] = static_cast<float>(re * std::sin(th) + im * std::cos(th));
      }
}

// Causal attention for one token: keys/values given densely as [ctx, kv_dim] of its sequence.
inline void AttentionOne(float* out, const float* q, const std::vector<float>& keys,
                         const std::vector<float>& values, int ctx, int n_heads, int n_kv_heads,
                         int head_dim) {
  const int kv_dim = n_kv_heads * head_dim, group = n_heads / n_kv_heads;
  for (int h = 0; h < n_heads; ++h) {
    const int kvh = h / group;
    std::vector<double> s(ctx);
    double mx = -1e300;
    for (int p = 0; p < ctx; ++p) {
      double d = 0;
      for (int k = 0; k < head_dim; ++k)
        d += double(q[h * head_dim + k]) * keys[p * kv_dim + kvh * head_dim + k];
      s[p] = d / std::sqrt(double(head_dim));
      mx = std::max(mx, s[p]);
    }
    double z = 0;
    for (int p = 0; p < ctx; ++p) z += s[p] = std::exp(s[p] - mx);
    for (int k = 0; k < head_dim; ++k) {
      double acc = 0;
      for (int p = 0; p < ctx; ++p) acc += s[p] / z * values[p * kv_dim + kvh * head_dim + k];
      out[h * head_dim + k] = static_cast<float>(acc);
    }
  }
}

inline double Silu(double x) { return x / (1 + std::exp(-x)); }
inline double Gelu(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

}  // namespace strata::ref
