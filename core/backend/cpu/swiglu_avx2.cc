// out = silu(gate) · up with a vector exp (the scalar libm call would cost more than the MLP's
// memory traffic in prefill).
#if defined(__x86_64__)

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

namespace strata::cpu::avx2 {

void SwiGlu(float* out, const float* gate, const float* up, int64_t count) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    // silu(g) = g / (1 + e^-g)
    const __m256 den = _mm256_add_ps(one, Exp(_mm256_xor_ps(g, sign)));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, den), _mm256_loadu_ps(up + i)));
  }
  if (i < count) {
    const __m256i mask = TailMask(static_cast<int>(count - i));
    const __m256 g = _mm256_maskload_ps(gate + i, mask);
    const __m256 den = _mm256_add_ps(one, Exp(_mm256_xor_ps(g, sign)));
    _mm256_maskstore_ps(out + i, mask,
                        _mm256_mul_ps(_mm256_div_ps(g, den), _mm256_maskload_ps(up + i, mask)));
  }
}

}  // namespace strata::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // __x86_64__
