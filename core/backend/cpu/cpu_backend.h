// The CPU backend: the reference implementation of Backend, multi-threaded over a persistent pool.
#pragma once

#include <memory>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/cpu/thread_pool.h"

namespace strata {

struct CpuBackendOptions {
  int n_threads = 1;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options);

  std::string name() const override { return "cpu"; }
  int n_threads() const { return pool_.size(); }

  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override;
  absl::StatusOr<Tensor> PrepareWeight(const Tensor& host) override { return host; }
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyFromHost(void* dst, const void* src, size_t bytes) override;

  void Embed(float* out, const Tensor& table, const int32_t* ids, int n) override;
  void MatMul(float* out, const float* x, const Tensor& w, int n) override;
  void AddBias(float* x, const float* bias, int n, int dim) override;
  void Add(float* x, const float* y, int64_t count) override;
  void RmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps) override;
  void LayerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim, float eps) override;
  void Rope(float* x, const int32_t* positions, int n, int n_heads, int head_dim, const RopeParams& p) override;
  void SwiGlu(float* out, const float* gate, const float* up, int64_t count) override;
  void Gelu(float* x, int64_t count) override;
  void StoreKv(const KvLayerView& kv, const float* k, const float* v, const int32_t* slots, int n) override;
  void Attention(float* out, const float* q, const KvLayerView& kv, const Batch& batch,
                 const AttentionShape& shape) override;
  void GatherRows(float* out, const float* x, const int32_t* rows, int n, int dim) override;

 private:
  // Per-thread scratch, grown on first use and then reused (no allocation in steady state).
  float* Scratch(int thread, size_t floats);

  ThreadPool pool_;
  std::vector<std::vector<float>> scratch_;
};

}  // namespace strata
