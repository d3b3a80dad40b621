// Q8_0 weights repacked into groups of 8 rows (q8_groups.h) × Q8-quantized activations, AVX2.
//
// Canonical order of one output out[i, r] (r in a group): a float starts at +0; for each block b
// in increasing order it becomes fma(float(s), d_w[r,b] · d_x[i,b], acc), where s is the exact
// integer sum of the block's 32 products and the scale product is rounded to f32 once. Lane l of
// a vector is row l of the group, so the vector code is that scalar sequence for 8 rows at once;
// every tile, thread and n keeps it (the batch invariance of kernels.h).
//
// Per 4 columns of a block (one k4 step): one 32-byte load gives those columns of the 8 rows;
// each token broadcasts its 4 quants and their |x|; sign, maddubs and madd make 8 int32 sums of 4
// products (|x| · (w · sign x) = x · w byte by byte; |2·127·127| < 2^15, no saturation), added to
// the block's integer sums. Only at the end of a block: one conversion, one scale product and one
// FMA per 8 rows.
#if defined(__x86_64__)

#include <algorithm>

#include "core/backend/cpu/kernels_avx2.h"
#include "core/backend/cpu/q8_groups.h"

#pragma GCC target("avx2,fma,f16c")
#include "core/backend/cpu/simd_avx2.h"

namespace strata::cpu::avx2 {
namespace {

constexpr int kK4 = kQ8Block / 4;  // k4 steps per block
// Decode streams each group from memory with a software prefetch (non-temporal: the weights are
// read once per token) this far ahead. The hardware prefetcher brings the streams from DRAM; the
// software prefetch only has to beat the loads from L2, and a longer distance keeps more of the
// core's miss buffers busy with lines not needed yet. Measured interleaved call by call against
// the F32 kernel (`strata-kernel-bench --dtype f32,q8_0`, 2 threads): 1 KiB read 0.85, 0.91 and
// 0.82 of F32's bytes/s on 5632 × 2048, 2048 × 5632 and 32000 × 2048 (0.84, 0.88, 0.82 into L1
// with T0), against 0.79, 0.81 and 0.78 with 2 KiB (T0, the row layout's distance, used until
// 2026-11-30). Slower or no better: 544
// bytes, 768, 1.5 KiB, 4 KiB; to L2 only (T1) at 2, 4 or 8 KiB; no prefetch (0.70); 3 or 4
// far-apart groups per tile instead of 2; earlier also 9 lines at once every other block.
constexpr int64_t kPrefetchBytes = 1024;
// Prefill: a panel of groups (up to this many bytes) stays in L2 while every token passes over it.
constexpr int64_t kPanelBytes = 192 * 1024;
constexpr int kPrefetchPasses = 32;  // the next panel comes in over this panel's last token passes

// One k4 step: columns 4k..4k+3 of the block at `qb` for MT tokens × NG groups.
template <int MT, int NG>
__attribute__((always_inline)) inline void K4Step(__m256i (&isum)[MT][NG], const int8_t* qb, int64_t gstride,
                                                   const int8_t* xq, const uint8_t* xa, int64_t ldx, int k,
                                                   __m256i ones) {
  __m256i w[NG];
  for (int j = 0; j < NG; ++j)
    w[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + j * gstride + k * 4 * kQ8GroupRows));
  for (int i = 0; i < MT; ++i) {
    int32_t q4, a4;
    __builtin_memcpy(&q4, xq + i * ldx + 4 * k, 4);
    __builtin_memcpy(&a4, xa + i * ldx + 4 * k, 4);
    const __m256i q = _mm256_set1_epi32(q4), a = _mm256_set1_epi32(a4);
    for (int j = 0; j < NG; ++j) {
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w[j], q)), ones);
      isum[i][j] = _mm256_add_epi32(isum[i][j], p);
    }
  }
}

