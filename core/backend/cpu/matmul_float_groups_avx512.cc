// Prefill (n >= 3) of F32 and F16 weights in k-major groups of 16 rows (float_groups.h) with
// AVX-512: a group's 16 weights of one column are one zmm, so a token's 16 outputs are one
// accumulator. The canonical order is the AVX2 kernel's (matmul_float_groups_avx2.cc): each
// output one FMA chain over k in increasing k from +0, parked in `out` between column blocks. So
// both instruction sets give the same bits, and decode (n <= 2, bound by memory) stays AVX2's.
//
// Loop order: per chunk of kTileGroups adjacent groups and up to kKBlock columns (384 KiB of f32
// weights, in L2), every tile of kTileTokens tokens runs over it: 8 tokens × 3 groups = 24
// accumulators; per column 3 weight loads and 8 broadcasts feed 24 FMAs. Long column blocks
// because each block restarts the 24 chains (parks and reloads them, and drains the pipeline):
// 2048 × 2016 × 504 on one core ran at 160 GFLOP/s with 2048 columns, 150 with 1024, 139 with
// 256 and 133 with 128 (2026-11-30, against a 174 GFLOP/s AVX-512 FMA peak); 6 × 4 and 12 × 2
// tiles were slower. F16 blocks are first converted into an f32 buffer; the next block's lines
// are prefetched into L2 a share per tile.
#if defined(__x86_64__)

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "core/backend/cpu/float_groups.h"
#include "core/backend/cpu/kernels_avx2.h"
#include "core/backend/cpu/kernels_avx512.h"

// The intrinsics first (they carry their own target attributes), then this file's own code for
// the AVX-512 target: GCC's pragma, or clang's equivalent (the sanitizer build uses clang).
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

namespace strata::cpu::avx512 {
namespace {

constexpr int kG = kFloatGroupRows;  // 16: one zmm
constexpr int kTileTokens = 8;
constexpr int kTileGroups = 3;
constexpr int64_t kKBlock = 2048;

// MT tokens × NG groups (`ws` floats apart) over columns [0, kc): resume the chains from out (or
// +0 when `first`), run them, store them back; only the lanes in m (a group cut by the range).
template <int MT, int NG>
void Tile(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w, int64_t ws, int64_t kc, bool first,
          __mmask16 m) {
  __m512 c[MT][NG];
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < NG; ++j)
      c[i][j] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, out + i * ldo + j * kG);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m512 wv[NG];
#pragma GCC unroll 3
    for (int j = 0; j < NG; ++j) wv[j] = _mm512_loadu_ps(w + j * ws + k * kG);
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const __m512 b = _mm512_set1_ps(x[i * ldx + k]);
#pragma GCC unroll 3
      for (int j = 0; j < NG; ++j) c[i][j] = _mm512_fmadd_ps(b, wv[j], c[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < NG; ++j) _mm512_mask_storeu_ps(out + i * ldo + j * kG, m, c[i][j]);
}

using TileFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t, bool, __mmask16);

template <int NG, int... MT>
constexpr auto TilesFor(std::integer_sequence<int, MT...>) {
  return std::array<TileFn, sizeof...(MT)>{Tile<MT + 1, NG>...};
}
// kTiles[ng - 1][mt - 1]
constexpr std::array<std::array<TileFn, kTileTokens>, kTileGroups> kTiles = {
    TilesFor<1>(std::make_integer_sequence<int, kTileTokens>()),
    TilesFor<2>(std::make_integer_sequence<int, kTileTokens>()),
    TilesFor<3>(std::make_integer_sequence<int, kTileTokens>())};

// The 16 weights of one column, as f32 in place (F32) or converted (F16).
struct F32G {
  using T = float;
};
struct F16G {
  using T = uint16_t;
};

