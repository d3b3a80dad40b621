// Causal attention with AVX-512 for runs of consecutive tokens of one sequence (prefill), where 8
// query heads share a KV head and head_dim is a multiple of 8 (the AVX2 kernel's fast path): two
// tokens' 8 heads are one zmm's 16 lanes, so each K value broadcast feeds both tokens' heads in
// one FMA, and two such pairs share each broadcast. The weighted sum over V runs with 16 dims a
// lane. The canonical order is the AVX2 kernel's (attention_avx2.cc), lane by lane: score = (FMA
// chain over d of q_d · k_p,d, from +0) · scale; m = max_p; e_p = Exp(score_p - m) with the same
// polynomial; z = Σ_p e_p in increasing p; out_d = (FMA chain over p of e_p · v_p,d) · (1 / z). So
// a token gets the same bits here as from the AVX2 kernel, alone or in any run; a single token
// (decode, or a run's odd last one), and any other shape, is the AVX2 kernel's.
#if defined(__x86_64__)

#include <algorithm>
#include <cmath>

#include "core/backend/cpu/kernels_avx2.h"
#include "core/backend/cpu/kernels_avx512.h"

// The intrinsics first (they carry their own target attributes), then this file's own code for
// the AVX-512 target: GCC's pragma, or clang's equivalent (the sanitizer build uses clang). GCC
// 12's 512-bit min/max/round/convert/shift intrinsics start from _mm512_undefined_*() and so warn
// "may be used uninitialized" once inlined (GCC bug 105593); the values are all defined.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif
#include "core/backend/cpu/kv_rows.h"

namespace strata::cpu::avx512 {
namespace {

constexpr int kHeads = 8;
constexpr int kLanes = 16;                           // a pair's lanes: token t of the pair, head h at t · 8 + h
constexpr __mmask16 kSecond = 0xff00;                // the pair's second token's lanes
constexpr int kPairsPerRun = 2;                      // pairs sharing each K broadcast
constexpr int kPositions = 8;                        // positions per score tile

// Exp of simd_avx2.h on 16 lanes: the same operations in the same order, so the same bits.
inline __m512 Exp(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.0f), lo = _mm512_set1_ps(-87.3365478515625f);
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i pow2n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_maskz_mul_ps(static_cast<__mmask16>(~underflow), p, _mm512_castsi512_ps(pow2n));
}

// Scores of T2 pairs at NP positions: s[t2][(p + i) · 16 + l] = (Σ_d qP[t2][d · 16 + l] · k_i[d]) ·
// scale, one FMA chain per (pair, position) and lane. T2 · NP chains cover the FMA latency; each
// K value is one broadcast for all 2 · T2 tokens.
template <int T2, int NP>
inline void Scores(float* s, int64_t s_stride, const float* qP, int64_t qP_stride, const float* const* rows, int hd,
                   __m512 scale, int p) {
  __m512 acc[T2][NP];
  for (int t = 0; t < T2; ++t)
    for (int i = 0; i < NP; ++i) acc[t][i] = _mm512_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    __m512 kb[NP];
    for (int i = 0; i < NP; ++i) kb[i] = _mm512_set1_ps(rows[i][d]);
    for (int t = 0; t < T2; ++t) {
      const __m512 qv = _mm512_loadu_ps(qP + t * qP_stride + d * kLanes);
      for (int i = 0; i < NP; ++i) acc[t][i] = _mm512_fmadd_ps(qv, kb[i], acc[t][i]);
    }
  }
  for (int t = 0; t < T2; ++t)
    for (int i = 0; i < NP; ++i) _mm512_storeu_ps(s + t * s_stride + (p + i) * kLanes, _mm512_mul_ps(acc[t][i], scale));
}

