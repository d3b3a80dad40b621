// strata-kernel-bench: one CpuBackend::MatMul shape in a loop, for tuning the kernels.
//
//   strata-kernel-bench [--dtype f32|f16|bf16|q8_0|read[,...]] [--rows 5632] [--cols 2048] [--n 1]
//                       [--threads 2] [--reps 20] [--isa auto|portable|avx2|avx512] [--hot 1] [--prepare 0]
//
// Prints weight GB/s (weight bytes / time: the figure that matters for decode) and GFLOP/s
// (2·n·rows·cols / time: the figure that matters for prefill). Several weight copies are
// cycled through so that, like a real model, the weight never sits in cache. With one thread the
// time is the process's CPU time, which stays meaningful on a busy machine.
// --prepare 0 multiplies the weight as stored in the file (Q8_0, F32 and F16 rows, not repacked).
//
// Several dtypes (`--dtype f32,f16,q8_0,read`) are interleaved call by call, each --reps times,
// and each gets its median against the first's: this machine's read speed moves by ±20% from
// one second to the next, so only figures taken in the same moments compare. `read` is no
// MatMul but a plain read of as many bytes as the F32 weight (each thread's share as 4
// far-apart streams with a software prefetch, the best plain pattern of strata-cpu-bench): the
// memory system's own speed in those moments. `peak` is no MatMul either but the FMA loop of
// strata-cpu-bench's peak (the widest FMA the CPU has) doing as many FLOPs as one MatMul: each
// MatMul is set against it round by round ("of peak"), the figure prefill tuning wants.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/fma_loop.h"
#include "core/backend/cpu/cpu_backend.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

#if defined(__x86_64__)
// Sums n floats as 4 far-apart streams, each prefetched 2 KiB ahead.
__attribute__((target("avx2"))) float Read4(const float* p, int64_t n) {
  const int64_t gap = n / 4;
  __m256 acc[4][2] = {};
  for (int64_t i = 0; i + 16 <= gap; i += 16) {
    for (int s = 0; s < 4; ++s) {
      _mm_prefetch(reinterpret_cast<const char*>(p + s * gap + i + 512), _MM_HINT_T0);
      acc[s][0] = _mm256_add_ps(acc[s][0], _mm256_loadu_ps(p + s * gap + i));
      acc[s][1] = _mm256_add_ps(acc[s][1], _mm256_loadu_ps(p + s * gap + i + 8));
    }
  }
  alignas(32) float l[8];
  __m256 t = _mm256_setzero_ps();
  for (int s = 0; s < 4; ++s) t = _mm256_add_ps(t, _mm256_add_ps(acc[s][0], acc[s][1]));
  _mm256_store_ps(l, t);
  return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

#else
float Read4(const float* p, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}
#endif

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  for (size_t p = 0;;) {
    const size_t e = s.find(',', p);
    out.push_back(s.substr(p, e - p));
    if (e == std::string::npos) return out;
    p = e + 1;
  }
}

// One thing to time: a MatMul of one dtype's weight copies, or a plain read.
struct Subject {
  std::string name;
  int64_t bytes = 0;  // weight bytes per call
  std::vector<std::vector<uint8_t>> storage;
  std::vector<Tensor> weights;  // as the engine loads them (prepared), cycled through
  std::vector<double> times;
};

