// Q8_0 weights in groups of 8 rows (q8_groups.h) × Q8-quantized activations with AVX-512 VNNI:
// one vpdpbusd adds the 4 products of a k4 step into each of a group's 8 int32 lanes, where AVX2
// needs sign, maddubs, madd and add. Half the instructions per weight byte: prefill gets faster,
// and decode keeps more loads in flight (it reads closer to the bandwidth than AVX2's).
//
// vpdpbusd multiplies unsigned bytes by signed ones. The weights' bytes are flipped to unsigned
// (w ^ 0x80 = w + 128) in registers, once per k4 step for all the tile's tokens, and each
// token's block sum starts at -128 · Σ q_x instead of 0 (BlockSums, once per call), so it ends as
// the exact Σ q_x · q_w (|Σ| < 2^31 by far). Only integers are reordered: the float scaling of a
// block is the AVX2 kernel's (fma(float(s), d_w · d_x, acc), blocks in increasing order), so both
// instruction sets give every output the same bits.
//
// Prefill (n >= 3): tiles of 4 tokens × 3 groups (12 sums and 12 float accumulators in the 32 ymm
// registers AVX-512 gives): per k4 step 3 weight loads and flips and 4 broadcasts feed 12
// vpdpbusd. A panel of groups stays in L2 while every token tile passes over it, as in AVX2's.
// Decode (n <= 2): far-apart streams of whole groups, one group of each per tile, as in AVX2's.
#if defined(__x86_64__)

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "core/backend/cpu/kernels_avx2.h"
#include "core/backend/cpu/kernels_avx512.h"
#include "core/backend/cpu/q8_groups.h"

// The intrinsics first (they carry their own target attributes), then this file's own code for
// the AVX-512 target: GCC's pragma, or clang's equivalent (the sanitizer build uses clang).
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
#endif

namespace strata::cpu::avx512 {
namespace {

constexpr int kK4 = kQ8Block / 4;
constexpr int kTileTokens = 4;
constexpr int kTileGroups = 3;
constexpr int64_t kPanelBytes = 192 * 1024;
constexpr int kPrefetchTiles = 8;  // the next panel comes in over this panel's last token tiles
// Decode reads each thread's groups as this many far-apart streams for one token (4 for two), with
// no software prefetch. Interleaved with a plain read, 5632 × 2048 on this Intel Xeon
// (2026-11-30): 2 threads 0.97-1.05 of the read (4 streams: 0.97; the AVX2 kernel: 0.86-0.96),
// 1 thread 0.95 (AVX2: 0.86); two tokens at 2 threads 0.92 (AVX2: 0.74).
constexpr int kDecodeStreams = 6;

struct SidePrefetch {
  const char* at = nullptr;
  int64_t lines = 0;
};

// One block for MT tokens × NG groups, prefill's tiles and decode's alike: the block's quants at
// q + j·gstride and its scales at sc + j·gstride; token i's quants at xq + i·ldx, its scale at
// xd[i·nb] and its bias at bi[i·nb]. acc += the block's products (the canonical order above).
template <int MT, int NG>
__attribute__((always_inline)) inline void Block(__m256 (&acc)[MT][NG], const int8_t* q, const int8_t* sc,
                                                 int64_t gstride, const int8_t* xq, const float* xd,
                                                 const int32_t* bi, int64_t ldx, int64_t nb, __m256i flip) {
  __m256i isum[MT][NG];
  for (int i = 0; i < MT; ++i) {
    const __m256i s0 = _mm256_set1_epi32(bi[i * nb]);
    for (int j = 0; j < NG; ++j) isum[i][j] = s0;
  }
#pragma GCC unroll 8
  for (int k = 0; k < kK4; ++k) {
    __m256i w[NG];
    for (int j = 0; j < NG; ++j) {
      w[j] = _mm256_xor_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j * gstride + k * 4 * kQ8GroupRows)), flip);
    }
    for (int i = 0; i < MT; ++i) {
      int32_t q4;
      __builtin_memcpy(&q4, xq + i * ldx + 4 * k, 4);
      const __m256i xb = _mm256_set1_epi32(q4);
      for (int j = 0; j < NG; ++j) isum[i][j] = _mm256_dpbusd_epi32(isum[i][j], w[j], xb);
    }
  }
  for (int j = 0; j < NG; ++j) {
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + j * gstride)));
    for (int i = 0; i < MT; ++i) {
      acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_mul_ps(dw, _mm256_broadcast_ss(xd + i * nb)),
                                  acc[i][j]);
    }
  }
}

