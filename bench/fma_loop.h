// The register-only FMA loop both benches set prefill against (strata-cpu-bench's peak,
// strata-kernel-bench's `peak` subject): 12 independent chains (2 FMA pipes × 4 cycles latency
// need at least 8) with the widest FMA the CPU has, 16 floats where it has AVX-512, else 8.
// For one bench translation unit each (an anonymous namespace).
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace strata {
namespace {

bool HaveAvx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool HaveAvx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

// The vector width of the FMAs FmaLoop runs: 16 floats with AVX-512, 8 with AVX2, 0 without.
int PeakLanes() { return HaveAvx512() ? 16 : HaveAvx2() ? 8 : 0; }

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float FmaLoopAvx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) float FmaLoopAvx512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_cvtss_f32(s);
}
#endif

// `iters` iterations of the widest loop (12 FMAs of PeakLanes() lanes each); without AVX2, a
// scalar chain of `iters` FMAs. FmaLoopFlops() is one iteration's FLOPs.
float FmaLoop(int64_t iters) {
#if defined(__x86_64__)
  if (HaveAvx512()) return FmaLoopAvx512(iters);
  if (HaveAvx2()) return FmaLoopAvx2(iters);
#endif
  float a = 1;
  for (int64_t i = 0; i < iters; ++i) a = a * 0.999999f + 1e-6f;
  return a;
}
double FmaLoopFlops() { return PeakLanes() > 0 ? 12.0 * 2 * PeakLanes() : 2; }

}  // namespace
}  // namespace strata
