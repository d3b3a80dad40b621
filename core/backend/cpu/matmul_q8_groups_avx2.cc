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

// The intrinsics first (they carry their own target attributes), then this file's code for the
// AVX2 target: GCC's pragma, or clang's equivalent (which ignores GCC's).
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
#include "core/backend/cpu/simd_avx2.h"

namespace strata::cpu::avx2 {
namespace {

constexpr int kK4 = kQ8Block / 4;  // k4 steps per block
// Decode reads each thread's groups as this many far-apart streams (one token; two tokens: 2),
// with no software prefetch: the hardware prefetcher brings them from DRAM. Measured interleaved
// call by call against the F32 kernel (`strata-kernel-bench --dtype f32,q8_0 --threads 2`,
// 2026-11-30 19:40), on 5632 × 2048, 2048 × 5632 and 11264 × 2048: 0.98, 0.99 and 0.92 of F32's
// bytes/s, against 0.94, 0.94 and 0.82 with 2 streams and a prefetch 1 KiB ahead (the kernel
// before; 2 KiB before that: 0.79-0.81), 0.97, 0.96 and 0.93 with 3 streams; with 3 streams a
// prefetch 0.5, 1, 1.5 or 2 KiB ahead was slower than none (0.86-0.92 against 0.93-0.99): once
// the tile below made the arithmetic 1.34× faster (from cache), the prefetches' own issue slots
// and miss buffers cost more than they brought.
constexpr int kDecodeStreams = 4;
// Prefill: a panel of groups (up to this many bytes) stays in L2 while every token passes over it.
constexpr int64_t kPanelBytes = 192 * 1024;
constexpr int kPrefetchPasses = 32;  // the next panel comes in over this panel's last token passes

// The exact int32 sums of 4 products x·w per lane: |x| · (w · sign x), byte by byte.
__attribute__((always_inline)) inline __m256i Dot4(__m256i abs_x, __m256i x, __m256i w, __m256i ones) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(abs_x, _mm256_sign_epi8(w, x)), ones);
}

// One k4 step: columns 4k..4k+3 of the block at `qb` for MT tokens × NG groups, added to isum.
// kChain (decode): step 0 starts the sums, and each sum stays one chain of adds. The compiler may
// reassociate integer adds, and decode's tree over a block's 8 steps needs more registers than
// its MT · NG chains have spare (from cache, 2048 × 2048 on one core, interleaved: 45 GB/s with
// the chains, 38.5 without). Prefill's 1 × 3 tile is the other way round (25-35% slower with
// them), so it starts its sums at zero and keeps its trees.
template <int MT, int NG, bool kChain = false>
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
      const __m256i p = Dot4(a, q, w[j], ones);
      if (kChain) {
        isum[i][j] = k == 0 ? p : _mm256_add_epi32(isum[i][j], p);
        __asm__("" : "+x"(isum[i][j]));
      } else {
        isum[i][j] = _mm256_add_epi32(isum[i][j], p);
      }
    }
  }
}

// The end of a block: acc = fma(float(isum), d_w · d_x, acc) for MT tokens × NG groups, block
// scales of group j at sc + j·gstride, token i's activation scale at xd[i·ldd].
template <int MT, int NG>
__attribute__((always_inline)) inline void ScaleBlock(__m256 (&acc)[MT][NG], const __m256i (&isum)[MT][NG],
                                                      const int8_t* sc, int64_t gstride, const float* xd,
                                                      int64_t ldd) {
  for (int j = 0; j < NG; ++j) {
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + j * gstride)));
    for (int i = 0; i < MT; ++i) {
      acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_mul_ps(dw, _mm256_broadcast_ss(xd + i * ldd)),
                                  acc[i][j]);
    }
  }
}

// Prefill's tile: MT tokens (i0..) × NG groups (g0 + j·gstride bytes) over all nb blocks; token
// i's 8 outputs of group j go to out[i·ldo + j·ostride ..+8), or only lanes [lane0, lane1) (a
// range that cuts a group). The k4 loop is unrolled twice (8 times, the 1 × 3 tile spilled and
// ran 30% slower).
// Lines to prefetch into L2 on the side of a tile (prefill: the next panel's), one per block.
struct SidePrefetch {
  const char* at = nullptr;
  int64_t lines = 0;
};

// side: lines prefetched on the side, one per block.
template <int MT, int NG>
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
    __m256i isum[MT][NG];
    for (int i = 0; i < MT; ++i)
      for (int j = 0; j < NG; ++j) isum[i][j] = _mm256_setzero_si256();
    const int8_t* const xqb = xq + b * kQ8Block;
    const uint8_t* const xab = xa + b * kQ8Block;
#pragma GCC unroll 2
    for (int k = 0; k < kK4; ++k) K4Step<MT, NG>(isum, qb, gstride, xqb, xab, ldx, k, ones);
    ScaleBlock<MT, NG>(acc, isum, g0 + Q8GroupScalesAt(b), gstride, xd + b, ldd);
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

