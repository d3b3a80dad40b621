// Causal attention over the paged KV cache for the query heads that share one KV head
// (grouped-query attention reads each K and V row once for the whole group), for one token or a
// run of consecutive tokens of one sequence.
//
// Groups of 8 query heads (TinyLlama's 32 over 4, Llama-2/3's 64 over 8, ...) with head_dim a
// multiple of 8 take a path whose vector lanes are the 8 heads. Canonical order for one
// (token, head): score_p = (FMA chain over d = 0..hd of q_d · k_p,d, from +0) · scale;
// m = max_p score_p; e_p = Exp(score_p - m); z = Σ_p e_p in increasing p; out_d = (FMA chain over
// p of e_p · v_p,d, from +0) · (1 / z). Lanes are heads, so a score needs no horizontal sum, the
// softmax runs on 8 heads at once, and two tokens share each K load. Other shapes keep the first
// kernel's order: score_p = Hsum(8-lane FMA dot of q and k_p) · scale; z = Σ e_p over 8 lanes by
// p mod 8, then Hsum; out as above. Either way a token's bits depend only on its own context
// length, never on the tokens it runs with, so a token gets the same bits in any batch.
#if defined(__x86_64__)

#include <algorithm>
#include <cmath>

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
#include "core/backend/cpu/kv_rows.h"

namespace strata::cpu::avx2 {
namespace {

inline float Dot(const float* a, const float* b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= n; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
  if (k < n) {
    const __m256i m = TailMask(n - k);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + k, m), _mm256_maskload_ps(b + k, m), acc);
  }
  return Hsum(acc);
}

// Hsum() of eight vectors at once, lane i = Hsum(v[i]) bit for bit: the same additions (halves,
// then lanes 0+2 and 1+3, then those two) done on transposed data, 22 operations instead of ~48.
inline __m256 Hsum8(const __m256 (&v)[8]) {
  __m256 t[4];  // t[j] = [v[2j]: a0..a3 | v[2j+1]: a0..a3], a_l = l_l + l_{l+4}
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * j], v[2 * j + 1], 0x20),
                         _mm256_permute2f128_ps(v[2 * j], v[2 * j + 1], 0x31));
  }
  // u0 = [v0: b0 b1, v2: b0 b1 | v1: b0 b1, v3: b0 b1], b0 = a0 + a2, b1 = a1 + a3; u1 likewise for v4..v7.
  const __m256 u0 = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 u1 = _mm256_add_ps(_mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // r = [v0 v2 v4 v6 | v1 v3 v5 v7] as b0 + b1, then back in order.
  const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// out[i] = Dot(q, rows[i], n) · scale for 8 rows: eight independent FMA chains (a single dot is
// one chain, latency-bound) and one transposed reduction.
inline void Scores8(float* out, const float* q, const float* const (&rows)[8], int n, float scale) {
  __m256 acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 qv = _mm256_loadu_ps(q + k);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[i] + k), acc[i]);
  }
  if (k < n) {
    const __m256i m = TailMask(n - k);
    const __m256 qv = _mm256_maskload_ps(q + k, m);
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(rows[i] + k, m), acc[i]);
  }
  _mm256_storeu_ps(out, _mm256_mul_ps(Hsum8(acc), _mm256_set1_ps(scale)));
}

// Turns scores s[0..ctx) into e^(s - max) in place; returns their sum.
float ExpShifted(float* s, int ctx) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int p = 0;
  for (; p + 8 <= ctx; p += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + p));
  float m = -INFINITY;
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  for (float l : lanes) m = std::max(m, l);
  for (int q = p; q < ctx; ++q) m = std::max(m, s[q]);
  const __m256 mb = _mm256_set1_ps(m);
  __m256 z = _mm256_setzero_ps();
  for (p = 0; p + 8 <= ctx; p += 8) {
    const __m256 e = Exp(_mm256_sub_ps(_mm256_loadu_ps(s + p), mb));
    _mm256_storeu_ps(s + p, e);
    z = _mm256_add_ps(z, e);
  }
  if (p < ctx) {
    const __m256i mask = TailMask(ctx - p);
    const __m256 e =
        _mm256_and_ps(Exp(_mm256_sub_ps(_mm256_maskload_ps(s + p, mask), mb)), _mm256_castsi256_ps(mask));
    _mm256_maskstore_ps(s + p, mask, e);
    z = _mm256_add_ps(z, e);
  }
  return Hsum(z);
}

