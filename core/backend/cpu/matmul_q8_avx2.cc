// Q8_0 weights × Q8-quantized activations with AVX2 integer dot products, as the fast engines do
// (llama.cpp's vec_dot_q8_0_q8_0): per block of 32, one byte multiply-add gives exact int32
// partial sums, and only those are scaled in floating point.
//
// Canonical order of one output out[i, r]: an 8-float accumulator starts at +0; for each block b
// in increasing order, lane l gets fma(float(s_l), d_w[r,b] · d_x[i,b], acc_l), where s_l is the
// exact integer sum of the products of columns 4l..4l+3 of the block and the scale product is
// rounded to f32 once; then Hsum(). Integer sums are exact, so only the block order matters, and
// every tile and thread keeps it.
//
// Without VNNI the int8 product takes the sign trick: maddubs wants unsigned × signed, so it gets
// |x| and w·sign(x) (same product), summing adjacent pairs into int16 (|2·127·127| < 2^15: no
// saturation), and madd with ones sums pairs again into int32.
//
// On Zen 3 maddubs, madd, mul and FMA all share the two multiply pipes, so per (token, row, block)
// the prefill tile issues only maddubs, madd and one FMA there: the scale products d_w · d_x are
// made 8 blocks per vector multiply before the integer loop, not one per block.
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

// Prefill: a panel of rows × k-block of packed quants (<= kPanelBytes) stays in L2 while every
// token tile passes over it, so the activations stream from L3 once per panel. Panels are as tall
// as fit (up to kMaxPanelRows) over the whole width, so no accumulator waits in memory; only
// weights wider than kMaxKBlocks blocks are split into k-blocks. Measured (strata-kernel-bench,
// n = 512, 2 threads): 12-row panels made activation traffic the limit (1.5x one thread instead
// of 2x); for 5632 columns, 32 full-width rows beat 96 rows × 2048 columns with parking.
constexpr int kMaxPanelRows = 96;
constexpr int64_t kPanelBytes = 184 * 1024;
constexpr int64_t kMaxKBlocks = 192;
constexpr int64_t kMaxPrefetchBytes = 256 * 1024;  // the next panel is prefetched into L2 up to this

struct PanelShape {
  int64_t rows;     // rows per panel, a multiple of the 2-row tile
  int64_t kblocks;  // blocks per k-block
};
PanelShape PanelFor(int64_t nb) {
  const int64_t kb = nb <= kMaxKBlocks ? nb : kMaxKBlocks / 2;
  const int64_t rows = std::clamp<int64_t>(kPanelBytes / (kb * kQ8Block) / 2 * 2, 2, kMaxPanelRows);
  return {rows, kb};
}
// Decode reads each row stream with a software prefetch one 2048-column row (64 blocks, 2 KiB)
// ahead; shorter distances were slower (docs/cpu-backend.md).
constexpr int kPrefetchBlocks = 64;
constexpr int kStreams = 2;  // decode: far-apart row streams per thread (1, 4, adjacent rows: slower)
constexpr int kChunk = 32;   // prefill: blocks whose scale products are made ahead of the integer loop

// f16 → f32 for every half: a Q8_0 block's scale costs one table load instead of an insert and
// a conversion. Filled by InitQ8Tables() before the kernels are handed out.
float g_f16_to_f32[1 << 16];

// s_l = Σ x·w over columns 4l..4l+3 of one block, as 8 int32 lanes converted to float (exact).
inline __m256 BlockDot(__m256i xabs, __m256i w, const int8_t* xq, __m256i ones) {
  // |x| · (w · sign x) = x · w, byte by byte.
  const __m256i ws = _mm256_sign_epi8(w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(xabs, ws), ones));
}

// Decode tile: MT (1 or 2) token rows × NT far-apart weight rows, straight from the mapped file
// with a software prefetch per row stream; memory-bound, so the scale product is made in place.
template <int MT, int NT>
void DecodeTile(float* out, int64_t ldo, const Q8Rows& x, const BlockQ8_0* w, int64_t nb, int64_t w_stride,
                int64_t o_stride) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MT][NT];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i wq[NT];
    __m256 dw[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const BlockQ8_0& blk = w[j * w_stride + b];
      _mm_prefetch(reinterpret_cast<const char*>(&blk + kPrefetchBlocks), _MM_HINT_T0);
      wq[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
      dw[j] = _mm256_broadcast_ss(&g_f16_to_f32[blk.d]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < MT; ++i) {
      const int8_t* xq = x.row_qs(i) + b * kQ8Block;
      const __m256i xabs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.row_abs(i) + b * kQ8Block));
      const __m256 dx = _mm256_broadcast_ss(x.row_d(i) + b);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j)
        acc[i][j] = _mm256_fmadd_ps(BlockDot(xabs, wq[j], xq, ones), _mm256_mul_ps(dw[j], dx), acc[i][j]);
    }
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) out[i * ldo + j * o_stride] = Hsum(acc[i][j]);
}

