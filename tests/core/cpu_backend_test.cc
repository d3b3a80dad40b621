// Every CPU backend op against the naive double-precision reference in reference_ops.h, for every
// kernel set this CPU has (portable and AVX2) and several thread counts; plus the bit-exact
// batch- and thread-invariance the engine relies on.
#include "core/backend/cpu/cpu_backend.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <tuple>

#include "core/backend/cpu/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/core/reference_ops.h"

namespace strata {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// |a - b| <= atol + rtol * |b| for every element.
void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, float atol, float rtol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], atol + rtol * std::fabs(b[i])) << "at index " << i;
  }
}

// A weight of `rows` × `cols` random values in [-1, 1], stored as `t`.
struct Weight {
  std::vector<uint8_t> bytes;
  Tensor tensor;
};
Weight MakeWeight(DType t, int rows, int cols, uint32_t seed) {
  const std::vector<float> wf = Random(static_cast<size_t>(rows) * cols, seed);
  Weight w;
  w.bytes.resize(RowBytes(t, cols) * rows);
  for (int r = 0; r < rows; ++r) QuantizeRow(t, &wf[r * cols], w.bytes.data() + r * RowBytes(t, cols), cols);
  w.tensor = Tensor{t, rows, cols, w.bytes.data()};
  return w;
}

// Σ_k |x_k · w_k| for every output: scales the bound on f32 rounding error of a dot product.
std::vector<double> AbsDots(const float* x, const Tensor& w, int n) {
  std::vector<double> s(static_cast<size_t>(n) * w.rows);
  for (int64_t r = 0; r < w.rows; ++r) {
    const std::vector<float> wr = ref::WeightRow(w, r);
    for (int i = 0; i < n; ++i) {
      double a = 0;
      for (int64_t c = 0; c < w.cols; ++c) a += std::fabs(double(x[i * w.cols + c]) * wr[c]);
      s[i * w.rows + r] = a;
    }
  }
  return s;
}

bool BitEqual(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// Runs a kernel on row ranges that start and end inside row groups ([1, rows), [3, rows - 1), one
// row in the middle): each range's rows must equal `got` (the whole weight's [n][rows] outputs),
// and rows outside it must stay untouched. run(out, r0, r1) calls the kernel with ldo = rows.
void CheckRowRanges(int n, int rows, const std::vector<float>& got,
                    const std::function<void(float* out, int r0, int r1)>& run) {
  for (const auto& range : {std::pair<int, int>{1, rows}, {3, rows - 1}, {rows / 2, rows / 2 + 1}}) {
    if (range.first >= range.second) continue;
    std::vector<float> part(n * rows, -7.0f);
    run(part.data(), range.first, range.second);
    for (int i = 0; i < n; ++i) {
      for (int r = 0; r < rows; ++r) {
        const size_t at = static_cast<size_t>(i) * rows + r;
        if (r < range.first || r >= range.second) {
          ASSERT_EQ(part[at], -7.0f) << "row " << r << " outside [" << range.first << ", " << range.second << ")";
        } else {
          ASSERT_EQ(part[at], got[at]) << "row " << r << " of [" << range.first << ", " << range.second << ")";
        }
      }
    }
  }
}

// Parameters: thread count and kernel set.
using Param = std::tuple<int, cpu::Isa>;

class CpuBackendTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (!cpu::IsaSupported(std::get<1>(GetParam()))) {
      GTEST_SKIP() << "this CPU has no " << cpu::IsaName(std::get<1>(GetParam()))
                   << (std::get<1>(GetParam()) == cpu::Isa::kAvx2 ? " (AVX2, FMA, F16C)" : " (AVX-512 F/BW/VL, VNNI)");
    }
  }
  static CpuBackendOptions Options() {
    CpuBackendOptions o;
    o.n_threads = std::get<0>(GetParam());
    o.isa = std::get<1>(GetParam());
    return o;
  }
  CpuBackend backend_{Options()};
};

TEST_P(CpuBackendTest, UsesTheRequestedKernels) { EXPECT_EQ(backend_.isa(), std::get<1>(GetParam())); }