// MT tokens (i0..) × NG groups (g0 + j·gstride bytes) over all nb blocks; token i's 8 outputs of
// group j go to out[i·ldo + j·ostride ..+8), or only lanes [lane0, lane1) (a range that cuts a
// group). kPrefetch: the groups come from memory (decode), so each stream is prefetched ahead.
// kUnroll: the k4 loop unrolled 8 times (decode, where its overhead showed: 47 against 32 GB/s
// from cache) or twice (prefill: unrolled 8 times the 1 × 3 tile spilled, 30% slower).
// Lines to prefetch into L2 on the side of a tile (prefill: the next panel's), one per block.
struct SidePrefetch {
  const char* at = nullptr;
  int64_t lines = 0;
};

// side: lines prefetched on the side, one per block.
template <int MT, int NG, bool kPrefetch, int kUnroll = 2>
void Tile(float* out, int64_t ldo, const Q8Rows& x, int64_t i0, const int8_t* g0, int64_t gstride, int64_t nb,
          int64_t ostride, int lane0 = 0, int lane1 = kQ8GroupRows, SidePrefetch side = {}) {
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* const xq = x.row_qs(i0);
  const uint8_t* const xa = x.row_abs(i0);
  const float* const xd = x.row_d(i0);
  const int64_t ldx = x.cols, ldd = x.cols / kQ8Block;
  __m256 acc[MT][NG];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NG; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* const qb = g0 + Q8GroupQuantsAt(b);
    if (b < side.lines) _mm_prefetch(side.at + b * 64, _MM_HINT_T1);
    if (kPrefetch) {  // one line per 64 bytes read, spread over the blocks, kPrefetchBytes ahead
      for (int j = 0; j < NG; ++j) {
        const char* p = reinterpret_cast<const char*>(qb + j * gstride + kPrefetchBytes);
        for (int line = 0; line < kQ8GroupQuantBytes; line += 64) _mm_prefetch(p + line, _MM_HINT_NTA);
        if (b % 2 == 0) {
          _mm_prefetch(reinterpret_cast<const char*>(g0 + j * gstride + Q8GroupScalesAt(b) + kPrefetchBytes),
                       _MM_HINT_NTA);
        }
      }
    }
    __m256i isum[MT][NG];
    for (int i = 0; i < MT; ++i)
      for (int j = 0; j < NG; ++j) isum[i][j] = _mm256_setzero_si256();
    const int8_t* const xqb = xq + b * kQ8Block;
    const uint8_t* const xab = xa + b * kQ8Block;
    if constexpr (kUnroll == 8) {
#pragma GCC unroll 8
      for (int k = 0; k < kK4; ++k) K4Step<MT, NG>(isum, qb, gstride, xqb, xab, ldx, k, ones);
    } else {
#pragma GCC unroll 2
      for (int k = 0; k < kK4; ++k) K4Step<MT, NG>(isum, qb, gstride, xqb, xab, ldx, k, ones);
    }
    for (int j = 0; j < NG; ++j) {
      const __m256 dw = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(g0 + j * gstride + Q8GroupScalesAt(b))));
      for (int i = 0; i < MT; ++i) {
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]),
                                    _mm256_mul_ps(dw, _mm256_broadcast_ss(xd + i * ldd + b)), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MT; ++i) {
    for (int j = 0; j < NG; ++j) {
      float* o = out + i * ldo + j * ostride;
      if (lane0 == 0 && lane1 == kQ8GroupRows) {
        _mm256_storeu_ps(o, acc[i][j]);
      } else {
        alignas(32) float v[kQ8GroupRows];
        _mm256_store_ps(v, acc[i][j]);
        for (int l = lane0; l < lane1; ++l) o[l] = v[l];
      }
    }
  }
}

// Decode (n <= 2): whole groups [g0, g1) as two far-apart streams, one group of each per tile
// (two streams read faster than one here, as in the row layout), then a last odd group alone.
template <int MT>
void Decode(float* out, int64_t ldo, const Q8Rows& x, const int8_t* w, int64_t nb, int64_t gbytes, int64_t g0,
            int64_t g1) {
  const int64_t q = (g1 - g0) / 2;
  for (int64_t t = 0; t < q; ++t) {
    const int64_t g = g0 + t;
    Tile<MT, 2, true, 8>(out + g * kQ8GroupRows, ldo, x, 0, w + g * gbytes, q * gbytes, nb, q * kQ8GroupRows);
  }
  for (int64_t g = g0 + 2 * q; g < g1; ++g) Tile<MT, 1, true, 8>(out + g * kQ8GroupRows, ldo, x, 0, w + g * gbytes, 0, nb, 0);
}

