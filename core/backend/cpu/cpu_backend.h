// The CPU backend: the reference implementation of Backend, multi-threaded over a persistent pool.
#pragma once

#include <memory>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/cpu/kernels.h"
#include "core/backend/cpu/thread_pool.h"

namespace strata {

struct CpuBackendOptions {
  int n_threads = 1;
  cpu::Isa isa = cpu::Isa::kAuto;  // kernels: the best the CPU has, unless a test asks for another
  bool q8_groups = true;  // repack Q8_0 weights where the kernels take groups (false: A/B benches)
  bool float_groups = true;  // the same for F32 and F16 weights
};

class CpuBackend final : public Backend {
 public:
  // One piece of a MatMuls call's work: rows [r0, r1) of target `target`.
  struct RowRange {
    int target;
    int64_t r0, r1;
  };
  static constexpr int kMaxRowRanges = 256;
  // Splits the rows of `count` weights (rows[t] each, taken as one run) into ranges for dynamic
  // hand-out to `threads` threads multiplying `tokens` token rows. Below 32 tokens (bound by
  // memory: each piece restarts its weight streams), largest first ("guided"): each piece a fixed
  // share of the rows still left (1 / (2 × threads), or 1 / threads for decode's 1-2 tokens), in
  // whole 48-row units, so the last pieces are one unit and no thread finishes more than a unit
  // after the other. From 32 tokens (prefill), every piece one unit (or the fewest units that
  // keep the count within kMaxRowRanges). A piece that runs past a weight's end goes on at the
  // next one's row 0, so every range starts at a multiple of 48 within its weight. Returns how
  // many ranges it wrote to out, in order and covering every row once (at most kMaxRowRanges).
  static int SplitRows(const int64_t* rows, int count, int threads, int tokens, RowRange* out);

  explicit CpuBackend(const CpuBackendOptions& options);

  std::string name() const override { return "cpu"; }
  void HostParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn) override {
    pool_.ParallelFor(n, 1, [&](int64_t i0, int64_t i1, int) { fn(i0, i1); });
  }
  int n_threads() const { return pool_.size(); }
  cpu::Isa isa() const { return kernels_.isa; }

  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override;
  // Q8_0 weights are repacked into groups of 8 rows when the kernels take them (AVX2); the copy
  // is owned by the backend. Everything else is returned as is.
  absl::StatusOr<Tensor> PrepareWeight(const Tensor& host) override;
  absl::StatusOr<Tensor> PrepareTable(const Tensor& host) override { return host; }
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyFromHost(void* dst, const void* src, size_t bytes) override;

  void Embed(float* out, const Tensor& table, const int32_t* ids, int n) override;
  void MatMul(float* out, const float* x, const Tensor& w, int n) override;
  void MatMuls(const MatMulTarget* targets, int count, const float* x, int n) override;
  void AddBias(float* x, const float* bias, int n, int dim) override;
  void Add(float* x, const float* y, int64_t count) override;
  void RmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps) override;
  void LayerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim,
                 float eps) override;
  void Rope(float* x, const int32_t* positions, int n, int n_heads, int head_dim,
            const RopeParams& p) override;
  void SwiGlu(float* out, const float* gate, const float* up, int64_t count) override;
  void Gelu(float* x, int64_t count) override;
  void StoreKv(const KvLayerView& kv, const float* k, const float* v, const int32_t* slots, int n) override;
  void Attention(float* out, const float* q, const KvLayerView& kv, const Batch& batch,
                 const AttentionShape& shape) override;
  void GatherRows(float* out, const float* x, const int32_t* rows, int n, int dim) override;

 private:
  // Grows every thread's scratch to `floats` (on the calling thread, before a ParallelFor; in
  // steady state the sizes are already there and nothing is allocated).
  void ReserveScratch(size_t floats);
  cpu::KernelScratch Scratch(int thread) { return {scratch_[thread].data(), scratch_[thread].size()}; }
  // host copied into a new weight buffer of `bytes` in `layout`, by repack(host, g0, g1, dst)
  // over `groups` row groups of `group_bytes` each, in parallel.
  absl::StatusOr<Tensor> Repacked(const Tensor& host, Layout layout, size_t bytes, int64_t groups,
                                  int64_t group_bytes, void (*repack)(const Tensor&, int64_t, int64_t, void*));
  // Quantizes x[n, cols] into q8_qs_/q8_d_/q8_abs_ (in parallel) and returns the view.
  cpu::Q8Rows QuantizeActivations(const float* x, int n, int64_t cols);

  const cpu::Kernels& kernels_;
  const bool q8_groups_;  // PrepareWeight repacks Q8_0 (kernels_.q8_groups and the option)
  const bool float_groups_;  // PrepareWeight repacks F32 and F16 (kernels_.float_groups and the option)
  ThreadPool pool_;
  std::vector<std::vector<float>> scratch_;  // [thread] kernel scratch
  std::vector<int8_t> q8_qs_;                // quantized activations of the current MatMul
  std::vector<float> q8_d_;
  std::vector<uint8_t> q8_abs_;
  std::vector<std::unique_ptr<Buffer>> weights_;  // repacked weights
  struct AttendRun {
    int32_t token;  // first token (batch row)
    int32_t n;      // consecutive tokens of seq from there
    const SeqStep* seq;
  };
  std::vector<AttendRun> attend_runs_;  // the current Attention's runs (kept: no allocation per step)
  float rope_base_ = 0.0f;              // Rope's base^(-2j / rot_dim) for this base, j < rot_dim / 2
  std::vector<double> rope_inv_freq_;
};

}  // namespace strata