// F32, F16 and BF16 weights against the double reference on the same (exactly converted) weights,
// over shapes that hit every remainder: n below and above the blocked-kernel threshold and not a
// multiple of the 4-token tile, rows not a multiple of the 3/4-row tiles or the 12-row panel,
// columns not a multiple of 8 (stories260K's n_ff = 172) and across the 256-column k-block.
TEST_P(CpuBackendTest, MatMulFloatWeights) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int cols : {8, 13, 172, 300, 556}) {
      for (int rows : {1, 5, 67}) {
        for (int n : {1, 2, 3, 5, 17, 64}) {
          SCOPED_TRACE(DTypeName(static_cast<uint32_t>(t)) + " cols " + std::to_string(cols) + " rows " +
                       std::to_string(rows) + " n " + std::to_string(n));
          const Weight w = MakeWeight(t, rows, cols, 2 + cols);
          const std::vector<float> x = Random(static_cast<size_t>(n) * cols, 1 + n);
          std::vector<float> got(n * rows), want(n * rows);
          backend_.MatMul(got.data(), x.data(), w.tensor, n);
          ref::MatMul(want.data(), x.data(), w.tensor, n);
          // Only the f32 summation differs from the exact sum: each lane adds about cols/8 terms and
          // the final tree 3 more, so |error| <= (cols/8 + 4) · 2^-24 · Σ|x·w| (doubled for margin).
          const std::vector<double> abs = AbsDots(x.data(), w.tensor, n);
          for (size_t i = 0; i < got.size(); ++i) {
            const double bound = 2 * (cols / 8 + 4) * 0x1p-24 * abs[i] + 1e-30;
            ASSERT_NEAR(got[i], want[i], bound) << "at " << i;
          }
        }
      }
    }
  }
}

// Q8_0 weights with int8 activations. Against a reference that quantizes x the same way, only the
// float scaling and summation of exact integer (partial) block sums differ: one rounding of
// d_x·d_w, one per accumulation step and three in the final sum, so (blocks + 4) · 2^-24 relative
// to Σ_b |d_x d_w| Σ |q_x q_w| (doubled for margin). Against the f32 reference on the same weights, the
// activation rounding adds at most d_x/2 = max|x_block|/254 per element, times |w|.
TEST_P(CpuBackendTest, MatMulQ8) {
  for (int cols : {32, 96, 576, 6400}) {  // 6400: prefill splits it into k-blocks
    for (int rows : {1, 5, 67}) {
      for (int n : {1, 2, 3, 5, 17, 64}) {
        SCOPED_TRACE("cols " + std::to_string(cols) + " rows " + std::to_string(rows) + " n " +
                     std::to_string(n));
        const Weight w = MakeWeight(DType::kQ8_0, rows, cols, 3 + cols);
        const std::vector<float> x = Random(static_cast<size_t>(n) * cols, 4 + n, 3.0f);
        std::vector<float> got(n * rows), want_q(n * rows), want_f(n * rows);
        backend_.MatMul(got.data(), x.data(), w.tensor, n);
        const ref::Q8Act xq = ref::QuantizeQ8Act(x.data(), n, cols);
        ref::MatMulQ8Act(want_q.data(), xq, w.tensor, n);
        ref::MatMul(want_f.data(), x.data(), w.tensor, n);
        const int64_t nb = cols / kQ8Block;
        for (int i = 0; i < n; ++i) {
          for (int r = 0; r < rows; ++r) {
            const auto* wb = static_cast<const BlockQ8_0*>(w.tensor.row(r));
            double scaled = 0, quant = 0;
            for (int64_t b = 0; b < nb; ++b) {
              int64_t iabs = 0;
              double wabs = 0;
              for (int k = 0; k < kQ8Block; ++k) {
                iabs += std::abs(int64_t(xq.qs[(i * nb + b) * kQ8Block + k]) * wb[b].qs[k]);
                wabs += std::fabs(F16ToF32(wb[b].d) * wb[b].qs[k]);
              }
              scaled += std::fabs(double(xq.d[i * nb + b]) * F16ToF32(wb[b].d)) * double(iabs);
              quant += xq.d[i * nb + b] / 2 * wabs;
            }
            const size_t at = static_cast<size_t>(i) * rows + r;
            ASSERT_NEAR(got[at], want_q[at], 2 * (nb + 5) * 0x1p-24 * scaled + 1e-30) << "at " << at;
            ASSERT_NEAR(got[at], want_f[at], quant * 1.01 + 1e-5) << "at " << at;
          }
        }
      }
    }
  }
}

