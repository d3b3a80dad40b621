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
// tiles were slower. F16 blocks are first converted into an f32 buffer.
//
// Every block's first token tile would read its weights from DRAM at the tile's pace: timed with
// the TSC, that tile took 2-5x as long as the others (~4% of the product on one thread). So
// while a block's last 16 token tiles run, each prefetches into L2 its share of the next block's
// lines, spread over its columns (kPrefetchTiles): the same groups' next columns, the chunk
// after, or, after a range's last chunk, the first chunk of the range the backend expects this
// thread to take next (KernelScratch::next_r0/next_r1). With 8 tiles, one line per column, the
// first tiles took 1.6-2x, and 2048 × 2048 × 512 ran at 0.82 against 0.61-0.68 of the FMA loop
// (1 thread) and 0.71-0.73 against 0.67-0.68 (2 threads, where the hint is a guess), interleaved
// with it (2026-12-01); spread over 16 tiles, at 0.93-0.94 on either.
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

// Lines to prefetch into L2 while tiles run: `regions` runs of `lines` 64-byte lines, `stride`
// bytes apart from `base` (a block of weight groups), handed out a share per tile.
struct Prefetch {
  const char* base = nullptr;
  int64_t stride = 0, lines = 0;
  int regions = 0;
  int64_t total() const { return regions * lines; }
};

// MT tokens × NG groups (`ws` floats apart) over columns [0, kc): resume the chains from out (or
// +0 when `first`), run them, store them back; only the lanes in m (a group cut by the range).
// Prefetches lines [p0, p1) of pf, one per column from the first.
template <int MT, int NG>
void Tile(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w, int64_t ws, int64_t kc, bool first,
          __mmask16 m, const Prefetch& pf, int64_t p0, int64_t p1) {
  __m512 c[MT][NG];
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < NG; ++j)
      c[i][j] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, out + i * ldo + j * kG);
  const auto step = [&](int64_t k) {
    __m512 wv[NG];
#pragma GCC unroll 3
    for (int j = 0; j < NG; ++j) wv[j] = _mm512_loadu_ps(w + j * ws + k * kG);
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const __m512 b = _mm512_set1_ps(x[i * ldx + k]);
#pragma GCC unroll 3
      for (int j = 0; j < NG; ++j) c[i][j] = _mm512_fmadd_ps(b, wv[j], c[i][j]);
    }
  };
  int64_t k = 0;
  // Spread evenly over the tile's columns (one every `every`): a burst of hundreds ahead of the
  // tile would stall on the miss buffers, and even one per column kept so many DRAM misses in
  // flight that the tile's own loads from L2 waited for a fill buffer.
  if (p1 > p0) {
    int64_t r = p0 / pf.lines, off = p0 % pf.lines;
    const char* line = pf.base + r * pf.stride + off * 64;
    const int64_t every = std::max<int64_t>(1, kc / (p1 - p0));
    for (int64_t p = p0; p < p1 && k < kc; ++p) {
      _mm_prefetch(line, _MM_HINT_T1);
      line += 64;
      if (++off == pf.lines) off = 0, line = pf.base + ++r * pf.stride;
      const int64_t stop = std::min(kc, k + every);
      for (; k < stop; ++k) step(k);
    }
  }
#pragma GCC unroll 2
  for (; k < kc; ++k) step(k);
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < NG; ++j) _mm512_mask_storeu_ps(out + i * ldo + j * kG, m, c[i][j]);
}

using TileFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t, bool, __mmask16,
                        const Prefetch&, int64_t, int64_t);

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

// The column block from k0 (of `cols`) of groups [g, g + ng) of weight w, for a Prefetch.
template <class T>
Prefetch BlockAt(const T* w, int64_t cols, int64_t g, int64_t ng, int64_t k0) {
  const int64_t bytes = static_cast<int64_t>(sizeof(T));
  return Prefetch{reinterpret_cast<const char*>(w + (g * cols + k0) * kG), cols * kG * bytes,
                  (std::min(kKBlock, cols - k0) * kG * bytes + 63) / 64, static_cast<int>(ng)};
}

