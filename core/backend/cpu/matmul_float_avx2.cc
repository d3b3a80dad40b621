// out = x · wᵀ for F32, F16 and BF16 weights with AVX2 + FMA (F16C converts halves).
//
// Canonical order of one output out[i, r] (every path below follows it exactly):
//   lane l (0..7) of one 8-float accumulator starts at +0 and takes fma(x[k], w[k], acc) for
//   k = l, l+8, l+16, ... in increasing k; the last cols % 8 columns come as one more step with
//   both operands zero-padded; then Hsum() reduces the 8 lanes in a fixed tree.
// Tiles only decide which accumulators share register loads; k-blocking only parks accumulators in
// memory between blocks (exactly, all 8 lanes). So any n, tile or thread gives the same bits.
//
// Two paths:
//   direct  (n < kBlockedMinTokens, i.e. decode): weight rows stream straight from the mapped file,
//           converted to f32 in registers; memory-bound, so the tile only needs to keep a few
//           FMA chains in flight.
//   blocked (prefill): a panel of kPanelRows weight rows × kKBlock columns is converted once into
//           a contiguous f32 buffer that stays in L1, and every token tile of the call runs over
//           it (4 tokens × 3 rows = 12 accumulators: 12 FMAs per 7 loads); the 8-lane partial sums
//           of all n × kPanelRows outputs wait in scratch between k-blocks. Each weight byte is
//           read from memory once per call.
#if defined(__x86_64__)

#include <algorithm>
#include <cstring>

#include "core/backend/cpu/kernels_avx2.h"

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

// Measured on Zen 3 (docs/cpu-backend.md): a 96-row panel (96 KiB packed, in L2) beat 12-48 rows,
// 256 columns per k-block beat 128-1024, and blocking the tokens too only lost.
constexpr int kStreams = 4;  // decode: far-apart row streams per thread (2 and adjacent rows were slower)
constexpr int kBlockedMinTokens = 8;
constexpr int kTileTokens = 4;
constexpr int kTileRows = 3;
constexpr int kPanelRows = 32 * kTileRows;
constexpr int64_t kKBlock = 256;  // multiple of 8, so blocks never move a column to another lane

