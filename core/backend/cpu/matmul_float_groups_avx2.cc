// out = x · wᵀ for F32 and F16 weights repacked into k-major groups of 16 rows (float_groups.h),
// with AVX2 + FMA (F16C converts halves).
//
// Canonical order of one output out[i, r]: acc = +0, then acc = fma(x[i, k], w[r, k], acc) for
// k = 0, 1, ..., cols - 1; out = acc. Every path below runs exactly that chain: a tile keeps 16
// outputs of a token in the lanes of two vectors, and between column blocks it parks them in
// `out` itself and reloads them, which is exact. So any n, tile, row range or thread gives the
// same bits, and a row gets the same bits in a tensor-parallel shard as in the whole weight.
//
// Two paths:
//   decode  (n <= 2): each thread's groups are read as a few far-apart streams (4 for one token, 2
//           for two: 8 FMA chains in flight either way), weights converted in registers.
//   blocked (n >= 3): per panel of kPanelGroups groups and kKBlock columns, every token tile of 6
//           tokens × 16 rows (12 accumulators, 2 weight loads and 6 broadcasts per 12 FMAs) runs
//           over it; F16 panels are first converted into an f32 buffer (96 KiB, in L2).
#if defined(__x86_64__)

#include <algorithm>
#include <cstdint>

#include "core/backend/cpu/float_groups.h"
#include "core/backend/cpu/kernels_avx2.h"

// The intrinsics first (they carry their own target attributes), then this file's code for the
// AVX2 target: GCC's pragma, or clang's equivalent (which ignores GCC's).
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif

namespace strata::cpu::avx2 {
namespace {

constexpr int kG = kFloatGroupRows;  // 16
constexpr int kTileTokens = 6;
constexpr int kPanelGroups = 6;   // 96 rows
constexpr int64_t kKBlock = 256;  // a panel block: 96 KiB of f32

// The 16 weights of one column of a group as two f32 vectors.
//
// kPrefetch: decode's software prefetch distance in bytes, per stream (0: none). F16 reads 2 KiB
// ahead: on an Intel Xeon (AVX-512, 2026-11-30), interleaved against a plain read, 5632 × 2048 at
// 2 threads read 0.95-0.99 of it against 0.77-0.91 with none (1 KiB: 0.90-0.98). F32, and both on
// the AMD Zen 3 machine of earlier sessions: no gain, so none.
struct F32G {
  using T = float;
  static constexpr int64_t kPrefetch = 0;
  static void Load(const float* p, __m256& a, __m256& b) {
    a = _mm256_loadu_ps(p);
    b = _mm256_loadu_ps(p + 8);
  }
};
struct F16G {
  using T = uint16_t;
  static constexpr int64_t kPrefetch = 2048;
  static void Load(const uint16_t* p, __m256& a, __m256& b) {
    a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  }
};

// Lanes [lo, hi) of 16 as masks for the two halves.
inline void LaneMasks(int lo, int hi, __m256i& m0, __m256i& m1) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i l = _mm256_set1_epi32(lo), h = _mm256_set1_epi32(hi);
  auto in = [&](__m256i i) {  // lo <= i < hi
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(l, i), _mm256_cmpgt_epi32(h, i));
  };
  m0 = in(idx);
  m1 = in(_mm256_add_epi32(idx, _mm256_set1_epi32(8)));
}

