// Q8_0 weights × Q8-quantized activations with AVX2 integer dot products, as the fast engines do
// (llama.cpp's vec_dot_q8_0_q8_0): per block of 32, one byte multiply-add gives exact int32
// partial sums, and only those are scaled in floating point.
//
// Canonical order of one output out[i, r]: an 8-float accumulator starts at +0; for each block b
// in increasing order, lane l gets fma(float(s_l) · d_w[r,b], d_x[i,b], acc_l), where s_l is the
// exact integer sum of the products of columns 4l..4l+3 of the block; then Hsum(). Integer sums
// are exact, so only the block order matters, and every tile and thread keeps it.
//
// Without VNNI the int8 product takes the sign trick: maddubs wants unsigned × signed, so it gets
// |x| and w·sign(x) (same product), summing adjacent pairs into int16 (|2·127·127| < 2^15: no
// saturation), and madd with ones sums pairs again into int32.
#if defined(__x86_64__)

#include <algorithm>

#include "core/backend/cpu/kernels_avx2.h"

#pragma GCC target("avx2,fma,f16c")
#include "core/backend/cpu/simd_avx2.h"

namespace strata::cpu::avx2 {
namespace {

constexpr int kPanelRows = 12;  // rows whose blocks stay in L2 while every token tile passes over them
// Decode reads each row stream with a software prefetch one 2048-column row (64 blocks, 2 KiB)
// ahead; shorter distances were slower (docs/cpu-backend.md).
constexpr int kPrefetchBlocks = 64;
constexpr int kStreams = 2;  // decode: far-apart row streams per thread (1, 4, adjacent rows: slower)

// f16 → f32 for every half: a Q8_0 block's scale costs one table load instead of an insert and
// a conversion. Filled by InitQ8Tables() before the kernels are handed out.
float g_f16_to_f32[1 << 16];

// Weight-stationary tile: MT token rows × NT weight rows, all blocks. Both scales arrive as
// broadcasts straight from memory (load ports, no shuffles), and per pair of rows the float work
// is one multiply and one FMA.
template <int MT, int NT>
void Q8Tile(float* out, int64_t ldo, const Q8Rows& x, int64_t i0, const BlockQ8_0* w, int64_t nb,
            int64_t w_stride, int64_t o_stride) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MT][NT];
  const int8_t* xqs[MT];
  const float* xds[MT];
  for (int i = 0; i < MT; ++i) {
    xqs[i] = x.row_qs(i0 + i);
    xds[i] = x.row_d(i0 + i);
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
  }
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
#pragma GCC unroll 4
    for (int i = 0; i < MT; ++i) {
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xqs[i] + b * kQ8Block));
      const __m256i xabs = _mm256_abs_epi8(xq);
      const __m256 dx = _mm256_broadcast_ss(xds[i] + b);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        // |x| · (w · sign x) = x · w, byte by byte.
        const __m256i p16 = _mm256_maddubs_epi16(xabs, _mm256_sign_epi8(wq[j], xq));
        const __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)), dw[j]);
        acc[i][j] = _mm256_fmadd_ps(s, dx, acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) out[i * ldo + j * o_stride] = Hsum(acc[i][j]);
}

using TileFn = void (*)(float*, int64_t, const Q8Rows&, int64_t, const BlockQ8_0*, int64_t, int64_t, int64_t);

template <int MT>
constexpr TileFn TileFor(int nt) {
  return nt == 1 ? Q8Tile<MT, 1> : nt == 2 ? Q8Tile<MT, 2> : nt == 3 ? Q8Tile<MT, 3> : Q8Tile<MT, 4>;
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
    }
  }
}

void MatMulQ8(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQ8Block;
  const auto* wd = static_cast<const BlockQ8_0*>(w.data);
  if (n <= 2) {
    // Decode: the range is read as kStreams far-apart sequential streams, one row of each per
    // tile (each with its software prefetch), which this memory system serves faster than one
    // stream or adjacent rows; the rows left over go one at a time.
    const int64_t q = (r1 - r0) / kStreams;
    const TileFn spread = n == 1 ? Q8Tile<1, kStreams> : Q8Tile<2, kStreams>;
    const TileFn single = n == 1 ? Q8Tile<1, 1> : Q8Tile<2, 1>;
    for (int64_t t = 0; t < q; ++t) spread(out + r0 + t, ldo, x, 0, wd + (r0 + t) * nb, nb, q * nb, q);
    for (int64_t r = r0 + kStreams * q; r < r1; ++r) single(out + r, ldo, x, 0, wd + r * nb, nb, nb, 1);
    return;
  }
  // Prefill: 4 tokens × 2 rows (8 accumulators, 2 weight blocks and their scales, |x|, x's scale
  // and temporaries fill the 16 registers).
  constexpr int kTileTokens = 4, kTileRows = 2;
  for (int64_t p = r0; p < r1; p += kPanelRows) {
    const int64_t pend = std::min(r1, p + kPanelRows);
    for (int i = 0; i < n; i += kTileTokens) {
      const int mt = std::min(kTileTokens, n - i);
      for (int64_t r = p; r < pend; r += kTileRows) {
        const int nt = static_cast<int>(std::min<int64_t>(kTileRows, pend - r));
        const TileFn fn = mt == 1   ? TileFor<1>(nt)
                          : mt == 2 ? TileFor<2>(nt)
                          : mt == 3 ? TileFor<3>(nt)
                                    : TileFor<4>(nt);
        fn(out + i * ldo + r, ldo, x, i, wd + r * nb, nb, nb, 1);
      }
    }
  }
}

}  // namespace strata::cpu::avx2

#endif  // __x86_64__