using DecodeFn = void (*)(float*, int64_t, const Q8Rows&, const BlockQ8_0*, int64_t, int64_t, int64_t);

// The integer loop over one chunk of blocks; the accumulators are copied in and out so that
// they live in registers throughout (kept in the caller's array, GCC stores them every block).
template <int MT, int NT, int kStep>
__attribute__((always_inline)) inline void ChunkLoop(__m256 (&acc_io)[MT][NT], const int8_t* xq, const uint8_t* xa,
                                                      int64_t ldx, const int8_t* wb, int64_t ldw,
                                                      const float (&dxw)[MT * NT][kChunk], int nc, __m256i ones) {
  __m256 acc[MT][NT];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = acc_io[i][j];
  for (int c = 0; c < nc; ++c, xq += kQ8Block, xa += kQ8Block, wb += kStep) {
    __m256i wq[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) wq[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + j * ldw));
#pragma GCC unroll 4
    for (int i = 0; i < MT; ++i) {
      const int8_t* xqi = xq + i * ldx;
      const __m256i xabs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + i * ldx));
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        acc[i][j] = _mm256_fmadd_ps(BlockDot(xabs, wq[j], xqi, ones), _mm256_broadcast_ss(&dxw[i * NT + j][c]),
                                    acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) acc_io[i][j] = acc[i][j];
}

// Prefill tile: MT token rows × NT weight rows over blocks [kb0, kb1). `wq` points at the rows'
// quants for this k-block ([NT][stride ldw bytes], one block each kStep bytes: 32 packed, 34 in
// place in the Q8_0 blocks) and `dw` at their scales as f32
// ([NT][nb]). Per chunk of blocks, the MT·NT scale products are made 8 blocks per multiply
// into `dxw`; the integer loop then takes each as a broadcast load. Between k-blocks the
// accumulators wait in `state` ([MT][stride st_ld][NT][8]), which is exact.
template <int MT, int NT, int kStep>
void PrefillTile(float* out, int64_t ldo, const Q8Rows& x, int64_t i0, const int8_t* wq, int64_t ldw, int64_t nb,
                 int64_t kb0, int64_t kb1, const float* dw, float* state, int64_t st_ld, bool first, bool last) {
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float dxw[MT * NT][kChunk];
  const int8_t* const xq0 = x.row_qs(i0);
  const uint8_t* const xa0 = x.row_abs(i0);
  const int64_t ldx = x.cols;
  __m256 acc[MT][NT];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j)
      acc[i][j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(state + i * st_ld + j * 8);
  for (int64_t b0 = kb0; b0 < kb1; b0 += kChunk) {
    const int nc = static_cast<int>(std::min<int64_t>(kChunk, kb1 - b0));
    for (int i = 0; i < MT; ++i) {
      const float* dx = x.row_d(i0 + i) + b0;
      for (int j = 0; j < NT; ++j) {
        const float* dwj = dw + j * nb + b0;
        float* dst = dxw[i * NT + j];
        int c = 0;
        for (; c + 8 <= nc; c += 8)
          _mm256_store_ps(dst + c, _mm256_mul_ps(_mm256_loadu_ps(dwj + c), _mm256_loadu_ps(dx + c)));
        for (; c < nc; ++c) dst[c] = dwj[c] * dx[c];
      }
    }
    ChunkLoop<MT, NT, kStep>(acc, xq0 + b0 * kQ8Block, xa0 + b0 * kQ8Block, ldx, wq + (b0 - kb0) * kStep, ldw, dxw,
                             nc, ones);
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) {
      if (last) {
        out[i * ldo + j] = Hsum(acc[i][j]);
      } else {
        _mm256_storeu_ps(state + i * st_ld + j * 8, acc[i][j]);
      }
    }
}

