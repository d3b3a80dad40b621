#include "core/backend/cpu/cpu_backend.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/backend/cpu/float_groups.h"
#include "core/backend/cpu/q8_groups.h"
#include "core/util/status.h"

namespace strata {
namespace {

// Host memory, zero-filled. Large buffers (the KV cache above all) are anonymous mappings: the
// kernel hands out zero pages as they are first written, so a cache sized for many full-length
// sequences costs resident memory only for the blocks actually used.
class HostBuffer final : public Buffer {
 public:
  HostBuffer(void* p, size_t n, size_t mapped, void* base = nullptr)
      : p_(p), n_(n), mapped_(mapped), base_(base != nullptr ? base : p) {}
  ~HostBuffer() override {
    if (mapped_ > 0) munmap(base_, mapped_);
    else std::free(p_);
  }
  void* data() override { return p_; }
  size_t size() const override { return n_; }

 private:
  void* p_;
  size_t n_;
  size_t mapped_;  // bytes mapped with mmap, or 0 for heap memory
  void* base_;     // where the mapping starts (p_ may be aligned past it)
};

constexpr size_t kHugePage = size_t{2} << 20;

// A repacked weight: 2 MiB-aligned, with transparent huge pages asked for over the whole 2 MiB
// pages it fills (not its tail, which would cost up to 2 MiB of resident memory per weight). The
// decode kernels stream it from DRAM, and with 4 KiB pages the TLB misses held such reads ~25%
// below (bench/cpu_bench.cc: the same for the read-bandwidth array).
absl::StatusOr<std::unique_ptr<Buffer>> AllocateWeight(size_t bytes) {
  const size_t mapped = std::max<size_t>(bytes, 1) + kHugePage;
  void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes"));
  char* p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1));
  if (bytes >= kHugePage) madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // a hint
  return std::unique_ptr<Buffer>(new HostBuffer(p, bytes, mapped, base));
}

constexpr size_t kMapThreshold = 1 << 20;

// Items per chunk so that a chunk is worth a thread hand-off (~16K multiply-adds or more).
int64_t Grain(int64_t items, int64_t work_per_item, int threads) {
  const int64_t min_work = 1 << 14;
  int64_t g = std::max<int64_t>(1, min_work / std::max<int64_t>(1, work_per_item));
  return std::max<int64_t>(g, items / (4 * threads));
}

}  // namespace

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : kernels_(cpu::GetKernels(options.isa)),
      q8_groups_(kernels_.q8_groups && options.q8_groups),
      float_groups_(kernels_.float_groups && options.float_groups),
      pool_(options.n_threads),
      scratch_(pool_.size()) {}

absl::StatusOr<std::unique_ptr<Buffer>> CpuBackend::Allocate(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  if (rounded >= kMapThreshold) {
    void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes"));
    return std::unique_ptr<Buffer>(new HostBuffer(p, bytes, rounded));  // page-aligned, zero-filled
  }
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes"));
  std::memset(p, 0, rounded);
  return std::unique_ptr<Buffer>(new HostBuffer(p, bytes, 0));
}

absl::StatusOr<Tensor> CpuBackend::PrepareWeight(const Tensor& host) {
  if (host.layout != Layout::kRows) return host;
  if (float_groups_ && (host.dtype == DType::kF32 || host.dtype == DType::kF16)) {
    return Repacked(host, Layout::kFloatGroups16, cpu::FloatGroupsBytes(host.dtype, host.rows, host.cols),
                    cpu::FloatGroups(host.rows), cpu::FloatGroupBytes(host.dtype, host.cols), cpu::RepackFloatGroups);
  }
  if (q8_groups_ && host.dtype == DType::kQ8_0) {
    return Repacked(host, Layout::kQ8_0Groups8, cpu::Q8GroupsBytes(host.rows, host.cols), cpu::Q8Groups(host.rows),
                    cpu::Q8GroupBytes(host.cols), cpu::RepackQ8Groups);
  }
  return host;
}

absl::StatusOr<Tensor> CpuBackend::Repacked(const Tensor& host, Layout layout, size_t bytes, int64_t groups,
                                            int64_t group_bytes,
                                            void (*repack)(const Tensor&, int64_t, int64_t, void*)) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Buffer> buf, AllocateWeight(bytes));
  void* dst = buf->data();
  pool_.ParallelFor(groups, Grain(groups, group_bytes, pool_.size()),
                    [&](int64_t g0, int64_t g1, int) { repack(host, g0, g1, dst); });
  weights_.push_back(std::move(buf));
  return Tensor{host.dtype, host.rows, host.cols, dst, layout};
}