// MT tokens (from i0) × NG groups (`gstride` bytes apart from g0) over all nb blocks; token i's 8
// outputs of group j go to out[i·ldo + j·8 ..), lanes m only. bias[i·nb + b] = -128 · Σ q_x of
// token i0 + i's block b.
template <int MT, int NG>
void Tile(float* out, int64_t ldo, const Q8Rows& x, int64_t i0, const int32_t* bias, const int8_t* g0,
          int64_t gstride, int64_t nb, __mmask8 m, SidePrefetch side) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const int8_t* const xq = x.row_qs(i0);
  const float* const xd = x.row_d(i0);
  const int32_t* const bi = bias + i0 * nb;
  const int64_t ldx = x.cols;
  __m256 acc[MT][NG];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NG; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* const qb = g0 + Q8GroupQuantsAt(b);
    if (b < side.lines) _mm_prefetch(side.at + b * 64, _MM_HINT_T1);
    Block<MT, NG>(acc, qb, g0 + Q8GroupScalesAt(b), gstride, xq + b * kQ8Block, xd + b, bi + b, ldx, nb, flip);
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NG; ++j) _mm256_mask_storeu_ps(out + i * ldo + j * kQ8GroupRows, m, acc[i][j]);
}

using TileFn = void (*)(float*, int64_t, const Q8Rows&, int64_t, const int32_t*, const int8_t*, int64_t, int64_t,
                        __mmask8, SidePrefetch);
template <int NG, int... MT>
constexpr auto TilesFor(std::integer_sequence<int, MT...>) {
  return std::array<TileFn, sizeof...(MT)>{Tile<MT + 1, NG>...};
}
// kTiles[ng - 1][mt - 1]
constexpr std::array<std::array<TileFn, kTileTokens>, kTileGroups> kTiles = {
    TilesFor<1>(std::make_integer_sequence<int, kTileTokens>()),
    TilesFor<2>(std::make_integer_sequence<int, kTileTokens>()),
    TilesFor<3>(std::make_integer_sequence<int, kTileTokens>())};

// bias[i·nb + b] = -128 · Σ_k q_x[i, 32b + k], for tokens [0, n).
void BlockSums(const Q8Rows& x, int n, int64_t nb, int32_t* bias) {
  const __m256i ones = _mm256_set1_epi8(1);
  for (int i = 0; i < n; ++i) {
    const int8_t* q = x.row_qs(i);
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * kQ8Block));
      const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, v);
      __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
      t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
      bias[i * nb + b] = -128 * _mm_cvtsi128_si32(t);
    }
  }
}

// Groups [g0, g1) for every token: panels of groups, each passed over by every token tile.
// m: the lanes to store (a single group cut by the range). [then0, then1): the groups this thread
// is expected to run next (the backend's hint), whose first panel the last one prefetches.
void Prefill(float* out, int64_t ldo, const Q8Rows& x, int n, const int32_t* bias, const int8_t* w, int64_t nb,
             int64_t gbytes, int64_t g0, int64_t g1, __mmask8 m, int64_t then0 = 0, int64_t then1 = 0) {
  const int64_t panel = std::max<int64_t>(kTileGroups, kPanelBytes / gbytes / kTileGroups * kTileGroups);
  const int64_t tiles_per_pass = (n + kTileTokens - 1) / kTileTokens;
  for (int64_t p = g0; p < g1; p += panel) {
    const int64_t pend = std::min(g1, p + panel);
    // The next panel's lines (or, after the last, the hinted next range's first) are prefetched
    // into L2 during this panel's last token tiles, one line per block of a tile, so that its
    // first tiles do not wait on DRAM.
    const bool last = pend == g1;
    const int64_t nx0 = last ? then0 : pend, nx1 = last ? std::min(then1, then0 + panel) : std::min(g1, pend + panel);
    const char* const pf = reinterpret_cast<const char*>(w + nx0 * gbytes);
    const int64_t lines = std::max<int64_t>(0, nx1 - nx0) * gbytes / 64;
    const int64_t pf_from = std::max<int64_t>(0, tiles_per_pass - kPrefetchTiles);
    const int64_t chunks = (pend - p + kTileGroups - 1) / kTileGroups;
    const int64_t per_tile = std::min(nb, (lines + (tiles_per_pass - pf_from) * chunks - 1) /
                                              std::max<int64_t>(1, (tiles_per_pass - pf_from) * chunks));
    int64_t line = 0;
    for (int64_t t = 0; t < tiles_per_pass; ++t) {
      const int i = static_cast<int>(t * kTileTokens);
      const int mt = std::min(kTileTokens, n - i);
      for (int64_t g = p; g < pend; g += kTileGroups) {
        const int ng = static_cast<int>(std::min<int64_t>(kTileGroups, pend - g));
        const int64_t k = t < pf_from ? 0 : std::min(per_tile, lines - line);
        kTiles[ng - 1][mt - 1](out + i * ldo + g * kQ8GroupRows, ldo, x, i, bias, w + g * gbytes, gbytes, nb, m,
                               SidePrefetch{pf + line * 64, k});
        line += k;
      }
    }
  }
}

// ---- decode ----