// MT tokens × one group over columns [0, kc) of w (16 values per column): resume the chains from
// out (or +0 when `first`), run them, store them back. Partial: only the lanes in m0/m1.
template <int MT, class L, bool kPartial>
void Tile(float* out, int64_t ldo, const float* x, int64_t ldx, const typename L::T* w, int64_t kc, bool first,
          __m256i m0, __m256i m1) {
  __m256 c[MT][2];
#pragma GCC unroll 6
  for (int i = 0; i < MT; ++i) {
    if (first) {
      c[i][0] = c[i][1] = _mm256_setzero_ps();
    } else if (kPartial) {
      c[i][0] = _mm256_maskload_ps(out + i * ldo, m0);
      c[i][1] = _mm256_maskload_ps(out + i * ldo + 8, m1);
    } else {
      c[i][0] = _mm256_loadu_ps(out + i * ldo);
      c[i][1] = _mm256_loadu_ps(out + i * ldo + 8);
    }
  }
  // Unrolled: one column is 12 FMAs against ~7 uops of loop and address work.
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 w0, w1;
    L::Load(w + k * kG, w0, w1);
#pragma GCC unroll 6
    for (int i = 0; i < MT; ++i) {
      const __m256 b = _mm256_broadcast_ss(x + i * ldx + k);
      c[i][0] = _mm256_fmadd_ps(b, w0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(b, w1, c[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MT; ++i) {
    if (kPartial) {
      _mm256_maskstore_ps(out + i * ldo, m0, c[i][0]);
      _mm256_maskstore_ps(out + i * ldo + 8, m1, c[i][1]);
    } else {
      _mm256_storeu_ps(out + i * ldo, c[i][0]);
      _mm256_storeu_ps(out + i * ldo + 8, c[i][1]);
    }
  }
}

using TileFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, bool, __m256i, __m256i);

template <bool kPartial>
TileFn F32TileFor(int mt) {
  switch (mt) {
    case 1:
      return Tile<1, F32G, kPartial>;
    case 2:
      return Tile<2, F32G, kPartial>;
    case 3:
      return Tile<3, F32G, kPartial>;
    case 4:
      return Tile<4, F32G, kPartial>;
    case 5:
      return Tile<5, F32G, kPartial>;
    default:
      return Tile<6, F32G, kPartial>;
  }
}

// Lanes of group g inside rows [r0, r1).
inline void GroupLanes(int64_t g, int64_t r0, int64_t r1, int& lo, int& hi) {
  lo = static_cast<int>(std::max<int64_t>(r0 - g * kG, 0));
  hi = static_cast<int>(std::min<int64_t>(r1 - g * kG, kG));
}

// ---- decode ----

// MT tokens × NS groups `stride` values apart (far-apart streams), whole groups, all columns.
template <int MT, int NS, class L>
void DecodeTile(float* out, int64_t ldo, const float* x, int64_t ldx, const typename L::T* w, int64_t stride,
                int64_t cols, int64_t out_stride) {
  __m256 c[MT][NS][2];
  for (int i = 0; i < MT; ++i)
    for (int s = 0; s < NS; ++s) c[i][s][0] = c[i][s][1] = _mm256_setzero_ps();
  constexpr int kColsPerLine = 64 / (kG * sizeof(typename L::T));
  for (int64_t k = 0; k < cols; ++k) {
    if (L::kPrefetch > 0 && k % kColsPerLine == 0) {
      for (int s = 0; s < NS; ++s)
        _mm_prefetch(reinterpret_cast<const char*>(w + s * stride + k * kG) + L::kPrefetch, _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int s = 0; s < NS; ++s) {
      __m256 w0, w1;
      L::Load(w + s * stride + k * kG, w0, w1);
#pragma GCC unroll 2
      for (int i = 0; i < MT; ++i) {
        const __m256 b = _mm256_broadcast_ss(x + i * ldx + k);
        c[i][s][0] = _mm256_fmadd_ps(b, w0, c[i][s][0]);
        c[i][s][1] = _mm256_fmadd_ps(b, w1, c[i][s][1]);
      }
    }
  }
  for (int i = 0; i < MT; ++i)
    for (int s = 0; s < NS; ++s) {
      _mm256_storeu_ps(out + i * ldo + s * out_stride, c[i][s][0]);
      _mm256_storeu_ps(out + i * ldo + s * out_stride + 8, c[i][s][1]);
    }
}

template <int MT, class L>
void Decode(float* out, int64_t ldo, const float* x, int64_t ldx, const typename L::T* w, int64_t cols, int64_t g0,
            int64_t g1) {
  constexpr int kStreams = MT == 1 ? 4 : 2;
  const int64_t gvals = cols * kG;
  const int64_t q = (g1 - g0) / kStreams;
  for (int64_t t = 0; t < q; ++t) {
    const int64_t g = g0 + t;
    DecodeTile<MT, kStreams, L>(out + g * kG, ldo, x, ldx, w + g * gvals, q * gvals, cols, q * kG);
  }
  // The few groups left over as one tile of adjacent groups (one stream each, as above).
  const int64_t g = g0 + kStreams * q;
  float* const o = out + g * kG;
  const typename L::T* const wg = w + g * gvals;
  static_assert(kStreams <= 4);
  switch (g1 - g) {
    case 1:
      DecodeTile<MT, 1, L>(o, ldo, x, ldx, wg, 0, cols, 0);
      break;
    case 2:
      DecodeTile<MT, 2, L>(o, ldo, x, ldx, wg, gvals, cols, kG);
      break;
    case 3:
      if constexpr (kStreams > 3) DecodeTile<MT, 3, L>(o, ldo, x, ldx, wg, gvals, cols, kG);
      break;
  }
}

// ---- blocked ----

template <class L>
void Blocked(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const typename L::T* w, int64_t cols,
             int64_t r0, int64_t r1, KernelScratch scratch) {
  const int64_t gvals = cols * kG;
  const int64_t g0 = r0 / kG, g1 = (r1 + kG - 1) / kG;
  float* buf = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data) + 31) & ~uintptr_t{31});
  for (int64_t p = g0; p < g1; p += kPanelGroups) {
    const int64_t pe = std::min(g1, p + kPanelGroups);
    for (int64_t k0 = 0; k0 < cols; k0 += kKBlock) {
      const int64_t kc = std::min(kKBlock, cols - k0);
      const bool first = k0 == 0;
      // The panel block as f32: read in place for F32, converted once into buf for F16.
      const float* panel;
      int64_t pstride;  // floats from one group's block to the next
      if constexpr (sizeof(typename L::T) == 4) {
        panel = reinterpret_cast<const float*>(w) + p * gvals + k0 * kG;
        pstride = gvals;
      } else {
        for (int64_t g = p; g < pe; ++g) {
          const typename L::T* src = w + g * gvals + k0 * kG;
          float* dst = buf + (g - p) * kKBlock * kG;
          for (int64_t k = 0; k < kc * kG; k += 8)
            _mm256_store_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k))));
        }
        panel = buf;
        pstride = kKBlock * kG;
      }
      // The block computed next (this panel's next columns, or the next panel's first) comes
      // from memory: its lines are prefetched into L2, a share per token tile, while this one
      // computes, so that its first tile (or F16's conversion) does not wait on DRAM.
      const bool last = k0 + kc == cols;
      const int64_t np = last ? pe : p, nk0 = last ? 0 : k0 + kKBlock;
      const int64_t ngroups = std::min(g1, np + (last ? kPanelGroups : pe - p)) - np;
      const int64_t row_bytes = std::min(kKBlock, cols - nk0) * kG * static_cast<int64_t>(sizeof(typename L::T));
      const int64_t lines_per_group = (row_bytes + 63) / 64, lines = ngroups * lines_per_group;
      const int64_t tiles = (n + kTileTokens - 1) / kTileTokens, per_tile = (lines + tiles - 1) / tiles;
      // The next line to prefetch: line `pl` of group `pg` (counters, not a division per line: one
      // costs more than the prefetch).
      int64_t line = 0, pg = np, pl = 0;
      for (int i = 0, mt = 0; i < n; i += mt) {
        for (const int64_t e = std::min(lines, line + per_tile); line < e; ++line) {
          _mm_prefetch(reinterpret_cast<const char*>(w + pg * gvals + nk0 * kG) + pl * 64, _MM_HINT_T1);
          if (++pl == lines_per_group) pl = 0, ++pg;
        }
        // The last 7 or 8 tokens as 4 + 3 or 4 + 4, not 6 + 1 or 6 + 2: a tile of fewer than 4
        // tokens has too few FMA chains to cover the latency (512 = 84 × 6 + 4 + 4).
        const int left = n - i;
        mt = left == 7 || left == 8 ? 4 : std::min(kTileTokens, left);
        const TileFn full = F32TileFor<false>(mt);
        for (int64_t g = p; g < pe; ++g) {
          int lo, hi;
          GroupLanes(g, r0, r1, lo, hi);
          float* o = out + i * ldo + g * kG;
          const float* wp = panel + (g - p) * pstride;
          if (lo == 0 && hi == kG) {
            if (mt == kTileTokens) {  // the common case, called directly so that it inlines
              Tile<kTileTokens, F32G, false>(o, ldo, x + i * ldx + k0, ldx, wp, kc, first, __m256i{}, __m256i{});
            } else {
              full(o, ldo, x + i * ldx + k0, ldx, wp, kc, first, __m256i{}, __m256i{});
            }
          } else {
            __m256i m0, m1;
            LaneMasks(lo, hi, m0, m1);
            F32TileFor<true>(mt)(o, ldo, x + i * ldx + k0, ldx, wp, kc, first, m0, m1);
          }
        }
      }
    }
  }
}

