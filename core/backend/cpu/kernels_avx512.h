// The AVX-512 kernels (x86-64 only): AVX-512 F/BW/VL with VNNI, on top of the AVX2 set. Their
// own code: F32/F16 prefill of the repacked groups (16-wide FMAs), every product of repacked
// Q8_0 groups (VNNI) and prefill attention over runs of 4 tokens; everything else, F32/F16
// decode included (bound by memory, which AVX2 already reads at its limit), is the AVX2 kernel.
// The layouts and canonical orders are the AVX2 kernels' own, so both instruction sets give every
// output the same bits. Compiled with a target pragma; Avx512Kernels() is only handed out after
// DetectIsa() found the instructions.
#pragma once

#include "core/backend/cpu/kernels.h"

#if defined(__x86_64__)
namespace strata::cpu::avx512 {

size_t MatMulFloatScratch(int n, int64_t cols);
void MatMulFloat(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w, int64_t r0,
                 int64_t r1, KernelScratch scratch);
size_t MatMulQ8Scratch(int n, const Tensor& w);
void MatMulQ8(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
              KernelScratch scratch);
void Attend(float* out, const float* q, int64_t ldq, int n_tok, int n_q, const float* k, const float* v,
            int64_t kv_dim, const int32_t* block_table, int32_t block_size, int ctx0, int hd, float scale,
            float* scratch);

}  // namespace strata::cpu::avx512
#endif