// Any group size and head_dim: one token.
void AttendOne(float* out, const float* q, int n_q, const float* k, const float* v, int64_t kv_dim,
               const int32_t* block_table, int32_t block_size, int ctx, int hd, float scale, float* scratch) {
  // Scores of every head in the group: [n_q][ctx], eight positions at a time (their K rows stay
  // in L1 for all heads of the group); the last ctx % 8 one by one, the same bits.
  const float* rows[8];
  int pending = 0;
  ForEachRow(k, kv_dim, block_table, block_size, ctx, [&](int p, const float* kp) {
    rows[pending++] = kp;
    if (pending == 8) {
      for (int h = 0; h < n_q; ++h) Scores8(scratch + static_cast<int64_t>(h) * ctx + p - 7, q + h * hd, rows, hd, scale);
      pending = 0;
    }
  });
  for (int i = 0; i < pending; ++i) {
    for (int h = 0; h < n_q; ++h)
      scratch[static_cast<int64_t>(h) * ctx + ctx - pending + i] = Dot(q + h * hd, rows[i], hd) * scale;
  }
  for (int h = 0; h < n_q; ++h) {
    float* e = scratch + static_cast<int64_t>(h) * ctx;
    const __m256 inv = _mm256_set1_ps(1.0f / ExpShifted(e, ctx));
    float* oh = out + h * hd;
    // Σ_p e_p · v_p, eight vectors of dimensions at a time (eight chains cover the FMA latency on
    // both pipes), then four, then the remainder.
    int d0 = 0;
    for (; d0 + 64 <= hd; d0 += 64) {
      __m256 acc[8];
      for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
      ForEachRow(v + d0, kv_dim, block_table, block_size, ctx, [&](int p, const float* vp) {
        const __m256 a = _mm256_broadcast_ss(e + p);
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(a, _mm256_loadu_ps(vp + 8 * c), acc[c]);
      });
      for (int c = 0; c < 8; ++c) _mm256_storeu_ps(oh + d0 + 8 * c, _mm256_mul_ps(acc[c], inv));
    }
    for (; d0 + 32 <= hd; d0 += 32) {
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      ForEachRow(v + d0, kv_dim, block_table, block_size, ctx, [&](int p, const float* vp) {
        const __m256 a = _mm256_broadcast_ss(e + p);
        for (int c = 0; c < 4; ++c) acc[c] = _mm256_fmadd_ps(a, _mm256_loadu_ps(vp + 8 * c), acc[c]);
      });
      for (int c = 0; c < 4; ++c) _mm256_storeu_ps(oh + d0 + 8 * c, _mm256_mul_ps(acc[c], inv));
    }
    for (; d0 < hd; d0 += 8) {
      const __m256i mask = TailMask(std::min(8, hd - d0));
      __m256 acc = _mm256_setzero_ps();
      ForEachRow(v + d0, kv_dim, block_table, block_size, ctx, [&](int p, const float* vp) {
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(e + p), _mm256_maskload_ps(vp, mask), acc);
      });
      _mm256_maskstore_ps(oh + d0, mask, _mm256_mul_ps(acc, inv));
    }
  }
}

// ---- groups of 8 heads, lanes = heads ----

constexpr int kHeads = 8;

// Scores of T tokens at NP positions: s[t][(p + i) · 8 + h] = (Σ_d qT[t][d · 8 + h] · k_i[d]) ·
// scale, one FMA chain per (token, position) with the 8 heads as lanes. T · NP chains cover the
// FMA latency (8 = 2 pipes × 4 cycles); each K value is one broadcast for all T tokens.
template <int T, int NP>
inline void Scores(float* s, int64_t s_stride, const float* qT, int64_t qT_stride, const float* const* rows, int hd,
                   __m256 scale, int p) {
  __m256 acc[T][NP];
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < NP; ++i) acc[t][i] = _mm256_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    __m256 kb[NP];
    for (int i = 0; i < NP; ++i) kb[i] = _mm256_broadcast_ss(rows[i] + d);
    for (int t = 0; t < T; ++t) {
      const __m256 qv = _mm256_loadu_ps(qT + t * qT_stride + d * kHeads);
      for (int i = 0; i < NP; ++i) acc[t][i] = _mm256_fmadd_ps(qv, kb[i], acc[t][i]);
    }
  }
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < NP; ++i) _mm256_storeu_ps(s + t * s_stride + (p + i) * kHeads, _mm256_mul_ps(acc[t][i], scale));
}

// Scores of T tokens over positions [0, n): NP at a time, then one by one (the same chains).
template <int T, int NP>
void ScoresAll(float* s, int64_t s_stride, const float* qT, int64_t qT_stride, const KvRows& k, int n, int hd,
               __m256 scale) {
  const float* rows[NP];
  int pending = 0;
  k.ForEach(n, [&](int p, const float* row) {
    rows[pending++] = row;
    if (pending == NP) {
      Scores<T, NP>(s, s_stride, qT, qT_stride, rows, hd, scale, p - (NP - 1));
      pending = 0;
    }
  });
  for (int i = 0; i < pending; ++i) Scores<T, 1>(s, s_stride, qT, qT_stride, rows + i, hd, scale, n - pending + i);
}

// Softmax over positions [0, ctx) of one token's scores (8 heads a row), in place: e = Exp(s - m);
// returns 1 / z per head.
inline __m256 Softmax(float* s, int ctx) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  for (int p = 0; p < ctx; ++p) m = _mm256_max_ps(m, _mm256_loadu_ps(s + p * kHeads));
  __m256 z = _mm256_setzero_ps();
  for (int p = 0; p < ctx; ++p) {
    const __m256 e = Exp(_mm256_sub_ps(_mm256_loadu_ps(s + p * kHeads), m));
    _mm256_storeu_ps(s + p * kHeads, e);
    z = _mm256_add_ps(z, e);
  }
  return _mm256_div_ps(_mm256_set1_ps(1.0f), z);
}

