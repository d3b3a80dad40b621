#include "core/backend/cpu/kernels.h"

#include "core/backend/cpu/kernels_avx2.h"
#include "core/backend/cpu/kernels_avx512.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace strata::cpu {

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAuto:
      return "auto";
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

Isa DetectIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  // F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
      return Isa::kAvx512;
    }
    return Isa::kAvx2;
  }
#endif
  return Isa::kPortable;
}

bool IsaSupported(Isa isa) {
  const Isa best = DetectIsa();
  switch (isa) {
    case Isa::kAuto:
    case Isa::kPortable:
      return true;
    case Isa::kAvx2:
      return best == Isa::kAvx2 || best == Isa::kAvx512;
    case Isa::kAvx512:
      return best == Isa::kAvx512;
  }
  return false;
}

Isa ResolveIsa(Isa requested) {
  if (requested == Isa::kAuto) return DetectIsa();
  return IsaSupported(requested) ? requested : Isa::kPortable;
}

const Kernels& GetKernels(Isa isa) {
#if defined(__x86_64__)
  switch (ResolveIsa(isa)) {
    case Isa::kAvx512:
      return Avx512Kernels();
    case Isa::kAvx2:
      return Avx2Kernels();
    default:
      break;
  }
#endif
  return PortableKernels();
}

#if defined(__x86_64__)
const Kernels& Avx2Kernels() {
  static const Kernels k = [] {
    Kernels t;
    t.isa = Isa::kAvx2;
    t.q8_groups = true;
    t.float_groups = true;
    avx2::InitQ8Tables();
    t.matmul_float_scratch = avx2::MatMulFloatScratch;
    t.matmul_float = avx2::MatMulFloat;
    t.quantize_q8 = avx2::QuantizeQ8;
    t.matmul_q8_scratch = avx2::MatMulQ8Scratch;
    t.matmul_q8 = avx2::MatMulQ8;
    t.attend = avx2::Attend;
    t.swiglu = avx2::SwiGlu;
    return t;
  }();
  return k;
}

const Kernels& Avx512Kernels() {
  static const Kernels k = [] {
    Kernels t = Avx2Kernels();  // same layouts, same bits; prefill products replaced
    t.isa = Isa::kAvx512;
    t.matmul_float_scratch = avx512::MatMulFloatScratch;
    t.matmul_float = avx512::MatMulFloat;
    t.matmul_q8_scratch = avx512::MatMulQ8Scratch;
    t.matmul_q8 = avx512::MatMulQ8;
    t.attend = avx512::Attend;
    t.attend_run = 4;
    return t;
  }();
  return k;
}
#endif

}  // namespace strata::cpu