// MT tokens (1 or 2) × NG whole groups `gstride` bytes apart, all nb blocks, walked by block pair
// with pointers that only advance (as the AVX2 decode tile).
template <int MT, int NG>
__attribute__((noinline)) void DecodeTile(float* out, int64_t ldo, const Q8Rows& x, const int32_t* bias,
                                          const int8_t* g, int64_t gstride, int64_t nb, int64_t ostride) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const int8_t* xq = x.row_qs(0);
  const float* xd = x.row_d(0);
  const int32_t* bi = bias;
  const int64_t ldx = x.cols;
  __m256 acc[MT][NG];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NG; ++j) acc[i][j] = _mm256_setzero_ps();
  const int8_t* p = g;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2, p += kQ8GroupPairBytes, xq += 2 * kQ8Block, xd += 2, bi += 2) {
    const int8_t* q = p + 2 * kQ8GroupScaleBytes;
    Block<MT, NG>(acc, q, p, gstride, xq, xd, bi, ldx, nb, flip);
    Block<MT, NG>(acc, q + kQ8GroupQuantBytes, p + kQ8GroupScaleBytes, gstride, xq + kQ8Block, xd + 1, bi + 1,
                        ldx, nb, flip);
  }
  if (b < nb) Block<MT, NG>(acc, p + 2 * kQ8GroupScaleBytes, p, gstride, xq, xd, bi, ldx, nb, flip);
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NG; ++j) _mm256_storeu_ps(out + i * ldo + j * ostride, acc[i][j]);
}

// Whole groups [g0, g1) as kStreams far-apart streams, one group of each per tile; the few left
// over as one tile of adjacent groups.
template <int MT, int kStreams>
void Decode(float* out, int64_t ldo, const Q8Rows& x, const int32_t* bias, const int8_t* w, int64_t nb,
            int64_t gbytes, int64_t g0, int64_t g1) {
  const int64_t q = (g1 - g0) / kStreams;
  for (int64_t t = 0; t < q; ++t) {
    const int64_t g = g0 + t;
    DecodeTile<MT, kStreams>(out + g * kQ8GroupRows, ldo, x, bias, w + g * gbytes, q * gbytes, nb, q * kQ8GroupRows);
  }
  int64_t g = g0 + kStreams * q;
  for (; g + 4 <= g1; g += 4) DecodeTile<MT, 4>(out + g * kQ8GroupRows, ldo, x, bias, w + g * gbytes, gbytes, nb, kQ8GroupRows);
  switch (g1 - g) {
    case 1:
      DecodeTile<MT, 1>(out + g * kQ8GroupRows, ldo, x, bias, w + g * gbytes, 0, nb, 0);
      break;
    case 2:
      DecodeTile<MT, 2>(out + g * kQ8GroupRows, ldo, x, bias, w + g * gbytes, gbytes, nb, kQ8GroupRows);
      break;
    case 3:
      DecodeTile<MT, 3>(out + g * kQ8GroupRows, ldo, x, bias, w + g * gbytes, gbytes, nb, kQ8GroupRows);
      break;
  }
}

}  // namespace

size_t MatMulQ8Scratch(int n, const Tensor& w) {
  if (w.layout != Layout::kQ8_0Groups8) return avx2::MatMulQ8Scratch(n, w);
  return static_cast<size_t>(std::max(n, 1)) * (w.cols / kQ8Block);  // the block sums, int32
}

void MatMulQ8(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
              KernelScratch scratch) {
  if (w.layout != Layout::kQ8_0Groups8) return avx2::MatMulQ8(out, ldo, x, n, w, r0, r1, scratch);
  const int64_t nb = w.cols / kQ8Block;
  const auto* base = static_cast<const int8_t*>(w.data);
  const int64_t gbytes = Q8GroupBytes(w.cols);
  auto* bias = reinterpret_cast<int32_t*>(scratch.data);
  BlockSums(x, n, nb, bias);
  // A range that starts or ends inside a group computes that whole group and keeps its rows.
  int64_t g0 = r0 / kQ8GroupRows, g1 = (r1 + kQ8GroupRows - 1) / kQ8GroupRows;
  auto partial = [&](int64_t g) {
    const int lane0 = static_cast<int>(std::max(r0, g * kQ8GroupRows) - g * kQ8GroupRows);
    const int lane1 = static_cast<int>(std::min(r1, (g + 1) * kQ8GroupRows) - g * kQ8GroupRows);
    const auto m = static_cast<__mmask8>(((1u << lane1) - 1) & ~((1u << lane0) - 1));
    Prefill(out, ldo, x, n, bias, base, nb, gbytes, g, g + 1, m);
  };
  if (r0 % kQ8GroupRows != 0) partial(g0++);
  if (g1 > g0 && r1 % kQ8GroupRows != 0) partial(--g1);
  if (g1 <= g0) return;
  if (n == 1) return Decode<1, kDecodeStreams>(out, ldo, x, bias, base, nb, gbytes, g0, g1);
  if (n == 2) return Decode<2, 4>(out, ldo, x, bias, base, nb, gbytes, g0, g1);
  const int64_t then0 = scratch.next_r0 / kQ8GroupRows, then1 = (scratch.next_r1 + kQ8GroupRows - 1) / kQ8GroupRows;
  Prefill(out, ldo, x, n, bias, base, nb, gbytes, g0, g1, static_cast<__mmask8>(0xff), then0, then1);
}

}  // namespace strata::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