// Q8_0 weights as the engine loads them: PrepareWeight repacks them into groups of 8 rows where
// the kernels take that layout (AVX2), the last group padded (rows 3, 13, 67, 203); odd block
// counts (cols 32, 96) take the padded last block. Checked: the documented canonical order bit
// for bit on every row (a scalar loop: fma(float(Σ q_x·q_w), d_w·d_x, acc) per block),
// the MatMulQ8 bound against the reference on every row, the same bits for any n and thread count,
// and the same bits from the kernel for row ranges that cut groups.
TEST_P(CpuBackendTest, MatMulQ8Prepared) {
  CpuBackend one_thread(CpuBackendOptions{1, std::get<1>(GetParam())});
  const cpu::Kernels& k = cpu::GetKernels(std::get<1>(GetParam()));
  for (int cols : {32, 96, 576, 6400}) {
    for (int rows : {3, 8, 13, 67, 203}) {
      const Weight w = MakeWeight(DType::kQ8_0, rows, cols, 21 + cols + rows);
      absl::StatusOr<Tensor> prepared = backend_.PrepareWeight(w.tensor);
      ASSERT_TRUE(prepared.ok()) << prepared.status();
      ASSERT_EQ(prepared->layout, k.q8_groups ? Layout::kQ8_0Groups8 : Layout::kRows);
      const int64_t nb = cols / kQ8Block;
      for (int n : {1, 2, 3, 5, 17, 64}) {
        SCOPED_TRACE("cols " + std::to_string(cols) + " rows " + std::to_string(rows) + " n " + std::to_string(n));
        const std::vector<float> x = Random(static_cast<size_t>(n) * cols, 22 + n, 3.0f);
        std::vector<float> got(n * rows), got1(n * rows), want(n * rows), solo(rows);
        backend_.MatMul(got.data(), x.data(), *prepared, n);
        one_thread.MatMul(got1.data(), x.data(), *prepared, n);
        ASSERT_TRUE(BitEqual(got.data(), got1.data(), got.size())) << "thread count changed the result";
        const ref::Q8Act xq = ref::QuantizeQ8Act(x.data(), n, cols);
        ref::MatMulQ8Act(want.data(), xq, w.tensor, n);
        for (int i = 0; i < n; ++i) {
          backend_.MatMul(solo.data(), x.data() + static_cast<size_t>(i) * cols, *prepared, 1);
          ASSERT_TRUE(BitEqual(solo.data(), got.data() + static_cast<size_t>(i) * rows, rows)) << "token row " << i;
          for (int r = 0; r < rows; ++r) {
            const auto* wb = static_cast<const BlockQ8_0*>(w.tensor.row(r));
            float acc = 0.0f;
            double scaled = 0;
            for (int64_t b = 0; b < nb; ++b) {
              int32_t s = 0;
              int64_t sabs = 0;
              for (int q = 0; q < kQ8Block; ++q) {
                const int32_t p = int32_t(xq.qs[(i * nb + b) * kQ8Block + q]) * wb[b].qs[q];
                s += p;
                sabs += std::abs(p);
              }
              const float dd = F16ToF32(wb[b].d) * xq.d[i * nb + b];
              acc = std::fma(static_cast<float>(s), dd, acc);
              scaled += std::fabs(double(dd)) * double(sabs);
            }
            const size_t at = static_cast<size_t>(i) * rows + r;
            if (k.q8_groups) {
              ASSERT_EQ(got[at], acc) << "row " << r << " left the canonical order";
            }
            ASSERT_NEAR(got[at], want[at], 2 * (nb + 5) * 0x1p-24 * scaled + 1e-30) << "at " << at;
          }
        }
        // The kernel on row ranges that start and end inside groups.
        std::vector<int8_t> qs(static_cast<size_t>(n) * cols);
        std::vector<float> d(static_cast<size_t>(n) * nb);
        std::vector<uint8_t> abs(qs.size());
        const cpu::Q8Rows q8{qs.data(), d.data(), cols, abs.data()};
        k.quantize_q8(q8, x.data(), 0, n);
        std::vector<float> scratch(k.matmul_q8_scratch(n, *prepared) + 8);
        ASSERT_NO_FATAL_FAILURE(CheckRowRanges(n, rows, got, [&](float* out, int r0, int r1) {
          k.matmul_q8(out, rows, q8, n, *prepared, r0, r1, cpu::KernelScratch{scratch.data(), scratch.size()});
        }));
      }
    }
  }
}