// out[h · hd + d0 ..] for heads h, h + 1 and NV vectors of dimensions from d0: Σ_p e_p · v_p, one
// FMA chain per lane in increasing p (2 · NV chains; each V load serves both heads).
template <int NV>
void WeightedSum(float* out, int hd, const float* e, int h, int d0, const KvRows& v, int ctx, float inv0,
                 float inv1) {
  __m256 a0[NV], a1[NV];
  for (int c = 0; c < NV; ++c) a0[c] = a1[c] = _mm256_setzero_ps();
  v.ForEach(ctx, [&](int p, const float* row) {
    const float* vp = row + d0;
    const __m256 b0 = _mm256_broadcast_ss(e + p * kHeads + h), b1 = _mm256_broadcast_ss(e + p * kHeads + h + 1);
    for (int c = 0; c < NV; ++c) {
      const __m256 vv = _mm256_loadu_ps(vp + 8 * c);
      a0[c] = _mm256_fmadd_ps(b0, vv, a0[c]);
      a1[c] = _mm256_fmadd_ps(b1, vv, a1[c]);
    }
  });
  for (int c = 0; c < NV; ++c) {
    _mm256_storeu_ps(out + h * hd + d0 + 8 * c, _mm256_mul_ps(a0[c], _mm256_set1_ps(inv0)));
    _mm256_storeu_ps(out + (h + 1) * hd + d0 + 8 * c, _mm256_mul_ps(a1[c], _mm256_set1_ps(inv1)));
  }
}

// n_tok (1 or 2) consecutive tokens, 8 heads, hd % 8 == 0.
void AttendHeads8(float* out, const float* q, int64_t ldq, int n_tok, const float* k, const float* v,
                  int64_t kv_dim, const int32_t* block_table, int32_t block_size, int ctx0, int hd, float scale,
                  float* scratch) {
  const int n_pos = ctx0 + n_tok - 1;  // the last token's context; the others ignore its extra positions
  const int64_t qT_stride = static_cast<int64_t>(hd) * kHeads, s_stride = static_cast<int64_t>(n_pos) * kHeads;
  float* const qT = scratch;                  // [n_tok][hd][8]
  float* const s = scratch + n_tok * qT_stride;  // [n_tok][n_pos][8]
  for (int t = 0; t < n_tok; ++t)
    for (int h = 0; h < kHeads; ++h)
      for (int d = 0; d < hd; ++d) qT[t * qT_stride + d * kHeads + h] = q[t * ldq + h * hd + d];
  const __m256 sc = _mm256_set1_ps(scale);
  const KvRows kw{k, kv_dim, block_table, block_size}, vw{v, kv_dim, block_table, block_size};
  if (n_tok == 2) {
    ScoresAll<2, 4>(s, s_stride, qT, qT_stride, kw, n_pos, hd, sc);
  } else {
    ScoresAll<1, 8>(s, s_stride, qT, qT_stride, kw, n_pos, hd, sc);
  }
  for (int t = 0; t < n_tok; ++t) {
    const int ctx = ctx0 + t;
    float* const e = s + t * s_stride;
    alignas(32) float inv[kHeads];
    _mm256_store_ps(inv, Softmax(e, ctx));
    float* const o = out + t * ldq;
    for (int h = 0; h < kHeads; h += 2) {
      int d0 = 0;
      for (; d0 + 32 <= hd; d0 += 32) WeightedSum<4>(o, hd, e, h, d0, vw, ctx, inv[h], inv[h + 1]);
      switch ((hd - d0) / 8) {
        case 3: WeightedSum<3>(o, hd, e, h, d0, vw, ctx, inv[h], inv[h + 1]); break;
        case 2: WeightedSum<2>(o, hd, e, h, d0, vw, ctx, inv[h], inv[h + 1]); break;
        case 1: WeightedSum<1>(o, hd, e, h, d0, vw, ctx, inv[h], inv[h + 1]); break;
        default: break;
      }
    }
  }
}

}  // namespace

void Attend(float* out, const float* q, int64_t ldq, int n_tok, int n_q, const float* k, const float* v,
            int64_t kv_dim, const int32_t* block_table, int32_t block_size, int ctx0, int hd, float scale,
            float* scratch) {
  if (n_q == kHeads && hd % 8 == 0) {
    for (int t = 0; t < n_tok; t += 2) {
      AttendHeads8(out + t * ldq, q + t * ldq, ldq, std::min(2, n_tok - t), k, v, kv_dim, block_table, block_size,
                   ctx0 + t, hd, scale, scratch);
    }
    return;
  }
  for (int t = 0; t < n_tok; ++t) {
    AttendOne(out + t * ldq, q + t * ldq, n_q, k, v, kv_dim, block_table, block_size, ctx0 + t, hd, scale, scratch);
  }
}

}  // namespace strata::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