void CpuBackend::CopyToHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::CopyFromHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

void CpuBackend::ReserveScratch(size_t floats) {
  for (auto& s : scratch_) {
    if (s.size() < floats) s.resize(floats);
  }
}

int CpuBackend::SplitRows(const int64_t* rows, int count, int threads, int tokens, RowRange* out) {
  // 48: a multiple of every kernel's row tile and row group (8, 16), so only a weight's last
  // piece ends inside a group.
  constexpr int64_t kUnit = 48;
  // Each piece takes 1 / (share * threads) of the rows left: the pieces shrink geometrically
  // (~20 for 11264 rows on 2 threads with share 2), so the hand-out's tail is a few one-unit
  // pieces whatever the row count. Equal pieces cannot do that: 2048 rows in 8 pieces of 288 is
  // 7.1 pieces, and one thread runs 4 while the other runs 3.1 (11% of the op idle).
  // Decode (1-2 tokens) takes half as many, larger pieces: each piece restarts its weight streams
  // from DRAM, and whole-model decode at 2 threads read 5-6 points more of the bandwidth so
  // (medians of 9-12 reps, alternated: F32 88% against 83%, F16 74.5% against 68.5%).
  // Prefill (kEqualPiecesTokens tokens or more: bound by arithmetic, not memory) takes equal
  // one-unit pieces instead, each one chunk of the kernels' 3-group tiles: a piece's rows gain
  // nothing from running together then, and small pieces keep the hand-out even when the host
  // deschedules one of the threads (this VM's vCPUs lost up to a quarter of their time to steal
  // in some 5-second stretches, 2026-12-01): the other then takes all the pieces left instead of
  // waiting on a quarter of the rows.
  constexpr int kEqualPiecesTokens = 32;
  const bool equal = tokens >= kEqualPiecesTokens;
  const int64_t share = tokens <= 2 ? 1 : 2;
  int64_t total = 0;
  for (int t = 0; t < count; ++t) total += rows[t];
  const auto round_up = [](int64_t r) { return (r + kUnit - 1) / kUnit * kUnit; };
  // Many threads shrink the pieces slowly; a floor on their size keeps their number (plus the
  // count - 1 splits at weight boundaries) within kMaxRowRanges.
  const int64_t min_size = std::max(kUnit, round_up((total + kMaxRowRanges - count - 2) / (kMaxRowRanges - count - 1)));
  int n = 0, t = 0;
  int64_t left = total, r0 = 0;  // rows not yet in a piece; the next piece's first row in weight t
  while (t < count) {
    // To the nearest unit, not up: rounding up makes the first of 2 decode pieces over half.
    int64_t size = equal ? min_size : std::max(min_size, (left / (share * threads) + kUnit / 2) / kUnit * kUnit);
    while (size > 0 && t < count) {  // one range per weight the piece overlaps
      if (rows[t] == 0) {
        ++t;
        continue;
      }
      const int64_t r1 = std::min(rows[t], r0 + size);
      out[n++] = RowRange{t, r0, r1};
      left -= r1 - r0;
      // The part of the piece left for the next weight starts at its row 0, in whole units again.
      size = size - (r1 - r0) > 0 ? round_up(size - (r1 - r0)) : 0;
      r0 = r1;
      if (r0 == rows[t]) ++t, r0 = 0;
    }
  }
  return n;
}

void CpuBackend::Embed(float* out, const Tensor& table, const int32_t* ids, int n) {
  for (int i = 0; i < n; ++i) DequantizeRow(table.dtype, table.row(ids[i]), out + i * table.cols, table.cols);
}

void CpuBackend::MatMul(float* out, const float* x, const Tensor& w, int n) {
  const MatMulTarget t{out, &w};
  MatMuls(&t, 1, x, n);
}

cpu::Q8Rows CpuBackend::QuantizeActivations(const float* x, int n, int64_t cols) {
  const size_t values = static_cast<size_t>(n) * cols;
  if (q8_qs_.size() < values) {
    q8_qs_.resize(values);
    q8_d_.resize(values / kQ8Block);
    q8_abs_.resize(values);
  }
  const cpu::Q8Rows q{q8_qs_.data(), q8_d_.data(), cols, q8_abs_.data()};
  pool_.ParallelFor(n, Grain(n, cols, pool_.size()),
                    [&](int64_t i0, int64_t i1, int) { kernels_.quantize_q8(q, x, i0, i1); });
  return q;
}