// One block of a decode tile: MT tokens × NG groups, the block's quants at q + j·gstride and its
// scales at sc + j·gstride; acc += its products (the canonical order above).
template <int MT, int NG>
__attribute__((always_inline)) inline void DecodeBlock(__m256 (&acc)[MT][NG], const int8_t* q, const int8_t* sc,
                                                       int64_t gstride, const int8_t* xq, const uint8_t* xa,
                                                       const float* xd, int64_t ldx, int64_t ldd, __m256i ones) {
  __m256i isum[MT][NG];
#pragma GCC unroll 8
  for (int k = 0; k < kK4; ++k) K4Step<MT, NG, true>(isum, q, gstride, xq, xa, ldx, k, ones);
  ScaleBlock<MT, NG>(acc, isum, sc, gstride, xd, ldd);
}

// Decode tile: MT tokens (1 or 2) × NG whole groups `gstride` bytes apart, all nb blocks. The
// group is walked by block pair (544 bytes: scales, then the two blocks' quants) with pointers
// that only advance, and kept out of line so that its registers are its own: inlined into the
// whole kernel, the generic Tile recomputed each block's address and spilled its sums.
template <int MT, int NG>
__attribute__((noinline)) void DecodeTile(float* out, int64_t ldo, const Q8Rows& x, const int8_t* g,
                                          int64_t gstride, int64_t nb, int64_t ostride) {
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* xq = x.row_qs(0);
  const uint8_t* xa = x.row_abs(0);
  const float* xd = x.row_d(0);
  const int64_t ldx = x.cols, ldd = x.cols / kQ8Block;
  __m256 acc[MT][NG];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NG; ++j) acc[i][j] = _mm256_setzero_ps();
  const int8_t* p = g;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2, p += kQ8GroupPairBytes, xq += 2 * kQ8Block, xa += 2 * kQ8Block, xd += 2) {
    const int8_t* q = p + 2 * kQ8GroupScaleBytes;
    DecodeBlock<MT, NG>(acc, q, p, gstride, xq, xa, xd, ldx, ldd, ones);
    DecodeBlock<MT, NG>(acc, q + kQ8GroupQuantBytes, p + kQ8GroupScaleBytes, gstride, xq + kQ8Block,
                        xa + kQ8Block, xd + 1, ldx, ldd, ones);
  }
  if (b < nb) DecodeBlock<MT, NG>(acc, p + 2 * kQ8GroupScaleBytes, p, gstride, xq, xa, xd, ldx, ldd, ones);
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NG; ++j) _mm256_storeu_ps(out + i * ldo + j * ostride, acc[i][j]);
}

// Decode (n <= 2): whole groups [g0, g1) as far-apart streams (kDecodeStreams for one token, 2 for
// two: 4 tokens × groups of sums in flight either way, and no spills), one group of each per tile;
// the few groups left over as one tile of adjacent groups.
template <int MT>
void Decode(float* out, int64_t ldo, const Q8Rows& x, const int8_t* w, int64_t nb, int64_t gbytes, int64_t g0,
            int64_t g1) {
  constexpr int kStreams = MT == 1 ? kDecodeStreams : 2;
  const int64_t q = (g1 - g0) / kStreams;
  for (int64_t t = 0; t < q; ++t) {
    const int64_t g = g0 + t;
    DecodeTile<MT, kStreams>(out + g * kQ8GroupRows, ldo, x, w + g * gbytes, q * gbytes, nb, q * kQ8GroupRows);
  }
  const int64_t g = g0 + kStreams * q;
  float* const o = out + g * kQ8GroupRows;
  const int8_t* const wg = w + g * gbytes;
  static_assert(kStreams <= 4);
  switch (g1 - g) {
    case 1:
      DecodeTile<MT, 1>(o, ldo, x, wg, 0, nb, 0);
      break;
    case 2:
      DecodeTile<MT, 2>(o, ldo, x, wg, gbytes, nb, kQ8GroupRows);
      break;
    case 3:
      if constexpr (kStreams > 3) DecodeTile<MT, 3>(o, ldo, x, wg, gbytes, nb, kQ8GroupRows);
      break;
  }
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
        Tile<1, 3>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, w + g * gbytes, gbytes, nb, kQ8GroupRows, 0,
                          kQ8GroupRows, share(i));
      }
      if (pend - g == 2) {
        Tile<1, 2>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, w + g * gbytes, gbytes, nb, kQ8GroupRows, 0,
                          kQ8GroupRows, share(i));
      } else if (pend - g == 1) {
        Tile<1, 1>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, w + g * gbytes, 0, nb, 0, 0, kQ8GroupRows,
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
      Tile<1, 1>(out + i * ldo + g * kQ8GroupRows, ldo, x, i, base + g * gbytes, 0, nb, 0, lane0, lane1);
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

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