// Prefill (n >= 3): panels of whole groups; each token passes over the panel in tiles of 3 groups
// (1 token × 3 groups: 3 loads and 2 broadcasts per 3·32 multiply-adds, and no spills; 2 tokens ×
// 2 groups spilled and measured slower).
void Prefill(float* out, int64_t ldo, const Q8Rows& x, int n, const int8_t* w, int64_t nb, int64_t gbytes,
             int64_t g0, int64_t g1) {
  const int64_t panel = std::max<int64_t>(3, kPanelBytes / gbytes);
  for (int64_t p = g0; p < g1; p += panel) {
    const int64_t pend = std::min(g1, p + panel);
    // The next panel comes from memory: its lines are prefetched into L2 during this panel's last
    // kPrefetchPasses token passes (earlier, with many tokens, the two panels and the tokens
    // streaming past crowd L2: slower), one line per block of a tile (a burst stalls on the miss
    // buffers), so that its first pass does not wait on DRAM: that wait is a pass's worth per
    // panel, ~5% of the time when n is 32, as in a batched decode step.
    const char* const pf = reinterpret_cast<const char*>(w + pend * gbytes);
    const int64_t lines = (std::min(g1, pend + panel) - pend) * gbytes / 64;
    const int pf_from = std::max(0, n - kPrefetchPasses);
    const int64_t tiles = (n - pf_from) * ((pend - p + 2) / 3), per_tile = std::min(nb, (lines + tiles - 1) / tiles);
    int64_t line = 0;
    auto share = [&](int i) {  // the next tile's lines
      const int64_t k = i < pf_from ? 0 : std::min(per_tile, lines - line);
      line += k;
      return SidePrefetch{pf + (line - k) * 64, k};
    };
    for (int i = 0; i < n; ++i) {
      int64_t g = p;
      for (; g + 3 <= pend; g += 3) {
        Tile<1, 3, false>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, w + g * gbytes, gbytes, nb, kQ8GroupRows, 0,
                          kQ8GroupRows, share(i));
      }
      if (pend - g == 2) {
        Tile<1, 2, false>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, w + g * gbytes, gbytes, nb, kQ8GroupRows, 0,
                          kQ8GroupRows, share(i));
      } else if (pend - g == 1) {
        Tile<1, 1, false>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, w + g * gbytes, 0, nb, 0, 0, kQ8GroupRows,
                          share(i));
      }
    }
  }
}

}  // namespace

void MatMulQ8Groups(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
                    KernelScratch) {
  const int64_t nb = w.cols / kQ8Block;
  const auto* base = static_cast<const int8_t*>(w.data);
  const int64_t gbytes = Q8GroupBytes(w.cols);
  // A range that starts or ends inside a group (the last group of a weight whose rows are not a
  // multiple of 8; chunks of other callers) computes that whole group and keeps its rows.
  int64_t g0 = r0 / kQ8GroupRows, g1 = (r1 + kQ8GroupRows - 1) / kQ8GroupRows;
  auto partial = [&](int64_t g) {
    const int lane0 = static_cast<int>(std::max(r0, g * kQ8GroupRows) - g * kQ8GroupRows);
    const int lane1 = static_cast<int>(std::min(r1, (g + 1) * kQ8GroupRows) - g * kQ8GroupRows);
    for (int i = 0; i < n; ++i)
      Tile<1, 1, false>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, base + g * gbytes, 0, nb, 0, lane0, lane1);
  };
  if (r0 % kQ8GroupRows != 0) partial(g0++);
  if (g1 > g0 && r1 % kQ8GroupRows != 0) partial(--g1);
  if (g1 <= g0) return;
  if (n == 1) {
    Decode<1>(out, ldo, x, base, nb, gbytes, g0, g1);
  } else if (n == 2) {
    Decode<2>(out, ldo, x, base, nb, gbytes, g0, g1);
  } else {
    Prefill(out, ldo, x, n, base, nb, gbytes, g0, g1);
  }
}

}  // namespace strata::cpu::avx2

#endif  // __x86_64__