// F32 and F16 weights as the engine loads them (repacked into k-major groups of 16 rows where the
// kernels take them): every output is one FMA chain over k in increasing k, bit for bit, for any
// n, thread count or row range (ranges that cut groups, padded last groups, column blocks).
TEST_P(CpuBackendTest, MatMulFloatPrepared) {
  CpuBackend one_thread(CpuBackendOptions{1, std::get<1>(GetParam())});
  const cpu::Kernels& k = cpu::GetKernels(std::get<1>(GetParam()));
  for (DType dtype : {DType::kF32, DType::kF16}) {
    for (int cols : {8, 37, 300, 600}) {
      for (int rows : {3, 16, 17, 50, 203}) {
        const Weight w = MakeWeight(dtype, rows, cols, 31 + cols + rows);
        absl::StatusOr<Tensor> prepared = backend_.PrepareWeight(w.tensor);
        ASSERT_TRUE(prepared.ok()) << prepared.status();
        ASSERT_EQ(prepared->layout, k.float_groups ? Layout::kFloatGroups16 : Layout::kRows);
        std::vector<float> wf(static_cast<size_t>(rows) * cols);
        for (int r = 0; r < rows; ++r) DequantizeRow(dtype, w.tensor.row(r), wf.data() + static_cast<size_t>(r) * cols, cols);
        for (int n : {1, 2, 3, 7, 8, 14, 17, 64}) {
          SCOPED_TRACE(std::string(DTypeName(static_cast<uint32_t>(dtype))) + " cols " + std::to_string(cols) +
                       " rows " + std::to_string(rows) + " n " + std::to_string(n));
          const std::vector<float> x = Random(static_cast<size_t>(n) * cols, 32 + n, 2.0f);
          std::vector<float> got(n * rows), got1(n * rows), solo(rows);
          backend_.MatMul(got.data(), x.data(), *prepared, n);
          one_thread.MatMul(got1.data(), x.data(), *prepared, n);
          ASSERT_TRUE(BitEqual(got.data(), got1.data(), got.size())) << "thread count changed the result";
          for (int i = 0; i < n; ++i) {
            backend_.MatMul(solo.data(), x.data() + static_cast<size_t>(i) * cols, *prepared, 1);
            ASSERT_TRUE(BitEqual(solo.data(), got.data() + static_cast<size_t>(i) * rows, rows)) << "token row " << i;
            for (int r = 0; r < rows; ++r) {
              float acc = 0.0f;
              double exact = 0, sabs = 0;
              for (int c = 0; c < cols; ++c) {
                const float a = x[static_cast<size_t>(i) * cols + c], b = wf[static_cast<size_t>(r) * cols + c];
                acc = std::fma(a, b, acc);
                exact += double(a) * b;
                sabs += std::fabs(double(a) * b);
              }
              const size_t at = static_cast<size_t>(i) * rows + r;
              if (k.float_groups) {
                ASSERT_EQ(got[at], acc) << "row " << r << " left the canonical order";
              }
              ASSERT_NEAR(got[at], exact, (cols + 2) * 0x1p-24 * sabs + 1e-30) << "at " << at;
            }
          }
          // The kernel on row ranges that start and end inside groups.
          std::vector<float> scratch(k.matmul_float_scratch(n, cols) + 8);
          ASSERT_NO_FATAL_FAILURE(CheckRowRanges(n, rows, got, [&](float* out, int r0, int r1) {
            k.matmul_float(out, rows, x.data(), cols, n, *prepared, r0, r1,
                           cpu::KernelScratch{scratch.data(), scratch.size()});
          }));
        }
      }
    }
  }
}

// The engine's batch invariance: a token row gives bit-identical outputs alone (n = 1), in a
// small batch and in a large one, at any position, for every dtype and any thread count.
TEST_P(CpuBackendTest, MatMulBatchInvariant) {
  CpuBackend one_thread(CpuBackendOptions{1, std::get<1>(GetParam())});
  // The last case is wide enough (200 blocks) that Q8_0 prefill splits the columns into k-blocks
  // and parks accumulators between them.
  struct Case {
    DType t;
    int cols;
  };
  for (const Case c : {Case{DType::kF32, 556}, Case{DType::kF16, 556}, Case{DType::kBF16, 556}, Case{DType::kQ8_0, 576},
                       Case{DType::kQ8_0, 6400}}) {
    const DType t = c.t;
    const int cols = c.cols, rows = 67;
    const Weight w = MakeWeight(t, rows, cols, 5);
    for (int n : {70, 9, 5, 2}) {
      SCOPED_TRACE(DTypeName(static_cast<uint32_t>(t)) + " cols " + std::to_string(cols) + " n " + std::to_string(n));
      const std::vector<float> x = Random(static_cast<size_t>(n) * cols, 6);
      std::vector<float> batch(n * rows), batch1(n * rows), solo(rows);
      backend_.MatMul(batch.data(), x.data(), w.tensor, n);
      one_thread.MatMul(batch1.data(), x.data(), w.tensor, n);
      ASSERT_TRUE(BitEqual(batch.data(), batch1.data(), batch.size())) << "thread count changed the result";
      for (int i = 0; i < n; ++i) {
        backend_.MatMul(solo.data(), x.data() + static_cast<size_t>(i) * cols, w.tensor, 1);
        ASSERT_TRUE(BitEqual(solo.data(), batch.data() + static_cast<size_t>(i) * rows, rows))
            << "token row " << i;
      }
    }
  }
}

// MatMuls (q/k/v, gate/up in one pass) gives each weight exactly what MatMul gives it: mixed
// dtypes (Q8_0 beside float weights, so x is quantized once and also used as f32), row counts
// that split into chunks unevenly, decode and prefill widths, more targets than one pass takes.
TEST_P(CpuBackendTest, MatMulsEqualSeparateMatMuls) {
  const int cols = 576;
  const Weight a = MakeWeight(DType::kQ8_0, 203, cols, 11), b = MakeWeight(DType::kF16, 29, cols, 12),
               c = MakeWeight(DType::kQ8_0, 7, cols, 13), d = MakeWeight(DType::kF32, 41, cols, 14),
               e = MakeWeight(DType::kBF16, 30, cols, 15);
  const std::vector<const Weight*> ws = {&a, &b, &c, &d, &e};
  for (int n : {1, 2, 9, 70}) {
    SCOPED_TRACE("n " + std::to_string(n));
    const std::vector<float> x = Random(static_cast<size_t>(n) * cols, 17);
    std::vector<std::vector<float>> together(ws.size()), apart(ws.size());
    std::vector<Backend::MatMulTarget> targets;
    for (size_t i = 0; i < ws.size(); ++i) {
      together[i].assign(static_cast<size_t>(n) * ws[i]->tensor.rows, -1.0f);
      apart[i].resize(together[i].size());
      targets.push_back({together[i].data(), &ws[i]->tensor});
      backend_.MatMul(apart[i].data(), x.data(), ws[i]->tensor, n);
    }
    backend_.MatMuls(targets.data(), static_cast<int>(targets.size()), x.data(), n);  // 5 > the 4 per pass
    for (size_t i = 0; i < ws.size(); ++i) {
      EXPECT_TRUE(BitEqual(together[i].data(), apart[i].data(), apart[i].size())) << "target " << i;
    }
  }
}