using PrefillFn = void (*)(float*, int64_t, const Q8Rows&, int64_t, const int8_t*, int64_t, int64_t, int64_t,
                           int64_t, const float*, float*, int64_t, bool, bool);

template <int MT, int kStep>
constexpr PrefillFn PrefillFor(int nt) {
  return nt == 1 ? PrefillTile<MT, 1, kStep> : PrefillTile<MT, 2, kStep>;
}

template <int kStep>
PrefillFn PrefillForTile(int mt, int nt) {
  return mt == 1 ? PrefillFor<1, kStep>(nt) : mt == 2 ? PrefillFor<2, kStep>(nt) : mt == 3 ? PrefillFor<3, kStep>(nt)
                                                                                         : PrefillFor<4, kStep>(nt);
}

// Prefill over rows [r0, r1): panels of ps.rows rows, each with its scales converted once, its
// next panel prefetched, and (packed, kStep = 32) its quants copied per k-block into `wp`, or
// (in place, kStep = 34) read straight from the Q8_0 blocks. 4 tokens × 2 rows per tile (8
// accumulators, 2 weight blocks, |x|, temporaries and the ones fit the 16 registers).
template <int kStep>
void Prefill(float* out, int64_t ldo, const Q8Rows& x, int n, const BlockQ8_0* wd, int64_t nb, int64_t r0, int64_t r1,
             const PanelShape& ps, int8_t* wp, float* dw, float* state) {
  constexpr bool kPacked = kStep == kQ8Block;
  constexpr int kTileTokens = 4, kTileRows = 2;
  const int64_t ldw = kPacked ? ps.kblocks * kQ8Block : nb * int64_t{sizeof(BlockQ8_0)};  // bytes between rows
  const int64_t st_ld = ps.rows * 8;
  // Tile calls per panel: token tiles × row pairs × k-blocks.
  const int64_t tiles_per_panel = (n + kTileTokens - 1) / kTileTokens * ((ps.rows + kTileRows - 1) / kTileRows) *
                                  ((nb + ps.kblocks - 1) / ps.kblocks);
  for (int64_t p = r0; p < r1; p += ps.rows) {
    const int64_t pend = std::min<int64_t>(r1, p + ps.rows);
    for (int64_t r = p; r < pend; ++r)
      for (int64_t b = 0; b < nb; ++b) dw[(r - p) * nb + b] = g_f16_to_f32[wd[r * nb + b].d];
    // The next panel's weights (contiguous rows) are prefetched into L2 a few lines per tile call
    // (spread out, so the misses stay within what the core can have in flight) while this panel
    // computes, so that the weight read overlaps compute even with few tokens (batched decode: at
    // 32 tokens a panel's DRAM read is ~8% of its compute time). Skipped when they would not fit
    // in L2 (weights split into k-blocks).
    const char* pf = reinterpret_cast<const char*>(wd + pend * nb);
    const char* const pf_end = reinterpret_cast<const char*>(wd + std::min<int64_t>(r1, pend + ps.rows) * nb);
    const int64_t pf_per_tile =
        pf_end - pf > kMaxPrefetchBytes ? 0 : ((pf_end - pf) / 64 + tiles_per_panel) / tiles_per_panel;
    for (int64_t kb0 = 0; kb0 < nb; kb0 += ps.kblocks) {
      const int64_t kb1 = std::min(nb, kb0 + ps.kblocks);
      const bool first = kb0 == 0, last = kb1 == nb;
      if (kPacked) {
        for (int64_t r = p; r < pend; ++r)
          for (int64_t b = kb0; b < kb1; ++b)
            std::memcpy(wp + (r - p) * ldw + (b - kb0) * kQ8Block, wd[r * nb + b].qs, kQ8Block);
      }
      for (int i = 0; i < n; i += kTileTokens) {
        const int mt = std::min(kTileTokens, n - i);
        for (int64_t r = p; r < pend; r += kTileRows) {
          for (int64_t l = 0; l < pf_per_tile && pf < pf_end; ++l, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
          const int nt = static_cast<int>(std::min<int64_t>(kTileRows, pend - r));
          const int8_t* wq = kPacked ? wp + (r - p) * ldw : reinterpret_cast<const int8_t*>(wd[r * nb].qs);
          PrefillForTile<kStep>(mt, nt)(out + i * ldo + r, ldo, x, i, wq, ldw, nb, kb0, kb1, dw + (r - p) * nb,
                                        state + i * st_ld + (r - p) * 8, st_ld, first, last);
        }
      }
    }
  }
}

}  // namespace