template <class L>
void Any(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0, int64_t r1,
         KernelScratch scratch) {
  const auto* wd = static_cast<const typename L::T*>(w.data);
  if (n >= 3) return Blocked<L>(out, ldo, x, ldx, n, wd, w.cols, r0, r1, scratch);
  // Decode: whole groups as streams; a group cut by the range (its first or last) alone, masked.
  int64_t g0 = r0 / kG, g1 = (r1 + kG - 1) / kG;
  auto partial = [&](int64_t g) {
    int lo, hi;
    GroupLanes(g, r0, r1, lo, hi);
    __m256i m0, m1;
    LaneMasks(lo, hi, m0, m1);
    const typename L::T* wg = wd + g * w.cols * kG;
    if (n == 1) {
      Tile<1, L, true>(out + g * kG, ldo, x, ldx, wg, w.cols, true, m0, m1);
    } else {
      Tile<2, L, true>(out + g * kG, ldo, x, ldx, wg, w.cols, true, m0, m1);
    }
  };
  if (r0 % kG != 0) partial(g0++);
  if (g1 > g0 && r1 % kG != 0) partial(--g1);
  if (g1 <= g0) return;
  if (n == 1) {
    Decode<1, L>(out, ldo, x, ldx, wd, w.cols, g0, g1);
  } else {
    Decode<2, L>(out, ldo, x, ldx, wd, w.cols, g0, g1);
  }
}

}  // namespace

size_t MatMulFloatGroupsScratch() { return 8 + kPanelGroups * kKBlock * kG; }

void MatMulFloatGroups(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                       int64_t r1, KernelScratch scratch) {
  if (w.dtype == DType::kF32) {
    Any<F32G>(out, ldo, x, ldx, n, w, r0, r1, scratch);
  } else {
    Any<F16G>(out, ldo, x, ldx, n, w, r0, r1, scratch);
  }
}

}  // namespace strata::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