// The row split behind MatMuls: every row of every weight once, in order, each range starting on
// a 48-row unit of its weight; pieces shrink (or, for prefill, are all one unit) so the hand-out
// ends on small ones; the range count stays bounded for many threads and long weights.
TEST(CpuBackendSplitTest, SplitRowsCoversEveryRowOnceInShrinkingPieces) {
  using R = CpuBackend::RowRange;
  const std::vector<std::vector<int64_t>> cases = {
      {2048}, {2048, 256, 256}, {5632, 5632}, {32000}, {7}, {1, 0, 50, 97}, {0}, {203, 29, 7, 41}};
  for (const auto& rows : cases) {
    for (int threads : {1, 2, 3, 8, 64})
    for (int tokens : {1, 16, 512}) {
      SCOPED_TRACE(::testing::PrintToString(rows) + " threads " + std::to_string(threads) + " tokens " +
                   std::to_string(tokens));
      R out[CpuBackend::kMaxRowRanges];
      const int n = CpuBackend::SplitRows(rows.data(), static_cast<int>(rows.size()), threads, tokens, out);
      ASSERT_GE(n, 0);
      ASSERT_LE(n, CpuBackend::kMaxRowRanges);
      int t = 0;
      int64_t next = 0;  // the next row of weight t
      for (int i = 0; i < n; ++i) {
        while (t < static_cast<int>(rows.size()) && next == rows[t]) ++t, next = 0;
        ASSERT_LT(t, static_cast<int>(rows.size())) << "range " << i << " past the last weight";
        EXPECT_EQ(out[i].target, t) << "range " << i;
        EXPECT_EQ(out[i].r0, next) << "range " << i;
        EXPECT_GT(out[i].r1, out[i].r0) << "range " << i;
        EXPECT_EQ(out[i].r0 % 48, 0) << "range " << i;
        next = out[i].r1;
      }
      while (t < static_cast<int>(rows.size()) && next == rows[t]) ++t, next = 0;
      EXPECT_EQ(t, static_cast<int>(rows.size())) << "rows left over";
    }
  }
  // 2048 rows on 2 threads: prefill takes one-unit pieces; 16 tokens take a quarter of them first;
  // decode half; the last piece is a single unit.
  const int64_t rows = 2048;
  R out[CpuBackend::kMaxRowRanges];
  int n = CpuBackend::SplitRows(&rows, 1, 2, 512, out);
  EXPECT_EQ(n, 43);  // 42 units and the 32 rows left
  for (int i = 0; i < n; ++i) EXPECT_LE(out[i].r1 - out[i].r0, 48) << "range " << i;
  n = CpuBackend::SplitRows(&rows, 1, 2, 16, out);
  EXPECT_EQ(out[0].r1 - out[0].r0, 528);
  EXPECT_LE(out[n - 1].r1 - out[n - 1].r0, 48);
  EXPECT_LE(n, 24);
  n = CpuBackend::SplitRows(&rows, 1, 2, 1, out);
  EXPECT_EQ(out[0].r1 - out[0].r0, 1008);  // 21 units: half of 2048 rows to the nearest unit
  EXPECT_LE(out[n - 1].r1 - out[n - 1].r0, 48);
  EXPECT_LE(n, 12);
}

// Q8 activation quantization is the same bits in every kernel set (the reference spells it out).
TEST_P(CpuBackendTest, QuantizeQ8MatchesReference) {
  const int n = 3, cols = 96;
  std::vector<float> x = Random(n * cols, 7, 5.0f);
  for (int k = 0; k < 32; ++k) x[32 + k] = 0.0f;  // an all-zero block: d = 0
  // Block 2 with max|x| = 127, so d = 1 and ties are exact: 2.5 → 2, -3.5 → -4, 0.5 → 0.
  x[64] = 127.0f;
  x[65] = 2.5f;
  x[66] = -3.5f;
  x[67] = 0.5f;
  const cpu::Kernels& k = cpu::GetKernels(std::get<1>(GetParam()));
  std::vector<int8_t> qs(n * cols);
  std::vector<float> d(n * cols / kQ8Block);
  std::vector<uint8_t> abs(n * cols);
  k.quantize_q8(cpu::Q8Rows{qs.data(), d.data(), cols, abs.data()}, x.data(), 0, n);
  const ref::Q8Act want = ref::QuantizeQ8Act(x.data(), n, cols);
  EXPECT_EQ(qs, want.qs);
  EXPECT_EQ(d, want.d);
  for (int i = 0; i < n * cols; ++i) ASSERT_EQ(abs[i], std::abs(want.qs[i])) << i;
}