// Weight loaders: 8 consecutive weights as f32, and the first n of them zero-padded.
struct F32W {
  using T = float;
  static __m256 Load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256 LoadN(const float* p, int n) { return _mm256_maskload_ps(p, TailMask(n)); }
};
struct F16W {
  using T = uint16_t;
  static __m256 Load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static __m256 LoadN(const uint16_t* p, int n) {
    alignas(16) uint16_t tmp[8] = {};
    std::memcpy(tmp, p, n * sizeof(uint16_t));
    return Load(tmp);
  }
};
struct BF16W {
  using T = uint16_t;
  static __m256 Load(const uint16_t* p) {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
  static __m256 LoadN(const uint16_t* p, int n) {
    alignas(16) uint16_t tmp[8] = {};
    std::memcpy(tmp, p, n * sizeof(uint16_t));
    return Load(tmp);
  }
};

// acc[i][j] += x_i · w_j over kfull columns (a multiple of 8), then `tail` (< 8) zero-padded ones.
template <int MT, int NT, class L>
inline void Accumulate(__m256 (&acc)[MT][NT], const float* x, int64_t ldx, const typename L::T* w,
                       int64_t ldw, int64_t kfull, int tail) {
  for (int64_t k = 0; k < kfull; k += 8) {
    __m256 wv[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) wv[j] = L::Load(w + j * ldw + k);
#pragma GCC unroll 4
    for (int i = 0; i < MT; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (tail != 0) {
    const __m256i mask = TailMask(tail);
    __m256 wv[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) wv[j] = L::LoadN(w + j * ldw + kfull, tail);
#pragma GCC unroll 4
    for (int i = 0; i < MT; ++i) {
      const __m256 xv = _mm256_maskload_ps(x + i * ldx + kfull, mask);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
}

// ---- direct path ----

template <int MT, int NT, class L>
void DirectTile(float* out, int64_t ldo, const float* x, int64_t ldx, const typename L::T* w, int64_t ldw,
                int64_t cols, int64_t o_stride) {
  __m256 acc[MT][NT];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
  Accumulate<MT, NT, L>(acc, x, ldx, w, ldw, cols & ~int64_t{7}, static_cast<int>(cols & 7));
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) out[i * ldo + j * o_stride] = Hsum(acc[i][j]);
}

template <class L>
using DirectFn = void (*)(float*, int64_t, const float*, int64_t, const typename L::T*, int64_t, int64_t,
                          int64_t);

// Tiles of up to 2 tokens × 4 rows or 4 tokens × 3 rows (<= 16 vector registers in use).
template <class L, int MT>
constexpr DirectFn<L> DirectFor(int nt) {
  switch (nt) {
    case 1:
      return DirectTile<MT, 1, L>;
    case 2:
      return DirectTile<MT, 2, L>;
    case 3:
      return DirectTile<MT, 3, L>;
    default:
      return DirectTile<MT, (MT <= 2 ? 4 : 3), L>;
  }
}

template <class L>
void MatMulDirect(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                  int64_t r1) {
  const auto* wd = static_cast<const typename L::T*>(w.data);
  if (n <= 2) {
    // The range is read as kStreams far-apart sequential streams, one row of each per tile, which
    // this memory system serves faster than adjacent rows; leftover rows go one at a time.
    const int64_t q = (r1 - r0) / kStreams;
    const DirectFn<L> spread = n == 1 ? DirectTile<1, kStreams, L> : DirectTile<2, kStreams, L>;
    const DirectFn<L> single = n == 1 ? DirectTile<1, 1, L> : DirectTile<2, 1, L>;
    for (int64_t t = 0; t < q; ++t) {
      spread(out + r0 + t, ldo, x, ldx, wd + (r0 + t) * w.cols, q * w.cols, w.cols, q);
    }
    for (int64_t r = r0 + kStreams * q; r < r1; ++r)
      single(out + r, ldo, x, ldx, wd + r * w.cols, w.cols, w.cols, 1);
    return;
  }
  const int rows_per_tile = 3;
  for (int64_t r = r0; r < r1; r += rows_per_tile) {
    const int nt = static_cast<int>(std::min<int64_t>(rows_per_tile, r1 - r));
    for (int i = 0; i < n; i += kTileTokens) {
      const int mt = std::min(kTileTokens, n - i);
      DirectFn<L> fn;
      switch (mt) {
        case 1:
          fn = DirectFor<L, 1>(nt);
          break;
        case 2:
          fn = DirectFor<L, 2>(nt);
          break;
        case 3:
          fn = DirectFor<L, 3>(nt);
          break;
        default:
          fn = DirectFor<L, 4>(nt);
          break;
      }
      fn(out + i * ldo + r, ldo, x + i * ldx, ldx, wd + r * w.cols, w.cols, w.cols, 1);
    }
  }
}

// ---- blocked path ----

// Converts rows [r, r + nr) × columns [k0, k0 + kc) of w into wp[nr][kKBlock] f32, zero-padded to
// a multiple of 8 columns.
template <class L>
void PackPanel(float* wp, const typename L::T* w, int64_t cols, int64_t r, int nr, int64_t k0, int64_t kc) {
  for (int j = 0; j < nr; ++j) {
    const typename L::T* src = w + (r + j) * cols + k0;
    float* dst = wp + j * kKBlock;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) _mm256_storeu_ps(dst + k, L::Load(src + k));
    if (k < kc) _mm256_storeu_ps(dst + k, L::LoadN(src + k, static_cast<int>(kc - k)));
  }
}

// One tile for one k-block: resume the accumulators from `state` (or +0 on the first block), run
// the block, then park them again (or reduce them into `out` on the last block).
template <int MT, int NT>
void BlockedTile(float* state, const float* x, int64_t ldx, const float* wp, int64_t kfull, int tail,
                 bool first, bool last, float* out, int64_t ldo) {
  __m256 acc[MT][NT];
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NT; ++j)
      acc[i][j] = first ? _mm256_setzero_ps() : _mm256_load_ps(state + (i * kPanelRows + j) * 8);
  Accumulate<MT, NT, F32W>(acc, x, ldx, wp, kKBlock, kfull, tail);
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NT; ++j) {
      if (last) {
        out[i * ldo + j] = Hsum(acc[i][j]);
      } else {
        _mm256_store_ps(state + (i * kPanelRows + j) * 8, acc[i][j]);
      }
    }
}

using BlockedFn = void (*)(float*, const float*, int64_t, const float*, int64_t, int, bool, bool, float*,
                           int64_t);

template <int MT>
constexpr BlockedFn BlockedFor(int nt) {
  return nt == 1 ? BlockedTile<MT, 1> : nt == 2 ? BlockedTile<MT, 2> : BlockedTile<MT, 3>;
}

BlockedFn BlockedForTile(int mt, int nt) {
  switch (mt) {
    case 1:
      return BlockedFor<1>(nt);
    case 2:
      return BlockedFor<2>(nt);
    case 3:
      return BlockedFor<3>(nt);
    default:
      return BlockedFor<4>(nt);
  }
}

float* Align32(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 31) & ~uintptr_t{31});
}

