// The CPU backend's compute kernels, one table per instruction set, chosen once at startup.
//
// Every kernel computes each output element with one fixed sequence of floating-point operations
// that depends only on that element's inputs and on the sizes of the weight, never on n, on the
// tile or block an element falls in, nor on the thread that computes it. That is what makes a
// token's result bit-identical whether it runs alone or in a batch of 512, on 1 thread or 8.
// The canonical orders are spelled out next to each kernel (docs/cpu-backend.md has the why).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/backend/backend.h"
#include "core/tensor/tensor.h"

namespace strata::cpu {

enum class Isa {
  kAuto,      // the best this CPU supports
  kPortable,  // plain C++ (what the compiler makes of it for the build's target)
  kAvx2,      // x86-64 AVX2 + FMA + F16C, compiled with a target pragma, selected at run time
  kAvx512,    // kAvx2 plus AVX-512 F/BW/VL and VNNI: its own prefill products, the rest AVX2's
};
const char* IsaName(Isa isa);
// The best instruction set this CPU (and this build) supports.
Isa DetectIsa();
// Whether this CPU (and this build) can run `isa`'s kernels.
bool IsaSupported(Isa isa);
// kAuto becomes DetectIsa(); an unsupported request falls back to kPortable.
Isa ResolveIsa(Isa requested);

// Activations quantized to Q8_0-style blocks for integer dot products with Q8_0 weights:
// row i has cols/32 blocks; block b holds qs[32] with x ≈ d * q.
struct Q8Rows {
  int8_t* qs = nullptr;    // [n, cols]
  float* d = nullptr;      // [n, cols / 32]
  int64_t cols = 0;
  uint8_t* abs = nullptr;  // [n, cols] |qs|, kept beside qs for the byte multiply's sign trick
  const int8_t* row_qs(int64_t i) const { return qs + i * cols; }
  const uint8_t* row_abs(int64_t i) const { return abs + i * cols; }
  const float* row_d(int64_t i) const { return d + i * (cols / kQ8Block); }
};

// Scratch a kernel may use, owned by the calling thread; grown by the caller, never by a kernel.
struct KernelScratch {
  float* data = nullptr;
  size_t floats = 0;
  // A hint: rows [next_r0, next_r1) of the same weight are the piece this thread will likely
  // multiply next (empty: none known), which a prefill kernel may prefetch while it finishes.
  int64_t next_r0 = 0, next_r1 = 0;
};

struct Kernels {
  Isa isa = Isa::kPortable;
  // matmul_q8 also takes Q8_0 weights repacked into groups of 8 rows (q8_groups.h), and is faster
  // on them: the backend repacks its Q8_0 weights when it prepares them.
  bool q8_groups = false;
  // matmul_float also takes F32 and F16 weights repacked into k-major groups of 16 rows
  // (float_groups.h), with a different canonical order (one FMA chain per output).
  bool float_groups = false;

  // Floats of scratch MatMulFloat needs for n token rows of a weight with `cols` columns.
  size_t (*matmul_float_scratch)(int n, int64_t cols);
  // out[i * ldo + r] = x[i * ldx + :] · w.row(r) for i in [0, n), r in [r0, r1); w is F32, F16
  // or BF16.
  void (*matmul_float)(float* out, int64_t ldo, const float* x, int64_t ldx, int n, const Tensor& w,
                       int64_t r0, int64_t r1, KernelScratch scratch);

  // Quantizes rows [i0, i1) of x[n, q.cols] (row stride q.cols) into q: per block of 32,
  // d = max|x| / 127 and q = round-half-even(x * (1 / d)) (q = 0 when d = 0); q.abs gets |q|.
  void (*quantize_q8)(Q8Rows q, const float* x, int64_t i0, int64_t i1);
  // Floats of scratch MatMulQ8 needs for n token rows of the Q8_0 weight w (none in groups).
  size_t (*matmul_q8_scratch)(int n, const Tensor& w);
  // out[i * ldo + r] = Σ_b (d_w[r,b] · d_x[i,b]) · Σ_k q_x[i,b,k] · q_w[r,b,k] for w Q8_0, in
  // Layout::kRows or, where q8_groups is set, in Layout::kQ8_0Groups8.
  void (*matmul_q8)(float* out, int64_t ldo, const Q8Rows& x, int n, const Tensor& w, int64_t r0, int64_t r1,
                    KernelScratch scratch);

  // Causal attention of n_tok consecutive tokens of one sequence for the `n_q` query heads that
  // share one KV head; token j sees positions [0, ctx0 + j): out[j * ldq + h * hd ..] =
  // softmax(scale · q_jh · K[0..ctx0 + j)ᵀ) · V[0..ctx0 + j) for h < n_q, with q_jh at
  // q + j * ldq + h * hd and the K/V rows of position p at k + slot(p) * kv_dim (kv_off already
  // added), slot from the block table. A token's result does not depend on n_tok.
  // scratch holds AttendScratch(n_tok, n_q, ctx0, hd) floats.
  void (*attend)(float* out, const float* q, int64_t ldq, int n_tok, int n_q, const float* k, const float* v,
                 int64_t kv_dim, const int32_t* block_table, int32_t block_size, int ctx0, int hd, float scale,
                 float* scratch);
  // How many consecutive tokens the backend hands `attend` at once (prefill): its kernel shares
  // each K row between them. Speed only: a token's bits do not depend on its run.
  int attend_run = 2;

  // out[i] = silu(gate[i]) * up[i].
  void (*swiglu)(float* out, const float* gate, const float* up, int64_t count);
};

// Floats of scratch `attend` needs (any kernel table).
inline size_t AttendScratch(int n_tok, int n_q, int ctx0, int hd) {
  return static_cast<size_t>(n_tok) * n_q * (static_cast<size_t>(ctx0) + n_tok + hd);
}

// The kernel table for `isa` (kAuto resolved first).
const Kernels& GetKernels(Isa isa);

// Tables defined by each instruction set's files.
const Kernels& PortableKernels();
#if defined(__x86_64__)
const Kernels& Avx2Kernels();
const Kernels& Avx512Kernels();
#endif

}  // namespace strata::cpu
