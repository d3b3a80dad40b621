#include "core/backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

class HostBuffer final : public Buffer {
 public:
  HostBuffer(void* p, size_t n) : p_(p), n_(n) {}
  ~HostBuffer() override { std::free(p_); }
  void* data() override { return p_; }
  size_t size() const override { return n_; }

 private:
  void* p_;
  size_t n_;
};

float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// A weight row as f32: the row itself for f32 weights, else dequantized into `scratch`.
const float* RowF32(const Tensor& w, int64_t r, float* scratch) {
  if (w.dtype == DType::kF32) return static_cast<const float*>(w.row(r));
  DequantizeRow(w.dtype, w.row(r), scratch, w.cols);
  return scratch;
}

// Rows of work per chunk so that a chunk is worth a thread hand-off.
int64_t Grain(int64_t items, int64_t work_per_item, int threads) {
  const int64_t min_work = 1 << 14;
  int64_t g = std::max<int64_t>(1, min_work / std::max<int64_t>(1, work_per_item));
  return std::min(g, std::max<int64_t>(1, items / (4 * threads)));
}

}  // namespace

CpuBackend::CpuBackend(const CpuBackendOptions& options) : pool_(options.n_threads), scratch_(pool_.size()) {}

absl::StatusOr<std::unique_ptr<Buffer>> CpuBackend::Allocate(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes"));
  std::memset(p, 0, rounded);
  return std::unique_ptr<Buffer>(new HostBuffer(p, bytes));
}

void CpuBackend::CopyToHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::CopyFromHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

float* CpuBackend::Scratch(int thread, size_t floats) {
  auto& s = scratch_[thread];
  if (s.size() < floats) s.resize(floats);
  return s.data();
}

void CpuBackend::Embed(float* out, const Tensor& table, const int32_t* ids, int n) {
  for (int i = 0; i < n; ++i) DequantizeRow(table.dtype, table.row(ids[i]), out + i * table.cols, table.cols);
}

void CpuBackend::MatMul(float* out, const float* x, const Tensor& w, int n) {
  const int64_t rows = w.rows, cols = w.cols;
  // Split over weight rows: each weight row is read (and dequantized) once per step and
  // multiplied with all n token rows, so the weights stream through memory once.
  pool_.ParallelFor(rows, Grain(rows, cols * n, pool_.size()), [&](int64_t r0, int64_t r1, int thread) {
    float* scratch = Scratch(thread, cols);
    for (int64_t r = r0; r < r1; ++r) {
      const float* wr = RowF32(w, r, scratch);
      for (int i = 0; i < n; ++i) out[i * rows + r] = Dot(x + i * cols, wr, cols);
    }
  });
}

void CpuBackend::AddBias(float* x, const float* bias, int n, int dim) {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) x[i * dim + j] += bias[j];
}

void CpuBackend::Add(float* x, const float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] += y[i];
}

void CpuBackend::RmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float ss = 0.0f;
    for (int j = 0; j < dim; ++j) ss += xi[j] * xi[j];
    const float scale = 1.0f / std::sqrt(ss / dim + eps);
    for (int j = 0; j < dim; ++j) out[i * dim + j] = xi[j] * scale * w[j];
  }
}

void CpuBackend::LayerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim, float eps) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float mean = 0.0f;
    for (int j = 0; j < dim; ++j) mean += xi[j];
    mean /= dim;
    float var = 0.0f;
    for (int j = 0; j < dim; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    var /= dim;
    const float scale = 1.0f / std::sqrt(var + eps);
    for (int j = 0; j < dim; ++j) out[i * dim + j] = (xi[j] - mean) * scale * w[j] + b[j];
  }
}