void CpuBackend::MatMuls(const MatMulTarget* targets, int count, const float* x, int n) {
  constexpr int kMaxTargets = 4;
  if (count > kMaxTargets) {
    MatMuls(targets, kMaxTargets, x, n);
    MatMuls(targets + kMaxTargets, count - kMaxTargets, x, n);
    return;
  }
  if (count <= 0) return;
  const int64_t cols = targets[0].w->cols;
  bool any_q8 = false;
  size_t scratch = 0;
  for (int t = 0; t < count; ++t) {
    const Tensor& w = *targets[t].w;
    if (w.cols != cols) {  // not one x: no sharing (the models only group same-width weights)
      for (int u = 0; u < count; ++u) MatMuls(&targets[u], 1, x, n);
      return;
    }
    const bool q8 = w.dtype == DType::kQ8_0;
    any_q8 |= q8;
    scratch = std::max(scratch, q8 ? kernels_.matmul_q8_scratch(n, w) : kernels_.matmul_float_scratch(n, cols));
  }
  // Q8_0 weights take x quantized once, for all of them.
  const cpu::Q8Rows q = any_q8 ? QuantizeActivations(x, n, cols) : cpu::Q8Rows{};
  ReserveScratch(scratch);
  // Split over weight rows: every thread streams its own rows of each weight once and multiplies
  // them with all n token rows.
  int64_t rows[kMaxTargets];
  for (int t = 0; t < count; ++t) rows[t] = targets[t].w->rows;
  RowRange ranges[kMaxRowRanges];
  const int n_ranges = SplitRows(rows, count, pool_.size(), n, ranges);
  pool_.ParallelFor(n_ranges, 1, [&](int64_t c0, int64_t c1, int thread) {
    for (int64_t c = c0; c < c1; ++c) {
      const RowRange& r = ranges[c];
      const Tensor& w = *targets[r.target].w;
      // Pieces go out in order, one at a time: with equal speeds each thread's next is `threads`
      // pieces on. Where that is the same weight, the kernel may prefetch it.
      cpu::KernelScratch s = Scratch(thread);
      if (const int64_t nx = c + pool_.size(); nx < n_ranges && ranges[nx].target == r.target) {
        s.next_r0 = ranges[nx].r0;
        s.next_r1 = ranges[nx].r1;
      }
      if (w.dtype == DType::kQ8_0) {
        kernels_.matmul_q8(targets[r.target].out, w.rows, q, n, w, r.r0, r.r1, s);
      } else {
        kernels_.matmul_float(targets[r.target].out, w.rows, x, cols, n, w, r.r0, r.r1, s);
      }
    }
  });
}

void CpuBackend::AddBias(float* x, const float* bias, int n, int dim) {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) x[i * dim + j] += bias[j];
}

// Add and RmsNorm run on the pool once they are worth a hand-off (a prefill's 512 rows; one
// decode row stays on the caller): while the caller ran them alone the other threads waited,
// ~1 ms a layer at 512 tokens. Elementwise and per row, so no value depends on the split.
void CpuBackend::Add(float* x, const float* y, int64_t count) {
  pool_.ParallelFor(count, Grain(count, 4, pool_.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) x[i] += y[i];
  });
}

void CpuBackend::RmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps) {
  pool_.ParallelFor(n, Grain(n, 4 * static_cast<int64_t>(dim), pool_.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* xi = x + i * dim;
      float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
      for (int j = 0; j < dim; ++j) ss += xi[j] * xi[j];
      const float scale = 1.0f / std::sqrt(ss / dim + eps);
      for (int j = 0; j < dim; ++j) out[i * dim + j] = xi[j] * scale * w[j];
    }
  });
}