TEST_P(CpuBackendTest, Norms) {
  const int n = 3, dim = 80;
  const std::vector<float> x = Random(n * dim, 3, 4.0f), w = Random(dim, 4), b = Random(dim, 5);
  std::vector<float> got(n * dim), want(n * dim);
  backend_.RmsNorm(got.data(), x.data(), w.data(), n, dim, 1e-5f);
  ref::RmsNorm(want.data(), x.data(), w.data(), n, dim, 1e-5f);
  ExpectClose(got, want, 1e-5f, 1e-5f);
  backend_.LayerNorm(got.data(), x.data(), w.data(), b.data(), n, dim, 1e-5f);
  ref::LayerNorm(want.data(), x.data(), w.data(), b.data(), n, dim, 1e-5f);
  ExpectClose(got, want, 1e-5f, 1e-5f);
}

TEST_P(CpuBackendTest, RopeBothLayoutsAndScaling) {
  const int n = 4, heads = 3, hd = 16;
  const int32_t pos[n] = {0, 1, 17, 2047};
  for (bool neox : {false, true}) {
    for (int rot : {16, 8}) {
      std::vector<float> got = Random(n * heads * hd, 6), want = got;
      backend_.Rope(got.data(), pos, n, heads, hd, RopeParams{rot, 10000.0f, 0.5f, neox});
      ref::Rope(want.data(), pos, n, heads, hd, rot, 10000.0, 0.5, neox);
      ExpectClose(got, want, 2e-5f, 1e-5f);
    }
  }
}

TEST_P(CpuBackendTest, Activations) {
  const std::vector<float> g = Random(100, 7, 6.0f), u = Random(100, 8, 2.0f);
  std::vector<float> got(100), want(100);
  backend_.SwiGlu(got.data(), g.data(), u.data(), 100);
  for (int i = 0; i < 100; ++i) want[i] = static_cast<float>(ref::Silu(g[i]) * u[i]);
  ExpectClose(got, want, 1e-6f, 1e-5f);
  // Far tails of the vector exp: silu(-100) ≈ -4e-42 and silu(100) = 100.
  const float tails_g[3] = {-100.0f, 100.0f, -20.0f}, tails_u[3] = {1.0f, 1.0f, 1.0f};
  float tails[3];
  backend_.SwiGlu(tails, tails_g, tails_u, 3);
  EXPECT_NEAR(tails[0], 0.0f, 1e-30f);
  EXPECT_EQ(tails[1], 100.0f);
  EXPECT_NEAR(tails[2], ref::Silu(-20.0), 1e-5 * ref::Silu(-20.0) * -1);
  got = g;
  backend_.Gelu(got.data(), 100);
  for (int i = 0; i < 100; ++i) want[i] = static_cast<float>(ref::Gelu(g[i]));
  ExpectClose(got, want, 1e-6f, 1e-5f);
  got = g;
  backend_.Add(got.data(), u.data(), 100);
  for (int i = 0; i < 100; ++i) want[i] = g[i] + u[i];
  ExpectClose(got, want, 0, 0);
}

TEST_P(CpuBackendTest, EmbedAndGather) {
  const int vocab = 10, dim = 64;
  const std::vector<float> table = Random(vocab * dim, 9);
  std::vector<uint8_t> q8(RowBytes(DType::kQ8_0, dim) * vocab);
  for (int r = 0; r < vocab; ++r)
    QuantizeRow(DType::kQ8_0, &table[r * dim], &q8[r * RowBytes(DType::kQ8_0, dim)], dim);
  const int32_t ids[3] = {7, 0, 7};
  std::vector<float> got(3 * dim), want(3 * dim);
  backend_.Embed(got.data(), Tensor{DType::kQ8_0, vocab, dim, q8.data()}, ids, 3);
  for (int i = 0; i < 3; ++i) {
    std::vector<float> row = ref::WeightRow(Tensor{DType::kQ8_0, vocab, dim, q8.data()}, ids[i]);
    std::copy(row.begin(), row.end(), want.begin() + i * dim);
  }
  ExpectClose(got, want, 0, 0);
  const int32_t rows[2] = {2, 0};
  std::vector<float> g(2 * dim);
  backend_.GatherRows(g.data(), got.data(), rows, 2, dim);
  EXPECT_EQ(std::vector<float>(g.begin(), g.begin() + dim),
            std::vector<float>(got.begin() + 2 * dim, got.end()));
}