// Groups [g, g + ng) for every token, lanes m.
template <class L>
void Chunk(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const typename L::T* w, int64_t cols,
           int64_t g, int ng, __mmask16 m, float* buf) {
  const int64_t gvals = cols * kG;
  for (int64_t k0 = 0; k0 < cols; k0 += kKBlock) {
    const int64_t kc = std::min(kKBlock, cols - k0);
    const float* wp;
    int64_t ws;
    if constexpr (sizeof(typename L::T) == 4) {
      wp = w + g * gvals + k0 * kG;
      ws = gvals;
    } else {
      for (int j = 0; j < ng; ++j) {
        const uint16_t* src = w + (g + j) * gvals + k0 * kG;
        float* dst = buf + j * kKBlock * kG;
        for (int64_t k = 0; k < kc * kG; k += kG)
          _mm512_store_ps(dst + k,  // maskz: the plain form trips GCC 12's uninitialized warning
                          _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k))));
      }
      wp = buf;
      ws = kKBlock * kG;
    }
    // The next block (these groups' next columns) comes from memory: its lines are prefetched
    // into L2, a share per token tile, so that its first tile (or F16's conversion) does not wait.
    const int64_t nk0 = k0 + kKBlock;
    const int64_t lines_per_group =
        nk0 < cols ? (std::min(kKBlock, cols - nk0) * kG * static_cast<int64_t>(sizeof(typename L::T)) + 63) / 64 : 0;
    const int64_t lines = ng * lines_per_group;
    const int64_t per_tile = (lines + (n + kTileTokens - 1) / kTileTokens - 1) / ((n + kTileTokens - 1) / kTileTokens);
    int64_t line = 0, pg = 0, pl = 0;
    const TileFn full = kTiles[ng - 1][kTileTokens - 1];
    for (int i = 0; i < n; i += kTileTokens) {
      for (const int64_t e = std::min(lines, line + per_tile); line < e; ++line) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (g + pg) * gvals + nk0 * kG) + pl * 64, _MM_HINT_T1);
        if (++pl == lines_per_group) pl = 0, ++pg;
      }
      const int mt = std::min(kTileTokens, n - i);
      (mt == kTileTokens ? full : kTiles[ng - 1][mt - 1])(out + i * ldo + g * kG, ldo, x + i * ldx + k0, ldx, wp, ws,
                                                          kc, k0 == 0, m);
    }
  }
}


// Lanes of group g inside rows [r0, r1).
__mmask16 GroupMask(int64_t g, int64_t r0, int64_t r1) {
  const int lo = static_cast<int>(std::max<int64_t>(r0 - g * kG, 0));
  const int hi = static_cast<int>(std::min<int64_t>(r1 - g * kG, kG));
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

template <class L>
void Blocked(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0, int64_t r1,
             KernelScratch scratch) {
  const auto* wd = static_cast<const typename L::T*>(w.data);
  float* buf = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data) + 63) & ~uintptr_t{63});
  int64_t g0 = r0 / kG, g1 = (r1 + kG - 1) / kG;
  // A group cut by the range (its first or last) alone, masked.
  if (r0 % kG != 0) {
    Chunk<L>(out, ldo, x, ldx, n, wd, w.cols, g0, 1, GroupMask(g0, r0, r1), buf);
    ++g0;
  }
  if (g1 > g0 && r1 % kG != 0) {
    --g1;
    Chunk<L>(out, ldo, x, ldx, n, wd, w.cols, g1, 1, GroupMask(g1, r0, r1), buf);
  }
  for (int64_t g = g0; g < g1; g += kTileGroups) {
    Chunk<L>(out, ldo, x, ldx, n, wd, w.cols, g, static_cast<int>(std::min<int64_t>(kTileGroups, g1 - g)),
             static_cast<__mmask16>(0xffff), buf);
  }
}

}  // namespace

size_t MatMulFloatScratch(int n, int64_t cols) {
  return std::max<size_t>(avx2::MatMulFloatScratch(n, cols), 16 + kTileGroups * kKBlock * kG);
}

void MatMulFloat(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                 int64_t r1, KernelScratch scratch) {
  if (w.layout != Layout::kFloatGroups16 || n < 3) return avx2::MatMulFloat(out, ldo, x, ldx, n, w, r0, r1, scratch);
  if (w.dtype == DType::kF32) {
    Blocked<F32G>(out, ldo, x, ldx, n, w, r0, r1, scratch);
  } else {
    Blocked<F16G>(out, ldo, x, ldx, n, w, r0, r1, scratch);
  }
}

}  // namespace strata::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