void CpuBackend::Rope(float* x, const int32_t* positions, int n, int n_heads, int head_dim, const RopeParams& p) {
  const int half = p.rot_dim / 2;
  for (int i = 0; i < n; ++i) {
    const float pos = positions[i] * p.freq_scale;
    for (int j = 0; j < half; ++j) {
      // theta_j = pos * base^(-2j / rot_dim); computed in double so long contexts keep precision.
      const double theta = pos * std::pow(static_cast<double>(p.base), -2.0 * j / p.rot_dim);
      const float c = static_cast<float>(std::cos(theta)), s = static_cast<float>(std::sin(theta));
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (static_cast<int64_t>(i) * n_heads + h) * head_dim;
        const int a = p.neox ? j : 2 * j, b = p.neox ? j + half : 2 * j + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
      }
    }
  }
}

void CpuBackend::SwiGlu(float* out, const float* gate, const float* up, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void CpuBackend::Gelu(float* x, int64_t count) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < count; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void CpuBackend::StoreKv(const KvLayerView& kv, const float* k, const float* v, const int32_t* slots, int n) {
  for (int i = 0; i < n; ++i) {
    std::memcpy(kv.k + static_cast<int64_t>(slots[i]) * kv.kv_dim, k + i * kv.kv_dim, kv.kv_dim * sizeof(float));
    std::memcpy(kv.v + static_cast<int64_t>(slots[i]) * kv.kv_dim, v + i * kv.kv_dim, kv.kv_dim * sizeof(float));
  }
}

void CpuBackend::Attention(float* out, const float* q, const KvLayerView& kv, const Batch& batch,
                           const AttentionShape& shape) {
  const int n_tokens = batch.n_tokens();
  const int hd = shape.head_dim;
  const int q_dim = shape.n_heads * hd;
  const int group = shape.n_heads / shape.n_kv_heads;
  int max_ctx = 0;
  for (const SeqStep& s : batch.seqs) max_ctx = std::max(max_ctx, s.end_pos());
  // One task per (token, head).
  pool_.ParallelFor(static_cast<int64_t>(n_tokens) * shape.n_heads, 1, [&](int64_t t0, int64_t t1, int thread) {
    float* att = Scratch(thread, max_ctx);
    for (int64_t task = t0; task < t1; ++task) {
      const int t = static_cast<int>(task / shape.n_heads), h = static_cast<int>(task % shape.n_heads);
      // The sequence this token belongs to: the last one starting at or before it.
      const auto it = std::upper_bound(batch.seqs.begin(), batch.seqs.end(), t,
                                       [](int tok, const SeqStep& s) { return tok < s.first_token; });
      const SeqStep& seq = *(it - 1);
      const int ctx = batch.positions[t] + 1;  // causal: positions 0..pos
      const float* qh = q + static_cast<int64_t>(t) * q_dim + h * hd;
      const int kv_off = (h / group) * hd;
      float max_score = -INFINITY;
      for (int p = 0; p < ctx; ++p) {
        const int64_t slot = static_cast<int64_t>(seq.block_table[p / kv.block_size]) * kv.block_size + p % kv.block_size;
        att[p] = Dot(qh, kv.k + slot * kv.kv_dim + kv_off, hd) * shape.scale;
        max_score = std::max(max_score, att[p]);
      }
      float sum = 0.0f;
      for (int p = 0; p < ctx; ++p) {
        att[p] = std::exp(att[p] - max_score);
        sum += att[p];
      }
      float* oh = out + static_cast<int64_t>(t) * q_dim + h * hd;
      std::fill(oh, oh + hd, 0.0f);
      for (int p = 0; p < ctx; ++p) {
        const int64_t slot = static_cast<int64_t>(seq.block_table[p / kv.block_size]) * kv.block_size + p % kv.block_size;
        const float* vp = kv.v + slot * kv.kv_dim + kv_off;
        const float a = att[p] / sum;
        for (int d = 0; d < hd; ++d) oh[d] += a * vp[d];
      }
    }
  });
}

void CpuBackend::GatherRows(float* out, const float* x, const int32_t* rows, int n, int dim) {
  for (int r = 0; r < n; ++r) std::memcpy(out + static_cast<int64_t>(r) * dim, x + static_cast<int64_t>(rows[r]) * dim, dim * sizeof(float));
}

}  // namespace strata