// Paged attention over three sequences with scattered blocks: one decoding at position 20, one
// prefilling a chunk of 5 starting at 3, one fresh prefill of 7. Checked against dense attention.
TEST_P(CpuBackendTest, PagedAttentionMixedBatch) {
  const int heads = 4, kv_heads = 2, hd = 8, kv_dim = kv_heads * hd, bs = 4, n_blocks = 32;
  std::vector<float> kc(n_blocks * bs * kv_dim), vc(n_blocks * bs * kv_dim);
  const KvLayerView kv{kc.data(), vc.data(), bs, kv_dim};
  // Full K/V history of each sequence, dense: [len, kv_dim].
  const int lens[3] = {21, 8, 7}, starts[3] = {20, 3, 0};
  const std::vector<std::vector<int32_t>> tables = {{9, 3, 30, 1, 17, 5}, {2, 11}, {31, 0}};
  std::vector<std::vector<float>> K, V;
  for (int s = 0; s < 3; ++s) {
    K.push_back(Random(lens[s] * kv_dim, 20 + s));
    V.push_back(Random(lens[s] * kv_dim, 30 + s));
  }
  // History before this step goes straight into the cache; this step's tokens via StoreKv.
  Batch batch;
  std::vector<float> k_new, v_new;
  std::vector<int32_t> dummy_ids;
  for (int s = 0; s < 3; ++s) {
    for (int p = 0; p < starts[s]; ++p) {
      const int slot = tables[s][p / bs] * bs + p % bs;
      std::copy_n(&K[s][p * kv_dim], kv_dim, &kc[slot * kv_dim]);
      std::copy_n(&V[s][p * kv_dim], kv_dim, &vc[slot * kv_dim]);
    }
    const int n = lens[s] - starts[s];
    dummy_ids.assign(n, 0);
    batch.AddSequence(dummy_ids.data(), n, starts[s], tables[s], bs, true);
    k_new.insert(k_new.end(), K[s].begin() + starts[s] * kv_dim, K[s].end());
    v_new.insert(v_new.end(), V[s].begin() + starts[s] * kv_dim, V[s].end());
  }
  const int T = batch.n_tokens();
  backend_.StoreKv(kv, k_new.data(), v_new.data(), batch.slots.data(), T);
  const std::vector<float> q = Random(T * heads * hd, 40);
  std::vector<float> got(T * heads * hd), want(T * heads * hd);
  backend_.Attention(got.data(), q.data(), kv, batch,
                     AttentionShape{heads, kv_heads, hd, 1.0f / std::sqrt(8.0f)});
  for (const SeqStep& step : batch.seqs) {
    const int s = static_cast<int>(&step - batch.seqs.data());
    for (int i = 0; i < step.n_tokens; ++i) {
      const int t = step.first_token + i;
      ref::AttentionOne(&want[t * heads * hd], &q[t * heads * hd], K[s], V[s], step.start_pos + i + 1, heads,
                        kv_heads, hd);
    }
  }
  ExpectClose(got, want, 1e-5f, 1e-4f);
}

// TinyLlama's attention shape (32 query heads over 4 KV heads, head_dim 64) on one sequence of 150
// tokens in scattered 16-slot blocks: each token's output is bit-identical whether the 150 come as
// one prefill step, as two (83 then 67: the second's runs of tokens start mid-context and cross
// the 16-slot blocks at other offsets than the first's, and it ends with an odd token), or one
// at a time as decode steps, and close to dense double attention.
TEST_P(CpuBackendTest, AttentionBatchInvariantGqa) {
  const int heads = 32, kv_heads = 4, hd = 64, kv_dim = kv_heads * hd, bs = 16, len = 150, split = 83;
  const std::vector<int32_t> table = {5, 0, 3, 11, 7, 1, 9, 2, 10, 4};
  std::vector<float> kc(12 * bs * kv_dim), vc(12 * bs * kv_dim);
  const KvLayerView kv{kc.data(), vc.data(), bs, kv_dim};
  const std::vector<float> K = Random(len * kv_dim, 50), V = Random(len * kv_dim, 51);
  const std::vector<float> q = Random(len * heads * hd, 52, 2.0f);
  const AttentionShape shape{heads, kv_heads, hd, 1.0f / 8.0f};
  std::vector<int32_t> ids(len, 0);
  Batch all;
  all.AddSequence(ids.data(), len, 0, table, bs, true);
  backend_.StoreKv(kv, K.data(), V.data(), all.slots.data(), len);
  std::vector<float> together(len * heads * hd), two(len * heads * hd), alone(heads * hd), want(heads * hd);
  backend_.Attention(together.data(), q.data(), kv, all, shape);
  Batch first, second;
  first.AddSequence(ids.data(), split, 0, table, bs, true);
  second.AddSequence(ids.data(), len - split, split, table, bs, true);
  backend_.Attention(two.data(), q.data(), kv, first, shape);
  backend_.Attention(two.data() + split * heads * hd, q.data() + split * heads * hd, kv, second, shape);
  for (int p = 0; p < len; ++p) {
    Batch one;
    one.AddSequence(ids.data(), 1, p, table, bs, true);
    backend_.Attention(alone.data(), q.data() + p * heads * hd, kv, one, shape);
    ASSERT_TRUE(BitEqual(alone.data(), together.data() + p * heads * hd, heads * hd)) << "position " << p;
    ASSERT_TRUE(BitEqual(alone.data(), two.data() + p * heads * hd, heads * hd)) << "position " << p;
    ref::AttentionOne(want.data(), q.data() + p * heads * hd, K, V, p + 1, heads, kv_heads, hd);
    ExpectClose(alone, want, 1e-5f, 1e-4f);
  }
}