// Prefetches go to a block's last kPrefetchTiles token tiles: much earlier, the x rows streaming
// through L2 would evict the lines before their block runs. 16 with the lines spread over each
// tile's columns (a 2048-column block: one every 5) ran 1.04-1.09x as fast on 2 threads as 8
// with one line per column from the tile's start (0.90-0.95 of the FMA loop against 0.88-0.91;
// 32 spread: 0.90-0.94), and on one thread 0.94 against 0.82-0.89 (2026-12-01, interleaved).
constexpr int kPrefetchTiles = 16;

// Groups [g, g + ng) for every token, lanes m. Its blocks after the first are prefetched while
// the one before runs, and `then` (the first block of what this thread runs next) while its
// last one runs, so that no block's first tile waits on DRAM.
template <class L>
void Chunk(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const typename L::T* w, int64_t cols,
           int64_t g, int ng, __mmask16 m, float* buf, const Prefetch& then) {
  const int64_t gvals = cols * kG;
  const int64_t tiles = (n + kTileTokens - 1) / kTileTokens;
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
    // These groups' next columns, or after the last block `then`.
    const Prefetch next = k0 + kKBlock < cols ? BlockAt(w, cols, g, ng, k0 + kKBlock) : then;
    const int64_t ptiles = std::min<int64_t>(kPrefetchTiles, tiles);
    const int64_t per_tile = (next.total() + ptiles - 1) / ptiles;
    const TileFn full = kTiles[ng - 1][kTileTokens - 1];
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t i = t * kTileTokens;
      const int64_t p0 = std::min(next.total(), std::max<int64_t>(0, t - (tiles - ptiles)) * per_tile);
      const int64_t p1 = t >= tiles - ptiles ? std::min(next.total(), p0 + per_tile) : p0;
      const int mt = static_cast<int>(std::min<int64_t>(kTileTokens, n - i));
      (mt == kTileTokens ? full : kTiles[ng - 1][mt - 1])(out + i * ldo + g * kG, ldo, x + i * ldx + k0, ldx, wp, ws,
                                                          kc, k0 == 0, m, next, p0, p1);
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
  // A group cut by the range (its first or last) runs alone, masked; the whole groups between
  // run in chunks of kTileGroups. Each chunk prefetches the next one's first block, the last one
  // the range this thread is likely to run next (the backend's hint).
  int64_t g0 = r0 / kG, g1 = (r1 + kG - 1) / kG;
  const bool cut0 = r0 % kG != 0, cut1 = r1 % kG != 0 && g1 - g0 > (cut0 ? 1 : 0);
  struct Piece {  // groups [g, end), lanes m
    int64_t g, end;
    __mmask16 m;
  };
  Piece pieces[3] = {};  // at most: a cut first group, the whole groups, a cut last group
  int np = 0;
  if (cut0) pieces[np++] = {g0, g0 + 1, GroupMask(g0, r0, r1)}, ++g0;
  if (cut1) --g1;
  if (g1 > g0) pieces[np++] = {g0, g1, static_cast<__mmask16>(0xffff)};
  if (cut1) pieces[np++] = {g1, g1 + 1, GroupMask(g1, r0, r1)};
  // The first chunk's first block of groups [g, end).
  const auto first_block = [&](int64_t g, int64_t end) {
    return BlockAt(wd, w.cols, g, std::min<int64_t>(kTileGroups, end - g), 0);
  };
  Prefetch after;  // the hinted next range's
  if (scratch.next_r1 > scratch.next_r0) after = first_block(scratch.next_r0 / kG, (scratch.next_r1 + kG - 1) / kG);
  for (int p = 0; p < np; ++p) {
    const Piece& pc = pieces[p];
    for (int64_t g = pc.g; g < pc.end; g += kTileGroups) {
      const int ng = static_cast<int>(std::min<int64_t>(kTileGroups, pc.end - g));
      const Prefetch then = g + ng < pc.end ? first_block(g + ng, pc.end)
                            : p + 1 < np    ? first_block(pieces[p + 1].g, pieces[p + 1].end)
                                            : after;
      Chunk<L>(out, ldo, x, ldx, n, wd, w.cols, g, ng, pc.m, buf, then);
    }
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