// Scores of T2 pairs over positions [0, n): NP at a time, then one by one (the same chains).
template <int T2>
void ScoresAll(float* s, int64_t s_stride, const float* qP, int64_t qP_stride, const KvRows& k, int n, int hd,
               __m512 scale) {
  const float* rows[kPositions];
  int pending = 0;
  k.ForEach(n, [&](int p, const float* row) {
    rows[pending++] = row;
    if (pending == kPositions) {
      Scores<T2, kPositions>(s, s_stride, qP, qP_stride, rows, hd, scale, p - (kPositions - 1));
      pending = 0;
    }
  });
  for (int i = 0; i < pending; ++i) Scores<T2, 1>(s, s_stride, qP, qP_stride, rows + i, hd, scale, n - pending + i);
}

// Softmax of one pair's scores in place: its first token over positions [0, c), its second over
// [0, c + 1) (the same chains, one step longer). e = Exp(s - m); returns 1 / z per lane.
inline __m512 Softmax(float* s, int c) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  for (int p = 0; p < c; ++p) m = _mm512_max_ps(m, _mm512_loadu_ps(s + p * kLanes));
  const __m512 last = _mm512_loadu_ps(s + c * kLanes);
  m = _mm512_mask_max_ps(m, kSecond, m, last);
  __m512 z = _mm512_setzero_ps();
  for (int p = 0; p < c; ++p) {
    const __m512 e = Exp(_mm512_sub_ps(_mm512_loadu_ps(s + p * kLanes), m));
    _mm512_storeu_ps(s + p * kLanes, e);
    z = _mm512_add_ps(z, e);
  }
  const __m512 e = Exp(_mm512_sub_ps(last, m));
  _mm512_storeu_ps(s + c * kLanes, e);  // the first token's lanes here are never read
  z = _mm512_mask_add_ps(z, kSecond, z, e);
  return _mm512_div_ps(_mm512_set1_ps(1.0f), z);
}

// One token's out[h · hd + d0 ..] for heads [h0, h0 + NH) and NV vectors of 16 dims from d0 (the
// last one's lanes in `tail`): Σ_{p < ctx} e_p · v_p, one FMA chain per lane in increasing p,
// times 1 / z. e holds the token's weights at lanes `lane0 + h` (16 a position); each V load
// serves NH heads.
template <int NH, int NV>
void WeightedSum(float* out, int hd, const float* e, int lane0, int h0, int d0, const KvRows& v, int ctx,
                 const float* inv, __mmask16 tail) {
  // Loops unrolled by pragma, as in the matmul tiles: otherwise GCC 12 kept acc in memory and
  // stored all NH · NV vectors on every position (16 stores per 16 FMAs). The weighted sums then
  // took 2.5x the time of the scores (the same FLOPs) and 3.3% of a 512-token F32 prefill step
  // at 2 threads; now 1.3%.
  __m512 acc[NH][NV];
#pragma GCC unroll 4
  for (int h = 0; h < NH; ++h)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) acc[h][c] = _mm512_setzero_ps();
  v.ForEach(ctx, [&](int p, const float* row) {
    const float* vp = row + d0;
    __m512 vv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c)
      vv[c] = c + 1 < NV ? _mm512_loadu_ps(vp + kLanes * c) : _mm512_maskz_loadu_ps(tail, vp + kLanes * c);
#pragma GCC unroll 4
    for (int h = 0; h < NH; ++h) {
      const __m512 b = _mm512_set1_ps(e[p * kLanes + lane0 + h0 + h]);
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) acc[h][c] = _mm512_fmadd_ps(b, vv[c], acc[h][c]);
    }
  });
#pragma GCC unroll 4
  for (int h = 0; h < NH; ++h) {
    const __m512 iv = _mm512_set1_ps(inv[lane0 + h0 + h]);
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) {
      _mm512_mask_storeu_ps(out + (h0 + h) * hd + d0 + kLanes * c, c + 1 < NV ? 0xffff : tail,
                            _mm512_mul_ps(acc[h][c], iv));
    }
  }
}

