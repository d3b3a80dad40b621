// strata-kernel-bench: one CpuBackend::MatMul shape in a loop, for tuning the kernels.
//
//   strata-kernel-bench [--dtype f32|f16|bf16|q8_0] [--rows 5632] [--cols 2048] [--n 1]
//                       [--threads 2] [--reps 20] [--isa auto|portable|avx2] [--hot 1] [--prepare 0]
//
// Prints weight GB/s (weight bytes / time: the figure that matters for decode) and GFLOP/s
// (2·n·rows·cols / time: the figure that matters for prefill). Several weight copies are
// cycled through so that, like a real model, the weight never sits in cache. With one thread the
// time is the process's CPU time, which stays meaningful on a busy machine.
// --prepare 0 multiplies the weight as stored in the file (Q8_0, F32 and F16 rows, not repacked).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/backend/cpu/cpu_backend.h"

namespace strata {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the whole process: with one thread, the time it really ran, even when the machine
// is shared and the thread gets preempted.
double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int Main(int argc, char** argv) {
  std::string dtype = "q8_0", isa = "auto";
  int64_t rows = 5632, cols = 2048;
  int n = 1, threads = 2, reps = 20;
  bool hot = false;  // one weight copy, so it stays in cache: measures the kernel's arithmetic
  bool prepare = true;  // false: the weight as in the file (Q8_0 not repacked), to compare layouts
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--dtype")
      dtype = v;
    else if (a == "--rows")
      rows = std::atoll(v.c_str());
    else if (a == "--cols")
      cols = std::atoll(v.c_str());
    else if (a == "--n")
      n = std::atoi(v.c_str());
    else if (a == "--threads")
      threads = std::atoi(v.c_str());
    else if (a == "--reps")
      reps = std::atoi(v.c_str());
    else if (a == "--isa")
      isa = v;
    else if (a == "--hot")
      hot = v == "1";
    else if (a == "--prepare")
      prepare = v == "1";
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  DType t;
  if (!ParseDType(dtype, &t)) return 2;
  CpuBackendOptions o{threads};
  o.isa = isa == "portable" ? cpu::Isa::kPortable : isa == "avx2" ? cpu::Isa::kAvx2 : cpu::Isa::kAuto;
  CpuBackend backend(o);
  // Enough copies to exceed the L3 cache (32 MiB here) several times over.
  const int64_t wbytes = RowBytes(t, cols) * rows;
  const int copies = hot ? 1 : static_cast<int>(std::max<int64_t>(1, (256LL << 20) / wbytes));
  std::vector<std::vector<uint8_t>> ws(copies, std::vector<uint8_t>(wbytes));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> row(cols);
  for (auto& w : ws) {
    for (int64_t r = 0; r < rows; ++r) {
      for (float& v : row) v = d(rng);
      QuantizeRow(t, row.data(), w.data() + r * RowBytes(t, cols), cols);
    }
  }
  // Activations live in 64-byte aligned backend buffers in the engine; do the same here.
  auto xbuf = backend.Allocate(static_cast<size_t>(n) * cols * sizeof(float));
  auto obuf = backend.Allocate(static_cast<size_t>(n) * rows * sizeof(float));
  if (!xbuf.ok() || !obuf.ok()) return 1;
  float* x = (*xbuf)->f32();
  float* out = (*obuf)->f32();
  for (int64_t i = 0; i < n * cols; ++i) x[i] = d(rng);
  // As the engine loads them: prepared by the backend (Q8_0 repacked for the AVX2 kernels).
  std::vector<Tensor> prepared;
  for (auto& w : ws) {
    const Tensor host{t, rows, cols, w.data()};
    auto p = prepare ? backend.PrepareWeight(host) : host;
    if (!p.ok()) return 1;
    prepared.push_back(*p);
  }
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < reps; ++r) {
    const Tensor& w = prepared[r % copies];
    const double t0 = Now(), c0 = CpuNow();
    backend.MatMul(out, x, w, n);
    best = std::min(best, Now() - t0);
    best_cpu = std::min(best_cpu, (CpuNow() - c0) / threads);
  }
  if (threads == 1) best = best_cpu;
  std::printf("%s %s rows %lld cols %lld n %d threads %d: %.3f ms, weight %.2f GB/s, %.1f GFLOP/s\n",
              cpu::IsaName(backend.isa()), dtype.c_str(), static_cast<long long>(rows),
              static_cast<long long>(cols), n, threads, best * 1e3, wbytes / best / 1e9,
              2.0 * n * rows * cols / best / 1e9);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) { return strata::Main(argc, argv); }
