// The AVX2 + FMA + F16C kernels (x86-64 only). Their .cc files are compiled for that target with a
// pragma, so the rest of the build stays portable; Avx2Kernels() is only handed out after
// DetectIsa() found the instructions.
#pragma once

#include "core/backend/cpu/kernels.h"

#if defined(__x86_64__)
namespace strata::cpu::avx2 {

size_t MatMulFloatScratch(int n, int64_t cols);
void MatMulFloat(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                 int64_t r1, KernelScratch scratch);
void InitQ8Tables();  // once, before MatMulQ8 runs
void QuantizeQ8(Q8Rows q, const float* x, int64_t i0, int64_t i1);
size_t MatMulQ8Scratch(int n, const Tensor& w);
void MatMulQ8(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
              KernelScratch scratch);
// MatMulFloat for an F32 or F16 weight in Layout::kFloatGroups16 (float_groups.h), and its scratch.
size_t MatMulFloatGroupsScratch();
void MatMulFloatGroups(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                       int64_t r1, KernelScratch scratch);
// MatMulQ8 for a weight in Layout::kQ8_0Groups8 (q8_groups.h).
void MatMulQ8Groups(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
                    KernelScratch scratch);
void Attend(float* out, const float* q, int64_t ldq, int n_tok, int n_q, const float* k, const float* v,
            int64_t kv_dim, const int32_t* block_table, int32_t block_size, int ctx0, int hd, float scale,
            float* scratch);
void SwiGlu(float* out, const float* gate, const float* up, int64_t count);

}  // namespace strata::cpu::avx2
#endif