void CpuBackend::LayerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim,
                           float eps) {
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

void CpuBackend::Rope(float* x, const int32_t* positions, int n, int n_heads, int head_dim,
                      const RopeParams& p) {
  const int half = p.rot_dim / 2;
  // base^(-2j / rot_dim) per j, kept while the model's base and rot_dim stay (q and k of every
  // layer use the same): a pow per (token, j) was ~0.2% of a batched decode step.
  if (rope_base_ != p.base || static_cast<int>(rope_inv_freq_.size()) != half) {
    rope_base_ = p.base;
    rope_inv_freq_.resize(half);
    for (int j = 0; j < half; ++j) rope_inv_freq_[j] = std::pow(static_cast<double>(p.base), -2.0 * j / p.rot_dim);
  }
  pool_.ParallelFor(n, Grain(n, 64 * half, pool_.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const float pos = positions[i] * p.freq_scale;
      for (int j = 0; j < half; ++j) {
        // theta_j = pos * base^(-2j / rot_dim); computed in double so long contexts keep precision.
        const double theta = pos * rope_inv_freq_[j];
        const float c = static_cast<float>(std::cos(theta)), s = static_cast<float>(std::sin(theta));
        for (int h = 0; h < n_heads; ++h) {
          float* v = x + (i * n_heads + h) * head_dim;
          const int a = p.neox ? j : 2 * j, b = p.neox ? j + half : 2 * j + 1;
          const float x0 = v[a], x1 = v[b];
          v[a] = x0 * c - x1 * s;
          v[b] = x0 * s + x1 * c;
        }
      }
    }
  });
}

void CpuBackend::SwiGlu(float* out, const float* gate, const float* up, int64_t count) {
  // Chunks of whole 8-lane groups, so that a value's arithmetic never depends on the split.
  const int64_t groups = (count + 7) / 8;
  pool_.ParallelFor(groups, Grain(groups, 64, pool_.size()), [&](int64_t g0, int64_t g1, int) {
    const int64_t i0 = g0 * 8, i1 = std::min(count, g1 * 8);
    kernels_.swiglu(out + i0, gate + i0, up + i0, i1 - i0);
  });
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
    std::memcpy(kv.k + static_cast<int64_t>(slots[i]) * kv.kv_dim, k + i * kv.kv_dim,
                kv.kv_dim * sizeof(float));
    std::memcpy(kv.v + static_cast<int64_t>(slots[i]) * kv.kv_dim, v + i * kv.kv_dim,
                kv.kv_dim * sizeof(float));
  }
}

void CpuBackend::Attention(float* out, const float* q, const KvLayerView& kv, const Batch& batch,
                           const AttentionShape& shape) {
  const int hd = shape.head_dim;
  const int q_dim = shape.n_heads * hd;
  const int group = shape.n_heads / shape.n_kv_heads;
  // Runs of up to attend_run consecutive tokens of one sequence: the kernel shares each K row
  // between a run's tokens (a token's bits do not depend on its run).
  const int kAttendRun = kernels_.attend_run;
  attend_runs_.clear();
  int max_ctx = 0;
  for (const SeqStep& s : batch.seqs) {
    max_ctx = std::max(max_ctx, s.end_pos());
    for (int i = 0; i < s.n_tokens; i += kAttendRun)
      attend_runs_.push_back({s.first_token + i, std::min(kAttendRun, s.n_tokens - i), &s});
  }
  ReserveScratch(cpu::AttendScratch(kAttendRun, group, max_ctx, hd));
  // One task per (run, KV head): the group of query heads sharing that KV head reads each K/V
  // row once.
  const int64_t n_kv = shape.n_kv_heads;
  pool_.ParallelFor(static_cast<int64_t>(attend_runs_.size()) * n_kv, 1, [&](int64_t t0, int64_t t1, int thread) {
    float* att = scratch_[thread].data();
    for (int64_t task = t0; task < t1; ++task) {
      const AttendRun& run = attend_runs_[task / n_kv];
      const int kvh = static_cast<int>(task % n_kv);
      const int ctx0 = batch.positions[run.token] + 1;  // causal: positions 0..pos
      const int64_t head0 = static_cast<int64_t>(run.token) * q_dim + static_cast<int64_t>(kvh) * group * hd;
      kernels_.attend(out + head0, q + head0, q_dim, run.n, group, kv.k + kvh * hd, kv.v + kvh * hd, kv.kv_dim,
                      run.seq->block_table, kv.block_size, ctx0, hd, shape.scale, att);
    }
  });
}

void CpuBackend::GatherRows(float* out, const float* x, const int32_t* rows, int n, int dim) {
  for (int r = 0; r < n; ++r)
    std::memcpy(out + static_cast<int64_t>(r) * dim, x + static_cast<int64_t>(rows[r]) * dim,
                dim * sizeof(float));
}

}  // namespace strata