// One token's output (8 heads) from its weights: 4 heads a pass, 64 dims a pass, then the rest.
void TokenOut(float* out, int hd, const float* e, int lane0, const KvRows& v, int ctx, const float* inv) {
  for (int h0 = 0; h0 < kHeads; h0 += 4) {
    int d0 = 0;
    for (; d0 + 64 <= hd; d0 += 64) WeightedSum<4, 4>(out, hd, e, lane0, h0, d0, v, ctx, inv, 0xffff);
    const int rest = hd - d0;  // a multiple of 8 below 64
    const __mmask16 tail = rest % kLanes == 0 ? 0xffff : 0x00ff;
    switch ((rest + kLanes - 1) / kLanes) {
      case 3: WeightedSum<4, 3>(out, hd, e, lane0, h0, d0, v, ctx, inv, tail); break;
      case 2: WeightedSum<4, 2>(out, hd, e, lane0, h0, d0, v, ctx, inv, tail); break;
      case 1: WeightedSum<4, 1>(out, hd, e, lane0, h0, d0, v, ctx, inv, tail); break;
      default: break;
    }
  }
}

// T2 (1 or 2) pairs of consecutive tokens, the first seeing positions [0, ctx0).
template <int T2>
void AttendPairs(float* out, const float* q, int64_t ldq, const KvRows& kw, const KvRows& vw, int ctx0, int hd,
                 float scale, float* scratch) {
  const int n_pos = ctx0 + 2 * T2 - 1;  // the last token's context
  const int64_t qP_stride = static_cast<int64_t>(hd) * kLanes, s_stride = static_cast<int64_t>(n_pos) * kLanes;
  float* const qP = scratch;                   // [T2][hd][16]
  float* const s = scratch + T2 * qP_stride;  // [T2][n_pos][16]
  for (int t2 = 0; t2 < T2; ++t2)
    for (int tt = 0; tt < 2; ++tt)
      for (int h = 0; h < kHeads; ++h)
        for (int d = 0; d < hd; ++d)
          qP[t2 * qP_stride + d * kLanes + tt * kHeads + h] = q[(2 * t2 + tt) * ldq + h * hd + d];
  ScoresAll<T2>(s, s_stride, qP, qP_stride, kw, n_pos, hd, _mm512_set1_ps(scale));
  for (int t2 = 0; t2 < T2; ++t2) {
    const int c = ctx0 + 2 * t2;
    float* const e = s + t2 * s_stride;
    alignas(64) float inv[kLanes];
    _mm512_store_ps(inv, Softmax(e, c));
    for (int tt = 0; tt < 2; ++tt) TokenOut(out + (2 * t2 + tt) * ldq, hd, e, tt * kHeads, vw, c + tt, inv);
  }
}

}  // namespace

void Attend(float* out, const float* q, int64_t ldq, int n_tok, int n_q, const float* k, const float* v,
            int64_t kv_dim, const int32_t* block_table, int32_t block_size, int ctx0, int hd, float scale,
            float* scratch) {
  if (n_q != kHeads || hd % 8 != 0 || n_tok < 2) {
    return avx2::Attend(out, q, ldq, n_tok, n_q, k, v, kv_dim, block_table, block_size, ctx0, hd, scale, scratch);
  }
  const KvRows kw{k, kv_dim, block_table, block_size}, vw{v, kv_dim, block_table, block_size};
  int t = 0;
  for (; t + 2 * kPairsPerRun <= n_tok; t += 2 * kPairsPerRun)
    AttendPairs<kPairsPerRun>(out + t * ldq, q + t * ldq, ldq, kw, vw, ctx0 + t, hd, scale, scratch);
  for (; t + 2 <= n_tok; t += 2) AttendPairs<1>(out + t * ldq, q + t * ldq, ldq, kw, vw, ctx0 + t, hd, scale, scratch);
  if (t < n_tok) {
    avx2::Attend(out + t * ldq, q + t * ldq, ldq, 1, n_q, k, v, kv_dim, block_table, block_size, ctx0 + t, hd, scale,
                 scratch);
  }
}

}  // namespace strata::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