int Main(int argc, char** argv) {
  std::string dtypes = "q8_0", isa = "auto";
  int64_t rows = 5632, cols = 2048;
  int n = 1, threads = 2, reps = 20;
  bool hot = false;  // one weight copy, so it stays in cache: measures the kernel's arithmetic
  bool prepare = true;  // false: the weight as in the file (Q8_0 not repacked), to compare layouts
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--dtype")
      dtypes = v;
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
  if (rows <= 0 || cols <= 0 || cols % kQ8Block != 0 || n <= 0 || threads <= 0 || reps <= 0) {
    std::fprintf(stderr, "--rows, --n, --threads, --reps must be positive and --cols a positive multiple of 32\n");
    return 2;
  }
  CpuBackendOptions o{threads};
  if (isa == "portable") {
    o.isa = cpu::Isa::kPortable;
  } else if (isa == "avx2") {
    o.isa = cpu::Isa::kAvx2;
  } else if (isa == "avx512") {
    o.isa = cpu::Isa::kAvx512;
  } else if (isa != "auto") {
    std::fprintf(stderr, "--isa must be auto, portable, avx2 or avx512, got %s\n", isa.c_str());
    return 2;
  }
  if (!cpu::IsaSupported(o.isa)) {
    std::fprintf(stderr, "--isa %s: this CPU does not have it (best: %s)\n", isa.c_str(),
                 cpu::IsaName(cpu::DetectIsa()));
    return 2;
  }
  CpuBackend backend(o);
  // Activations live in 64-byte aligned backend buffers in the engine; do the same here.
  auto xbuf = backend.Allocate(static_cast<size_t>(n) * cols * sizeof(float));
  auto obuf = backend.Allocate(static_cast<size_t>(n) * rows * sizeof(float));
  if (!xbuf.ok() || !obuf.ok()) return 1;
  float* x = (*xbuf)->f32();
  float* out = (*obuf)->f32();
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  for (int64_t i = 0; i < n * cols; ++i) x[i] = d(rng);

  std::vector<Subject> subjects;
  for (const std::string& name : Split(dtypes)) {
    Subject s;
    s.name = name;
    const bool read = name == "read";
    if (name == "peak") {  // no weight: the FMA loop, as many FLOPs as one MatMul
      subjects.push_back(std::move(s));
      continue;
    }
    DType t = DType::kF32;
    if (!read && !ParseDType(name, &t)) {
      std::fprintf(stderr, "unknown dtype %s\n", name.c_str());
      return 2;
    }
    s.bytes = RowBytes(t, cols) * rows;
    // Enough copies to exceed the L3 cache (32 MiB here) several times over.
    const int copies = hot ? 1 : static_cast<int>(std::max<int64_t>(1, (256LL << 20) / s.bytes));
    s.storage.assign(copies, std::vector<uint8_t>(s.bytes));
    std::vector<float> row(cols);
    for (auto& w : s.storage) {
      for (int64_t r = 0; r < rows; ++r) {
        for (float& v : row) v = d(rng);
        QuantizeRow(t, row.data(), w.data() + r * RowBytes(t, cols), cols);
      }
      const Tensor host{t, rows, cols, w.data()};
      auto p = prepare && !read ? backend.PrepareWeight(host) : host;
      if (!p.ok()) {
        std::fprintf(stderr, "%s\n", std::string(p.status().message()).c_str());
        return 1;
      }
      s.weights.push_back(*p);
    }
    subjects.push_back(std::move(s));
  }

  const double flops = 2.0 * n * rows * cols;
  volatile float sink = 0;
  auto run = [&](const Subject& s, int call) {
    if (s.name == "peak") {
      const int64_t iters = static_cast<int64_t>(flops / threads / FmaLoopFlops());
      backend.HostParallelFor(threads, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) sink = sink + FmaLoop(iters);
      });
      return;
    }
    const Tensor& w = s.weights[call % s.weights.size()];
    if (s.name != "read") return backend.MatMul(out, x, w, n);
    const float* p = static_cast<const float*>(w.data);
    const int64_t per = s.bytes / 4 / threads / 64 * 64;
    backend.HostParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) out[t] = Read4(p + t * per, per);
    });
  };

  if (subjects.size() == 1) {  // the best call, as CPU time with one thread
    const Subject& s = subjects[0];
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < reps; ++r) {
      const double t0 = Now(), c0 = CpuNow();
      run(s, r);
      best = std::min(best, Now() - t0);
      best_cpu = std::min(best_cpu, (CpuNow() - c0) / threads);
    }
    if (threads == 1) best = best_cpu;
    std::printf("%s %s rows %lld cols %lld n %d threads %d: %.3f ms, weight %.2f GB/s, %.1f GFLOP/s\n",
                cpu::IsaName(backend.isa()), s.name.c_str(), static_cast<long long>(rows),
                static_cast<long long>(cols), n, threads, best * 1e3, s.bytes / best / 1e9,
                2.0 * n * rows * cols / best / 1e9);
    return 0;
  }

  // Interleaved: call r of every subject in turn, starting from a different one each round.
  const size_t ns = subjects.size();
  for (int r = 0; r < reps; ++r) {
    for (size_t j = 0; j < ns; ++j) {
      Subject& s = subjects[(j + r) % ns];
      const double t0 = Now();
      run(s, r);
      s.times.push_back(Now() - t0);
    }
  }
  std::printf("%s rows %lld cols %lld n %d threads %d, %d interleaved calls each (medians; p10-p90):\n",
              cpu::IsaName(backend.isa()), static_cast<long long>(rows), static_cast<long long>(cols), n, threads,
              reps);
  // With `peak` among the subjects, each MatMul's GFLOP/s is also set against the FMA peak of the
  // same rounds: the median over rounds of (peak's time / its time), as the two did equal FLOPs.
  const Subject* peak = nullptr;
  for (const Subject& s : subjects) {
    if (s.name == "peak") peak = &s;
  }
  const Subject* first = nullptr;
  for (const Subject& s : subjects) {
    if (s.bytes > 0 && first == nullptr) first = &s;
  }
  for (const Subject& s : subjects) {
    std::vector<double> sorted = s.times;
    std::sort(sorted.begin(), sorted.end());
    const double med = sorted[sorted.size() / 2];
    std::printf("  %-5s %7.3f ms", s.name.c_str(), med * 1e3);
    if (s.bytes > 0) {
      const double gbs = s.bytes / med / 1e9;
      std::printf("  %6.2f GB/s (%.2f-%.2f)", gbs, s.bytes / sorted[sorted.size() * 9 / 10] / 1e9,
                  s.bytes / sorted[sorted.size() / 10] / 1e9);
    }
    if (s.name != "read") std::printf("  %7.1f GFLOP/s", flops / med / 1e9);
    if (s.bytes > 0) {
      std::vector<double> f = first->times;
      std::sort(f.begin(), f.end());
      std::printf("  %.3f of %s", s.bytes / med / (first->bytes / f[f.size() / 2]), first->name.c_str());
    }
    if (peak != nullptr && &s != peak && s.name != "read") {
      std::vector<double> ratio;
      for (size_t r = 0; r < s.times.size(); ++r) ratio.push_back(peak->times[r] / s.times[r]);
      std::sort(ratio.begin(), ratio.end());
      std::printf("  %.3f of peak", ratio[ratio.size() / 2]);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) { return strata::Main(argc, argv); }