template <class L>
void MatMulBlocked(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                   int64_t r1, KernelScratch scratch) {
  const auto* wd = static_cast<const typename L::T*>(w.data);
  const int64_t cols = w.cols;
  float* wp = Align32(scratch.data);                     // [kPanelRows][kKBlock] packed weights
  float* state = wp + kPanelRows * kKBlock;              // [n][kPanelRows][8] parked accumulators
  constexpr int64_t kLine = 64 / sizeof(typename L::T);  // weights per cache line
  for (int64_t p = r0; p < r1; p += kPanelRows) {
    const int np = static_cast<int>(std::min<int64_t>(kPanelRows, r1 - p));
    for (int64_t k0 = 0; k0 < cols; k0 += kKBlock) {
      const int64_t kc = std::min(kKBlock, cols - k0);
      const int64_t kfull = kc & ~int64_t{7};
      const int tail = static_cast<int>(kc & 7);
      const bool first = k0 == 0, last = k0 + kc == cols;
      PackPanel<L>(wp, wd, cols, p, np, k0, kc);
      // The block packed next (this panel's next k-block, or the next panel's first) comes from
      // memory: prefetch its lines into L2, a few per token tile, while this block computes, so
      // that packing never waits on DRAM.
      const int64_t next_p = last ? p + kPanelRows : p, next_k0 = last ? 0 : k0 + kKBlock;
      const int next_rows =
          static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(kPanelRows, r1 - next_p)));
      const int64_t lines_per_row = (std::min(kKBlock, cols - next_k0) + kLine - 1) / kLine;
      const int64_t next_lines = next_rows * lines_per_row;
      const int64_t lines_per_tile =
          (next_lines + (n + kTileTokens - 1) / kTileTokens - 1) / ((n + kTileTokens - 1) / kTileTokens);
      int64_t line = 0;
      const typename L::T* pf_row = wd + next_p * cols + next_k0;  // the next line to prefetch: its row
      int64_t pf_col = 0;                                          // and its line within the row
      for (int i = 0; i < n; i += kTileTokens) {
        for (int64_t e = std::min(next_lines, line + lines_per_tile); line < e; ++line) {
          _mm_prefetch(reinterpret_cast<const char*>(pf_row + pf_col * kLine), _MM_HINT_T1);
          if (++pf_col == lines_per_row) {
            pf_col = 0;
            pf_row += cols;
          }
        }
        const int mt = std::min(kTileTokens, n - i);
        float* st = state + static_cast<int64_t>(i) * kPanelRows * 8;
        int j = 0;
        if (mt == kTileTokens) {  // the common case, called directly so that it inlines
          for (; j + kTileRows <= np; j += kTileRows) {
            BlockedTile<kTileTokens, kTileRows>(st + j * 8, x + i * ldx + k0, ldx, wp + j * kKBlock, kfull,
                                                tail, first, last, out + i * ldo + p + j, ldo);
          }
        }
        for (; j < np; j += kTileRows) {
          const int nt = std::min(kTileRows, np - j);
          BlockedForTile(mt, nt)(st + j * 8, x + i * ldx + k0, ldx, wp + j * kKBlock, kfull, tail, first,
                                 last, out + i * ldo + p + j, ldo);
        }
      }
    }
  }
}

template <class L>
void MatMulAny(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
               int64_t r1, KernelScratch scratch) {
  if (n < kBlockedMinTokens) {
    MatMulDirect<L>(out, ldo, x, ldx, n, w, r0, r1);
  } else {
    MatMulBlocked<L>(out, ldo, x, ldx, n, w, r0, r1, scratch);
  }
}

}  // namespace

size_t MatMulFloatScratch(int n, int64_t cols) {
  // Enough for either layout: the grouped kernels need less than the row layout's panel.
  return std::max(MatMulFloatGroupsScratch(),
                  8 + kPanelRows * kKBlock + static_cast<size_t>(std::max(n, 1)) * kPanelRows * 8);
}

void MatMulFloat(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                 int64_t r1, KernelScratch scratch) {
  if (w.layout == Layout::kFloatGroups16) return MatMulFloatGroups(out, ldo, x, ldx, n, w, r0, r1, scratch);
  switch (w.dtype) {
    case DType::kF32:
      return MatMulAny<F32W>(out, ldo, x, ldx, n, w, r0, r1, scratch);
    case DType::kF16:
      return MatMulAny<F16W>(out, ldo, x, ldx, n, w, r0, r1, scratch);
    case DType::kBF16:
      return MatMulAny<BF16W>(out, ldo, x, ldx, n, w, r0, r1, scratch);
    case DType::kQ8_0:
      break;  // MatMulQ8
  }
}

}  // namespace strata::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
