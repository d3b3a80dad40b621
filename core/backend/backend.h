// The compute interface every device implements. Model code calls these ops and never touches a
// device directly; the CPU backend is the reference the others are tested against.
//
// Conventions: activations are f32, row-major [n, dim] in the backend's memory; weights are
// Tensors prepared by PrepareWeight (any DType); step metadata (ids, positions, slots, block
// tables) stays in host memory and a device backend uploads what it needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "core/model/batch.h"
#include "core/tensor/tensor.h"

namespace strata {

// Memory owned by a backend (host memory for the CPU backend).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() = 0;
  virtual size_t size() const = 0;
  float* f32() { return static_cast<float*>(data()); }
};

// One layer's paged KV cache: slot s holds row s of k and v.
struct KvLayerView {
  float* k = nullptr;  // [n_blocks * block_size, kv_dim]
  float* v = nullptr;  // [n_blocks * block_size, kv_dim]
  int32_t block_size = 0;
  int32_t kv_dim = 0;  // n_kv_heads * head_dim
};

struct RopeParams {
  int32_t rot_dim = 0;       // leading dims of each head that rotate (= head_dim for llama)
  float base = 10000.0f;     // theta_i = base^(-2i/rot_dim)
  float freq_scale = 1.0f;   // linear scaling: position * freq_scale
  bool neox = false;         // false: rotate adjacent pairs (x[2i], x[2i+1]) as GGUF llama stores Q/K;
                             // true: rotate (x[i], x[i + rot_dim/2]) (GPT-NeoX, Qwen2)
};

struct AttentionShape {
  int32_t n_heads = 0;     // query heads in q (this rank's)
  int32_t n_kv_heads = 0;  // KV heads in the cache (this rank's)
  int32_t head_dim = 0;
  float scale = 1.0f;      // usually 1/sqrt(head_dim)
  // Grouped-query attention under tensor parallelism: local query head h is global head
  // q_head_offset + h and reads global KV head (q_head_offset + h) / group, stored locally at
  // that index minus q_head_offset / group. Defaults describe an unsharded model.
  int32_t group = 0;          // query heads per KV head in the whole model; 0: n_heads / n_kv_heads
  int32_t q_head_offset = 0;

  int32_t kv_group() const { return group > 0 ? group : n_heads / n_kv_heads; }
  // Local KV head read by local query head h.
  int32_t KvHead(int32_t h) const { return (q_head_offset + h) / kv_group() - q_head_offset / kv_group(); }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Runs fn(i0, i1) over the items [0, n) on the host threads this backend computes with (the
  // CPU backend's pool; by default the caller, in one call): for host work between kernels, such
  // as sampling each logits row. fn must not call back into the backend.
  virtual void HostParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn) {
    if (n > 0) fn(0, n);
  }

  // ---- memory ----
  virtual absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) = 0;
  // Makes a host weight usable by this backend's MatMul. The CPU backend returns the same view
  // (weights stay memory-mapped), except that its AVX2 kernels take Q8_0, F32 and F16 weights
  // repacked into groups of rows: a copy of the same size, after which the caller may drop the
  // host pages. Where the result is a view, `host` must outlive it.
  virtual absl::StatusOr<Tensor> PrepareWeight(const Tensor& host) = 0;
  // Makes a host table usable by Embed and plain reads (read by rows, never multiplied: embeddings,
  // norm weights, biases); never repacked.
  virtual absl::StatusOr<Tensor> PrepareTable(const Tensor& host) { return PrepareWeight(host); }
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyFromHost(void* dst, const void* src, size_t bytes) = 0;

  // ---- ops ----
  // out[n, table.cols] = rows ids[0..n) of the table, converted to f32.
  virtual void Embed(float* out, const Tensor& table, const int32_t* ids, int n) = 0;
  // out[n, w.rows] = x[n, w.cols] · wᵀ.
  virtual void MatMul(float* out, const float* x, const Tensor& w, int n) = 0;
  // Several weights of the same width times one x (q, k and v; gate and up): for each target,
  // out[n, w->rows] = x · w->ᵀ, each bit for bit what MatMul makes. A backend may share work
  // between them; the CPU backend quantizes x once and splits all their rows over its threads
  // in one pass (one hand-off and one wait instead of one per weight).
  struct MatMulTarget {
    float* out;
    const Tensor* w;
  };
  virtual void MatMuls(const MatMulTarget* targets, int count, const float* x, int n) {
    for (int i = 0; i < count; ++i) MatMul(targets[i].out, x, *targets[i].w, n);
  }
  // x[n, dim] += bias[dim] on every row.
  virtual void AddBias(float* x, const float* bias, int n, int dim) = 0;
  // x[count] += y[count] (residual connections).
  virtual void Add(float* x, const float* y, int64_t count) = 0;
  // out = x / sqrt(mean(x²) + eps) * w, per row of dim values.
  virtual void RmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps) = 0;
  // out = (x - mean) / sqrt(var + eps) * w + b, per row.
  virtual void LayerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim,
                         float eps) = 0;
  // Rotates x[n, n_heads * head_dim] in place by each token's position.
  virtual void Rope(float* x, const int32_t* positions, int n, int n_heads, int head_dim,
                    const RopeParams& p) = 0;
  // out[i] = silu(gate[i]) * up[i].
  virtual void SwiGlu(float* out, const float* gate, const float* up, int64_t count) = 0;
  // x[i] = gelu(x[i]), tanh approximation (GPT-2).
  virtual void Gelu(float* x, int64_t count) = 0;
  // Writes k[n, kv_dim] and v[n, kv_dim] to the cache slots of the n tokens.
  virtual void StoreKv(const KvLayerView& kv, const float* k, const float* v, const int32_t* slots, int n) = 0;
  // Causal attention over the paged cache: token i of sequence s (position p) attends to positions
  // 0..p of s. q and out are [batch.n_tokens(), n_heads * head_dim]. StoreKv must come first.
  virtual void Attention(float* out, const float* q, const KvLayerView& kv, const Batch& batch,
                         const AttentionShape& shape) = 0;
  // out[r, dim] = x[rows[r], dim].
  virtual void GatherRows(float* out, const float* x, const int32_t* rows, int n, int dim) = 0;
};

}  // namespace strata