// Groups of 8 query heads take the kernel whose lanes are the heads, with runs of two tokens
// sharing each K row (AVX-512: runs of four, two tokens' heads to a vector, the odd last token and
// every decode step by the AVX2 kernel, so decode-alone against prefill also checks the two
// instruction sets against each other). Head sizes 8, 24 and 40 reach every tail of its weighted sum (1, 3, 4 + 1
// vectors); two sequences whose block tables end exactly with their last position (8 and 12
// tokens in 4-slot blocks) and one that does not (7), prefilled together, match each token
// decoded alone bit for bit and dense double attention closely.
TEST_P(CpuBackendTest, AttentionGroupsOfEightAnyHeadSize) {
  const int heads = 16, kv_heads = 2, bs = 4;
  const int lens[3] = {8, 12, 7};
  const std::vector<std::vector<int32_t>> tables = {{6, 1}, {0, 7, 3}, {2, 5}};
  for (const int hd : {8, 24, 40}) {
    SCOPED_TRACE("head_dim " + std::to_string(hd));
    const int kv_dim = kv_heads * hd;
    std::vector<float> kc(8 * bs * kv_dim), vc(8 * bs * kv_dim);
    const KvLayerView kv{kc.data(), vc.data(), bs, kv_dim};
    const AttentionShape shape{heads, kv_heads, hd, 1.0f / std::sqrt(static_cast<float>(hd))};
    Batch all;
    std::vector<std::vector<float>> K, V;
    std::vector<int32_t> ids(12, 0);
    for (int s = 0; s < 3; ++s) {
      K.push_back(Random(lens[s] * kv_dim, 60 + s));
      V.push_back(Random(lens[s] * kv_dim, 70 + s));
      const int first = all.n_tokens();
      all.AddSequence(ids.data(), lens[s], 0, tables[s], bs, true);
      backend_.StoreKv(kv, K[s].data(), V[s].data(), all.slots.data() + first, lens[s]);
    }
    const int T = all.n_tokens();
    const std::vector<float> q = Random(T * heads * hd, 80, 2.0f);
    std::vector<float> together(T * heads * hd), alone(heads * hd), want(heads * hd);
    backend_.Attention(together.data(), q.data(), kv, all, shape);
    for (int s = 0, t = 0; s < 3; ++s) {
      for (int p = 0; p < lens[s]; ++p, ++t) {
        Batch one;
        one.AddSequence(ids.data(), 1, p, tables[s], bs, true);
        backend_.Attention(alone.data(), q.data() + t * heads * hd, kv, one, shape);
        ASSERT_TRUE(BitEqual(alone.data(), together.data() + t * heads * hd, heads * hd))
            << "sequence " << s << " position " << p;
        ref::AttentionOne(want.data(), q.data() + t * heads * hd, K[s], V[s], p + 1, heads, kv_heads, hd);
        ExpectClose(alone, want, 1e-5f, 1e-4f);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, CpuBackendTest,
                         ::testing::Combine(::testing::Values(1, 3),
                                            ::testing::Values(cpu::Isa::kPortable, cpu::Isa::kAvx2,
                                                              cpu::Isa::kAvx512)),
                         [](const ::testing::TestParamInfo<Param>& i) {
                           return std::string(cpu::IsaName(std::get<1>(i.param))) + "_threads" +
                                  std::to_string(std::get<0>(i.param));
                         });

// Every item handed out exactly once, job after job, including after the workers fell asleep.
TEST(ThreadPool, CoversEveryItemOnceAcrossSleeps) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  for (int job = 0; job < 200; ++job) {
    if (job % 50 == 49) {  // let the workers pass their spin window and sleep
      std::this_thread::sleep_for(std::chrono::nanoseconds(2 * ThreadPool::kSpinNs));
    }
    const int64_t n = 1 + job * 5 % 1000, grain = 1 + job % 7;
    for (auto& h : hits) h.store(0);
    pool.ParallelFor(n, grain, [&](int64_t b, int64_t e, int thread) {
      ASSERT_GE(thread, 0);
      ASSERT_LT(thread, 3);
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (int64_t i = 0; i < 1000; ++i)
      ASSERT_EQ(hits[i].load(), i < n ? 1 : 0) << "job " << job << " item " << i;
  }
}

}  // namespace
}  // namespace strata
