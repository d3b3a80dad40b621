// The CPU backend's repacked Q8_0 layout (Layout::kQ8_0Groups8), made once at load time by
// CpuBackend::PrepareWeight for the AVX2 kernels.
//
// Why: in GGUF's layout one Q8_0 row's 32 values of a block sit in one vector, so every (token,
// row, block) needs its own int→float conversion and scaling, and a horizontal sum at the end.
// Here a vector holds 4 consecutive values of 8 rows, so the byte multiply-adds of 8 rows land in
// 8 int32 lanes: a whole block is summed in integers, and one conversion and one FMA per 8 rows
// scale it. That is ~40% fewer instructions per multiply-add, and the quants are 32-byte aligned.
//
// A weight of R rows and C columns (nb = C/32 blocks per row) becomes G = ⌈R/8⌉ groups of 8 rows,
// each Q8GroupBytes(C) bytes; rows past R in the last group are zeros, so every row of every
// weight takes the same kernel and the same canonical order (a tensor-parallel shard of a weight
// gives each row the bits the whole weight gives it). A group is one sequential stream of block
// pairs (blocks 2p and 2p + 1, 544 bytes):
//   d  [2][8 rows]            f16    d[b%2][l] = scale of row 8g + l, block b
//   qs [2][8 k4][8 rows][4]   int8   qs[b%2][k4][l][t] = q[8g + l][32b + 4·k4 + t]
// (an odd last block: its 16 bytes of scales, 16 bytes of padding, its 256 quants). The same
// bytes as the Q8_0 blocks (plus those 16 per group when nb is odd, and the last group's padding
// rows), so the repacked weight takes the file's size; quants stay 32-byte aligned, and each
// group is read as one stream, which this memory system serves faster than quants and scales as
// two (docs/cpu-backend.md).
#pragma once

#include <cstdint>

#include "core/tensor/tensor.h"

namespace strata::cpu {

constexpr int kQ8GroupRows = 8;
constexpr int64_t kQ8GroupScaleBytes = kQ8GroupRows * 2;        // 16: one block's scales of 8 rows
constexpr int64_t kQ8GroupQuantBytes = kQ8GroupRows * kQ8Block;  // 256: one block's quants of 8 rows
constexpr int64_t kQ8GroupPairBytes = 2 * (kQ8GroupScaleBytes + kQ8GroupQuantBytes);  // 544

// Where block b's scales and quants start, from the start of its group.
inline int64_t Q8GroupScalesAt(int64_t b) { return b / 2 * kQ8GroupPairBytes + b % 2 * kQ8GroupScaleBytes; }
inline int64_t Q8GroupQuantsAt(int64_t b) {
  return b / 2 * kQ8GroupPairBytes + 2 * kQ8GroupScaleBytes + b % 2 * kQ8GroupQuantBytes;
}
// Bytes of one group of a weight with `cols` columns.
inline int64_t Q8GroupBytes(int64_t cols) {
  const int64_t nb = cols / kQ8Block;
  return nb / 2 * kQ8GroupPairBytes + nb % 2 * (2 * kQ8GroupScaleBytes + kQ8GroupQuantBytes);
}
inline int64_t Q8Groups(int64_t rows) { return (rows + kQ8GroupRows - 1) / kQ8GroupRows; }
// Bytes of the whole repacked weight.
inline int64_t Q8GroupsBytes(int64_t rows, int64_t cols) { return Q8Groups(rows) * Q8GroupBytes(cols); }

// Writes groups [g0, g1) of the Q8_0 weight `src` (Layout::kRows) into `dst` (the whole
// repacked weight's memory).
void RepackQ8Groups(const Tensor& src, int64_t g0, int64_t g1, void* dst);

}  // namespace strata::cpu