void InitQ8Tables() {
  for (uint32_t h = 0; h < (1u << 16); ++h) g_f16_to_f32[h] = _cvtsh_ss(static_cast<uint16_t>(h));
}

void QuantizeQ8(Q8Rows q, const float* x, int64_t i0, int64_t i1) {
  const int64_t nb = q.cols / kQ8Block;
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + i * q.cols + b * kQ8Block;
      __m256 v[4];
      __m256 amax = _mm256_setzero_ps();
      for (int c = 0; c < 4; ++c) {
        v[c] = _mm256_loadu_ps(xb + 8 * c);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[c]));
      }
      __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
      m = _mm_max_ps(m, _mm_movehl_ps(m, m));
      m = _mm_max_ss(m, _mm_movehdup_ps(m));
      // The same scalar arithmetic as the portable quantizer, so both give identical blocks.
      const float d = _mm_cvtss_f32(m) / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      q.d[i * nb + b] = d;
      const __m256 idv = _mm256_set1_ps(id);
      __m256i qi[4];
      for (int c = 0; c < 4; ++c) {
        qi[c] = _mm256_cvtps_epi32(
            _mm256_round_ps(_mm256_mul_ps(v[c], idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
      // packs work within 128-bit halves; the permute puts the 32 bytes back in order.
      const __m256i q16a = _mm256_packs_epi32(qi[0], qi[1]), q16b = _mm256_packs_epi32(qi[2], qi[3]);
      const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b),
                                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q.qs + i * q.cols + b * kQ8Block), q8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q.abs + i * q.cols + b * kQ8Block), _mm256_abs_epi8(q8));
    }
  }
}

size_t MatMulQ8Scratch(int n, const Tensor& w) {
  if (w.layout == Layout::kQ8_0Groups8) return 0;  // read in place, no panels to pack
  const int64_t nb = w.cols / kQ8Block;
  const PanelShape ps = PanelFor(nb);
  return 8 + static_cast<size_t>(ps.rows * ps.kblocks * kQ8Block / sizeof(float) + ps.rows * nb) +
         static_cast<size_t>(std::max(n, 1)) * ps.rows * 8;
}

void MatMulQ8(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
              KernelScratch scratch) {
  if (w.layout == Layout::kQ8_0Groups8) {
    MatMulQ8Groups(out, ldo, x, n, w, r0, r1, scratch);
    return;
  }
  const int64_t nb = w.cols / kQ8Block;
  const auto* wd = static_cast<const BlockQ8_0*>(w.data);
  if (n <= 2) {
    // Decode: the range is read as kStreams far-apart sequential streams, one row of each per
    // tile (each with its software prefetch), which this memory system serves faster than one
    // stream or adjacent rows; the rows left over go one at a time.
    const int64_t q = (r1 - r0) / kStreams;
    const DecodeFn spread = n == 1 ? DecodeTile<1, kStreams> : DecodeTile<2, kStreams>;
    const DecodeFn single = n == 1 ? DecodeTile<1, 1> : DecodeTile<2, 1>;
    for (int64_t t = 0; t < q; ++t) spread(out + r0 + t, ldo, x, wd + (r0 + t) * nb, nb, q * nb, q);
    for (int64_t r = r0 + kStreams * q; r < r1; ++r) single(out + r, ldo, x, wd + r * nb, nb, nb, 1);
    return;
  }
  const PanelShape ps = PanelFor(nb);
  // Full-width panels are read in place (rows are contiguous: one ~190 KiB region). A panel of a
  // weight split into k-blocks is packed per k-block instead: read in place, its rows' slices lie
  // on ~190 pages for 96 rows, which overflowed the TLB (30% slower).
  const bool packed = ps.kblocks < nb;
  auto* wp = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(scratch.data) + 31) & ~uintptr_t{31});
  float* dw = reinterpret_cast<float*>(wp + (packed ? ps.rows * ps.kblocks * kQ8Block : 0));  // [ps.rows][nb]
  float* state = dw + ps.rows * nb;  // [n][ps.rows][8] parked accumulators
  if (packed) {
    Prefill<kQ8Block>(out, ldo, x, n, wd, nb, r0, r1, ps, wp, dw, state);
  } else {
    Prefill<sizeof(BlockQ8_0)>(out, ldo, x, n, wd, nb, r0, r1, ps, wp, dw, state);
  }
}

}  // namespace strata::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
