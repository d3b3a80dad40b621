#include "core/backend/cpu/kernels.h"

#include "core/backend/cpu/kernels_avx2.h"

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
    return Isa::kAvx2;
  }
#endif
  return Isa::kPortable;
}

Isa ResolveIsa(Isa requested) {
  const Isa best = DetectIsa();
  if (requested == Isa::kAuto) return best;
  if (requested == Isa::kAvx2 && best != Isa::kAvx2) return Isa::kPortable;
  return requested;
}

const Kernels& GetKernels(Isa isa) {
#if defined(__x86_64__)
  if (ResolveIsa(isa) == Isa::kAvx2) return Avx2Kernels();
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
#endif

}  // namespace strata::cpu
