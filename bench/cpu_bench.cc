// strata-cpu-bench: end-to-end CPU decode and prefill speed of GGUF models, set against this
// machine's own limits measured in the same run.
//
//   strata-cpu-bench --model A.gguf [--model B.gguf ...] [--threads 1,2] [--decode 128]
//                    [--prompt 512] [--reps 3] [--batch N] [--q8-groups 0] [--float-groups 0]
//
// For each thread count it first measures the machine: memory read bandwidth (a STREAM-like sum
// over a 1 GiB array in huge pages, split over the threads, each reading its part as 1, 2 or 4
// far-apart streams, with or without software prefetch, or 4 adjacent 8 KiB ones, or as an F32
// weight times one vector through the decode kernels, in the row layout and in the engine's
// groups of 16 rows: the best) and peak fp32 FMA throughput
// (independent FMA chains held in registers, with the widest FMA the CPU has: AVX-512 where
// present, else AVX2). Then, for each model (in a child process, so that
// peak resident memory is the model's own), it times through the public engine API
// (LoadModelBundle, KvCache, Model::Forward):
//   decode:  a short prompt, then `--decode` single-token steps (greedy); tokens/s, weight bytes
//            read per token, and bytes/token × tokens/s as a fraction of the read bandwidth;
//   prefill: one `--prompt`-token step; tokens/s and useful FLOP/s (2 per weight multiply-add of
//            the layers, plus attention and the one logits row) as a fraction of the FMA peak;
//   peak RSS (VmHWM) of the child.
//   --batch N: N sequences decoding together (one token each per step, every one sampled, as
//            under the server), tokens/s as a fraction of prefill's: batching makes decode
//            compute-bound, so this should approach 1.
//   --q8-groups 0: Q8_0 weights multiplied in the file's layout, not repacked (A/B comparisons).
//   --float-groups 0: the same for F32 and F16 weights.
// The machine is measured again before and after each rep's decode and prefill (by the parent,
// while the child waits), and each rep's prefill is set against the better FMA peak of the
// measurements just before and just after it. Decode is set against the read bandwidth of the
// same moments: after every decode step the parent reads its 1 GiB array once (the patterns in
// turn), and the rep's decode bytes/s is compared with the best pattern's mean bytes/s over the
// rep. (This machine's passes spread by ±10-20% within seconds, so the best single pass of the
// 28 measured around a rep, which the bench used until 2026-11-30, sits well above what any read
// sustains; that figure is printed too.) A row's "of BW" and "of pk" are the median of its reps'
// fractions (each rep's is printed below the row); its tokens/s, GB/s and GFLOP/s are the best
// rep's. Last, decode's scaling across thread counts is printed beside the read bandwidth's own.
// Each prefill rep also reads the hypervisor's steal time (/proc/stat) around its step: the share
// of the CPUs' time the host gave to others (up to ~25% in some 5-second stretches on this VM, when
// 2-thread prefill fell to ~55% of the peak that the short FMA loop around it still reached). It
// is printed with the rep, and the rep's prefill beside it against the peak left after it,
// peak × (1 - steal), which is what the engine could have reached in those moments (exact when
// the threads are as many as the CPUs; with fewer, steal on an idle CPU is counted too).
// Around each rep the parent also times the canary, an L2-resident F32 prefill product through
// the engine's kernels (see Canary), and the line under the row prints it against the peak, and
// the rep's prefill against it: what the cores gave a matmul in those moments, and how much of
// that the whole model kept.
// Not a test: nothing is asserted.
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench/fma_loop.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/backend/cpu/thread_pool.h"
#include "core/engine/model_bundle.h"
#include "core/kv/kv_cache.h"
#include "core/model/gguf.h"

namespace strata {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- machine limits ----

#if defined(__x86_64__)
// Sums n floats as `streams` read in lockstep, each `gap` floats from the next, moving on by
// streams · gap when they are done (gap = n / streams: a few far-apart streams; gap = 2048: like a
// kernel reading 4 adjacent 8 KiB weight rows at once), optionally with a software prefetch
// `prefetch` floats ahead on each stream (as the decode kernels do). One thread reaches a different
// share of the bandwidth with each pattern, so the machine's figure is the best of them.
__attribute__((target("avx2"))) float SumAvx2(const float* p, int64_t n, int streams, int64_t gap,
                                              int64_t prefetch) {
  __m256 acc[4][2];
  for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
  for (int64_t base = 0; base + streams * gap <= n; base += streams * gap) {
    for (int64_t i = 0; i < gap; i += 16) {
      for (int s = 0; s < streams; ++s) {
        if (prefetch > 0) _mm_prefetch(reinterpret_cast<const char*>(p + base + s * gap + i + prefetch), _MM_HINT_T0);
        acc[s][0] = _mm256_add_ps(acc[s][0], _mm256_load_ps(p + base + s * gap + i));
        acc[s][1] = _mm256_add_ps(acc[s][1], _mm256_load_ps(p + base + s * gap + i + 8));
      }
    }
  }
  alignas(32) float l[8];
  __m256 t = _mm256_setzero_ps();
  for (int s = 0; s < streams; ++s) t = _mm256_add_ps(t, _mm256_add_ps(acc[s][0], acc[s][1]));
  _mm256_store_ps(l, t);
  return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

#endif

float SumPortable(const float* p, int64_t n) {
  float acc[32] = {};
  for (int64_t i = 0; i + 32 <= n; i += 32)
    for (int l = 0; l < 32; ++l) acc[l] += p[i + l];
  float s = 0;
  for (float a : acc) s += a;
  return s;
}


// One pass over the parent's 1 GiB array, between two decode steps.
struct Pass {
  int pattern = 0;
  double seconds = 0;
};

// A 1 GiB array read by `threads` threads, each summing its own contiguous part, in one of
// kPatterns ways. The array asks for transparent huge pages, as a model's weights get when the
// page cache holds them in huge pages (FileHugePages): with 4 KiB pages the TLB misses held the
// read ~25% below what decode itself reached. Allocated and touched once per thread count.
class ReadArray {
 public:
  static constexpr int kPatterns = 8;

  explicit ReadArray(int threads) : threads_(threads), backend_(CpuBackendOptions{threads}) {
    data_ = static_cast<float*>(std::aligned_alloc(kHuge, kFloats * sizeof(float)));
    madvise(data_, kFloats * sizeof(float), MADV_HUGEPAGE);  // a hint: without THP the read is just slower
    // Not in the model's child processes: their peak resident memory is the model's alone.
    madvise(data_, kFloats * sizeof(float), MADV_DONTFORK);
    backend_.HostParallelFor(threads, [&](int64_t t0, int64_t t1) {  // touch the pages in parallel
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t i = t * (kFloats / threads); i < (t + 1) * (kFloats / threads); ++i) data_[i] = 1.0f;
    });
  }
  ~ReadArray() { std::free(data_); }
  ReadArray(const ReadArray&) = delete;
  ReadArray& operator=(const ReadArray&) = delete;

  static constexpr double Bytes() { return kFloats * sizeof(float); }

  // Seconds of one pass over the whole array. Patterns 0-5: a sum (SumAvx2) as 1, 2 or 4
  // far-apart streams, 4 adjacent 8 KiB ones, or 2 or 4 far-apart streams with a software
  // prefetch. Patterns 6 and 7, the decode kernels' own reads: the array as one F32 weight (2048
  // columns) times one vector, in the file's row layout and in the groups of 16 rows the engine
  // loads F32 and F16 weights into (float_groups.h; the array's bytes read as such, all ones, no
  // copy). Here these often read faster than any plain sum, so they are patterns too.
  double Read(int pattern) {
    const int64_t per_thread = kFloats / threads_;
    struct Pattern {
      int streams;
      int64_t gap;
      int64_t prefetch;  // floats ahead, 0 = none
    };
    constexpr int kSums = 6;
    const Pattern pats[kSums] = {{1, per_thread, 0},         {2, per_thread / 2, 0},
                                         {4, per_thread / 4, 0},     {4, 2048, 0},
                                         {2, per_thread / 2, 512},   {4, per_thread / 4, 512}};
    const double t0 = Now();
    if (pattern < kSums) {
      const Pattern pat = pats[pattern];
      std::vector<float> part(threads_);
      backend_.HostParallelFor(threads_, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {
          const float* p = data_ + t * per_thread;
#if defined(__x86_64__)
          part[t] = HaveAvx2() ? SumAvx2(p, per_thread, pat.streams, pat.gap, pat.prefetch) : SumPortable(p, per_thread);
#else
          part[t] = SumPortable(p, per_thread);
#endif
        }
      });
      for (float v : part) sink_ = sink_ + v;
    } else if (pattern == 6) {
      constexpr int64_t kCols = 2048;
      const Tensor w{DType::kF32, kFloats / kCols, kCols, data_};
      std::vector<float> x(kCols, 1.0f / kCols), out(kFloats / kCols);
      backend_.MatMul(out.data(), x.data(), w, 1);
      sink_ = sink_ + out[0];
    } else {
      // Weights of a model's size, one after another, as decode reads them: with one weight of
      // the array's size, each thread's streams are hundreds of MiB apart and read ~20% slower
      // here (so the decode of a real model read faster than "the bandwidth").
      constexpr int64_t kCols = 2048, kRows = 4096;  // 32 MiB, a multiple of 16 rows
      const bool groups = cpu::GetKernels(backend_.isa()).float_groups;
      std::vector<float> x(kCols, 1.0f / kCols), out(kRows);
      for (int64_t r = 0; r < kFloats / kCols; r += kRows) {
        const Tensor w{DType::kF32, kRows, kCols, data_ + r * kCols, groups ? Layout::kFloatGroups16 : Layout::kRows};
        backend_.MatMul(out.data(), x.data(), w, 1);
        sink_ = sink_ + out[0];
      }
    }
    return Now() - t0;
  }

  // One pass of the next pattern in turn.
  Pass Next() {
    const Pass p{next_, Read(next_)};
    next_ = (next_ + 1) % kPatterns;
    return p;
  }

  // Bytes/s of the best pass of all patterns, `reps` passes each after one to warm up.
  double Best(int reps) {
    double best = 0;
    for (int p = 0; p < kPatterns; ++p)
      for (int r = 0; r < reps + 1; ++r) {
        const double dt = Read(p);
        if (r > 0) best = std::max(best, Bytes() / dt);
      }
    return best;
  }

 private:
  static constexpr int64_t kFloats = int64_t{1} << 28;  // 1 GiB
  static constexpr size_t kHuge = size_t{2} << 20;
  const int threads_;
  CpuBackend backend_;
  float* data_ = nullptr;
  int next_ = 0;  // Next()'s pattern
  volatile float sink_ = 0;
};

// fp32 FLOP/s of register-resident FMAs on `threads` threads.
double PeakFlops(int threads, int reps) {
  if (!HaveAvx2()) return 0;
  ThreadPool pool(threads);
  const int64_t iters = 20'000'000;  // ~0.1 s per thread at ~3 GHz
  volatile float sink = 0;
  double best = 0;
  for (int r = 0; r < reps + 1; ++r) {
    const double t0 = Now();
    pool.ParallelFor(threads, 1, [&](int64_t a, int64_t b, int) {
#if defined(__x86_64__)
      for (int64_t t = a; t < b; ++t) sink = sink + FmaLoop(iters);
#endif
    });
    const double dt = Now() - t0;
    if (r > 0) best = std::max(best, threads * iters * FmaLoopFlops() / dt);
  }
  return best;
}

// An L2-resident prefill product through the engine's own kernels: each thread multiplies 48
// weight rows (one prefill piece: 384 KiB of F32, repacked) by 64 tokens of 2048 columns (512
// KiB), both staying in its L2 from call to call. The FMA loop's work plus the L1/L2 traffic of a
// matmul, no DRAM: set against the FMA peak, it shows what the cores give a matmul at that moment.
// On a quiet core it runs at 0.95-0.99 of the peak; in this host's loaded stretches it fell to
// ~0.77 while the FMA loop held within 3% (2026-12-01), and whole-model prefill fell with it.
class Canary {
 public:
  explicit Canary(int threads) : backend_(CpuBackendOptions{threads}), rows_(48 * threads) {
    host_.resize(static_cast<size_t>(rows_) * kCols);
    x_.resize(static_cast<size_t>(kTokens) * kCols);
    out_.resize(static_cast<size_t>(kTokens) * rows_);
    uint32_t r = 1;
    auto next = [&r] {  // small values, so that nothing overflows however many calls
      r = r * 1664525u + 1013904223u;
      return static_cast<float>(r >> 8) * 0x1p-24f - 0.5f;
    };
    for (float& v : host_) v = next();
    for (float& v : x_) v = next();
    absl::StatusOr<Tensor> w = backend_.PrepareWeight(Tensor{DType::kF32, rows_, kCols, host_.data()});
    if (w.ok()) weight_ = *w;
  }
  // FLOP/s: the best of 3 runs of 40 calls, after one to warm up (0 where the weight failed).
  double Flops() {
    if (weight_.data == nullptr) return 0;
    double best = 0;
    for (int r = 0; r < 4; ++r) {
      const double t0 = Now();
      for (int c = 0; c < 40; ++c) backend_.MatMul(out_.data(), x_.data(), weight_, kTokens);
      if (r > 0) best = std::max(best, 40 * 2.0 * kTokens * rows_ * kCols / (Now() - t0));
    }
    return best;
  }

 private:
  static constexpr int64_t kCols = 2048;
  static constexpr int kTokens = 64;
  CpuBackend backend_;
  const int64_t rows_;
  std::vector<float> host_, x_, out_;
  Tensor weight_;
};

// ---- one model ----

// The machine's limits, as measured at one moment: read bandwidth, FMA peak, and the canary's
// FLOP/s (an L2-resident matmul).
struct Machine {
  double bw = 0, peak = 0, canary = 0;
};

constexpr int kMaxReps = 16;

struct ModelFigures {
  double decode_tps = 0, prefill_tps = 0;  // the best rep's
  // Each rep against the machine measured just before and just after it (the better of the two):
  // decode's read bytes/s as a fraction of the read bandwidth, prefill's useful FLOP/s as a
  // fraction of the FMA peak. `reps_run` of them.
  int reps_run = 0;
  double decode_of_bw[kMaxReps] = {}, prefill_of_peak[kMaxReps] = {};
  // Each rep's decode against the read bandwidth of the same moments: one pass over the 1 GiB
  // array after every decode step, the patterns in turn; the best pattern's mean over the rep
  // (its bytes over its passes' time), and that figure.
  double decode_of_same[kMaxReps] = {}, same_bw[kMaxReps] = {};
  double prefill_steal[kMaxReps] = {};  // share of the CPUs' time stolen by the host during the step
  double canary_of_peak[kMaxReps] = {};  // the canary around the step, as a fraction of the peak
  Machine best_around;  // the best bandwidth and peak measured around this model's reps
  double batch_tps = 0, batch_one_row_tps = 0;  // --batch N: N sequences decoding together
  double decode_bytes = 0;   // weight bytes read per decode token
  double prefill_flops = 0;  // useful flops of one prefill step
  double peak_rss_mib = 0;
  double file_mib = 0, kv_mib = 0;
};

double PeakRssMiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

constexpr int kPrefillGroup = 8;  // --batch: sequences prefilled per step

std::string BaseName(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// The first row's greedy token (the buffer holds up to --batch rows).
int Argmax(const std::vector<float>& v, int n_vocab) {
  return static_cast<int>(std::max_element(v.begin(), v.begin() + n_vocab) - v.begin());
}

// The CPUs' time so far from /proc/stat's first line (all CPUs, in USER_HZ ticks): stolen by the
// hypervisor, and in all (user, nice, system, idle, iowait, irq, softirq, steal). Zeros where
// there is no /proc/stat.
struct CpuTicks {
  double steal = 0, total = 0;
};
CpuTicks ReadCpuTicks() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  CpuTicks t;
  if (!(f >> cpu) || cpu != "cpu") return t;
  for (int i = 0; i < 8; ++i) {
    double v = 0;
    if (!(f >> v)) return CpuTicks{};
    t.total += v;
    if (i == 7) t.steal = v;
  }
  return t;
}
double StealShare(const CpuTicks& a, const CpuTicks& b) {
  return b.total > a.total ? (b.steal - a.steal) / (b.total - a.total) : 0;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// `measure` has the machine measured now (by the parent process, so that its 1 GiB array does not
// count in this process's peak resident memory).
// `pass` has the parent read its array once now, while this process waits.
bool RunModel(const std::string& path, const CpuBackendOptions& bo, int n_decode, int n_prompt, int n_batch,
              int reps, const std::function<Machine()>& measure, const std::function<Pass()>& pass,
              ModelFigures* f) {
  CpuBackend backend(bo);
  ModelOptions mo;
  mo.max_batch_tokens = std::max({n_prompt, 16, n_batch, 64 * std::min(n_batch, kPrefillGroup)});
  mo.max_logit_rows = std::max(1, n_batch);
  auto bundle = LoadModelBundle(path, &backend, mo);
  if (!bundle.ok()) {
    std::fprintf(stderr, "%s\n", bundle.status().ToString().c_str());
    return false;
  }
  Model& model = *bundle->model;
  const ModelConfig& c = model.config();

  // Bytes and flops from the file's tensors: a decode step reads every weight once, except the
  // token embedding, of which it reads one row (unless it doubles as the output matrix).
  const gguf::GgufFile& file = *bundle->file;
  const bool tied = file.FindTensor("output.weight") == nullptr;
  double layer_macs = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    f->file_mib += t.nbytes / 1048576.0;
    if (t.name == "token_embd.weight" && !tied) {
      f->decode_bytes += static_cast<double>(t.nbytes) / t.rows();
    } else {
      f->decode_bytes += t.nbytes;
    }
    if (t.name.rfind("blk.", 0) == 0 && t.dims.size() == 2)
      layer_macs += static_cast<double>(t.rows()) * t.cols();
  }
  // Prefill of n tokens from position 0: layers, attention (q·k and p·v over the causal
  // triangle), and the logits row of the last token.
  const double n = n_prompt;
  f->prefill_flops =
      2 * n * layer_macs + 4.0 * c.n_layers * c.q_dim() * n * (n + 1) / 2 + 2.0 * c.n_vocab * c.n_embd;

  const int block = 16;
  const int ctx = std::max(n_prompt, 8 + n_decode) + block;
  // Batched decode contexts of 64+ tokens, as under a server with short prompts.
  const int batch_prompt = 64, batch_steps = 8, batch_blocks = (batch_prompt + batch_steps + block - 1) / block;
  KvCacheConfig kc{c.n_layers, c.kv_dim(), block, 2 * ((ctx + block - 1) / block) + n_batch * batch_blocks};
  auto kv = KvCache::Create(&backend, kc);
  if (!kv.ok()) return false;
  f->kv_mib = KvCache::BytesPerBlock(kc) * kc.n_blocks / 1048576.0;
  const int half = (kc.n_blocks - n_batch * batch_blocks) / 2;
  std::vector<int32_t> blocks_a(half), blocks_b(half);
  for (int i = 0; i < half; ++i) blocks_a[i] = i, blocks_b[i] = half + i;
  std::vector<std::vector<int32_t>> blocks_seq(n_batch);
  for (int s = 0; s < n_batch; ++s) {
    for (int i = 0; i < batch_blocks; ++i) blocks_seq[s].push_back(2 * half + s * batch_blocks + i);
  }
  std::vector<float> logits(static_cast<size_t>(c.n_vocab) * std::max(1, n_batch));
  Batch batch;

  auto note = [f](const Machine& m) {
    f->best_around.bw = std::max(f->best_around.bw, m.bw);
    f->best_around.peak = std::max(f->best_around.peak, m.peak);
  };
  Machine before = measure();
  note(before);
  for (int r = 0; r < reps; ++r) {
    // Decode: an 8-token prompt, then greedy single-token steps.
    std::vector<int32_t> prompt = {1, 450, 4996, 17354, 1701, 432, 17204, 975};
    for (int32_t& id : prompt) id %= c.n_vocab;
    batch.Clear();
    batch.AddSequence(prompt.data(), static_cast<int32_t>(prompt.size()), 0, blocks_a, block, true);
    if (absl::Status st = model.Forward(batch, kv->get(), logits.data()); !st.ok()) { std::fprintf(stderr, "%s\n", st.ToString().c_str()); return false; }
    int32_t tok = Argmax(logits, c.n_vocab);
    double decode_secs = 0, pass_secs[ReadArray::kPatterns] = {};
    int passes[ReadArray::kPatterns] = {};
    auto take_pass = [&] {
      const Pass p = pass();
      pass_secs[p.pattern] += p.seconds;
      ++passes[p.pattern];
    };
    for (int i = 0; i < n_decode; ++i) {
      const double t0 = Now();
      batch.Clear();
      batch.AddSequence(&tok, 1, static_cast<int32_t>(prompt.size()) + i, blocks_a, block, true);
      if (absl::Status st = model.Forward(batch, kv->get(), logits.data()); !st.ok()) { std::fprintf(stderr, "%s\n", st.ToString().c_str()); return false; }
      tok = Argmax(logits, c.n_vocab);
      decode_secs += Now() - t0;
      take_pass();
    }

    // Every pattern at least once, however few the steps.
    for (int p = 0; p < ReadArray::kPatterns; ++p)
      while (passes[p] == 0) take_pass();
    const double decode_tps = n_decode / decode_secs;
    double same_bw = 0;
    for (int p = 0; p < ReadArray::kPatterns; ++p)
      if (passes[p] > 0) same_bw = std::max(same_bw, passes[p] * ReadArray::Bytes() / pass_secs[p]);
    f->decode_tps = std::max(f->decode_tps, decode_tps);
    const Machine mid = measure();
    note(mid);

    // Prefill: one step of n_prompt tokens of a fresh sequence.
    std::vector<int32_t> ids(n_prompt);
    for (int i = 0; i < n_prompt; ++i) ids[i] = (7 + 131 * i) % c.n_vocab;
    batch.Clear();
    batch.AddSequence(ids.data(), n_prompt, 0, blocks_b, block, true);
    const CpuTicks ticks0 = ReadCpuTicks();
    const double t1 = Now();
    if (absl::Status st = model.Forward(batch, kv->get(), logits.data()); !st.ok()) { std::fprintf(stderr, "%s\n", st.ToString().c_str()); return false; }
    const double prefill_tps = n_prompt / (Now() - t1);
    const double steal = StealShare(ticks0, ReadCpuTicks());
    f->prefill_tps = std::max(f->prefill_tps, prefill_tps);
    const Machine after = measure();
    note(after);
    if (r < kMaxReps) {
      f->decode_of_bw[r] = f->decode_bytes * decode_tps / std::max(before.bw, mid.bw);
      f->same_bw[r] = same_bw;
      f->decode_of_same[r] = same_bw > 0 ? f->decode_bytes * decode_tps / same_bw : 0;
      const double peak = std::max(mid.peak, after.peak);
      f->prefill_of_peak[r] = peak > 0 ? f->prefill_flops * prefill_tps / n_prompt / peak : 0;
      f->prefill_steal[r] = steal;
      f->canary_of_peak[r] = peak > 0 ? std::max(mid.canary, after.canary) / peak : 0;
      f->reps_run = r + 1;
    }
    before = after;

    // Batched decode: n_batch sequences with 64-token prompts (prefilled 8 at a time, so no step
    // is wider than a 512-token prefill and the buffers stay as large as for one), then
    // `batch_steps` steps of one token each, all sampled (as under the server), and again with
    // only the first sampled, to show what the logits rows cost.
    for (bool all_rows : {true, false}) {
      if (n_batch == 0) break;
      for (int s0 = 0; s0 < n_batch; s0 += kPrefillGroup) {
        batch.Clear();
        for (int s = s0; s < std::min(n_batch, s0 + kPrefillGroup); ++s) {
          std::vector<int32_t> p(batch_prompt);
          for (int i = 0; i < batch_prompt; ++i) p[i] = (3 + 17 * s + 31 * i) % c.n_vocab;
          batch.AddSequence(p.data(), batch_prompt, 0, blocks_seq[s], block, true);
        }
        if (absl::Status st = model.Forward(batch, kv->get(), logits.data()); !st.ok()) {
          std::fprintf(stderr, "batched prefill: %s\n", st.ToString().c_str());
          return false;
        }
      }
      std::vector<int32_t> toks(n_batch, 1);
      const double t2 = Now();
      for (int i = 0; i < batch_steps; ++i) {
        batch.Clear();
        for (int s = 0; s < n_batch; ++s) {
          batch.AddSequence(&toks[s], 1, batch_prompt + i, blocks_seq[s], block, all_rows || s == 0);
        }
        if (absl::Status st = model.Forward(batch, kv->get(), logits.data()); !st.ok()) {
          std::fprintf(stderr, "batched decode: %s\n", st.ToString().c_str());
          return false;
        }
      }
      const double tps = n_batch * batch_steps / (Now() - t2);
      double& best = all_rows ? f->batch_tps : f->batch_one_row_tps;
      best = std::max(best, tps);
    }
  }
  f->peak_rss_mib = PeakRssMiB();
  return true;
}

bool ReadAll(int fd, void* p, size_t n) {
  for (size_t done = 0; done < n;) {
    const ssize_t r = read(fd, static_cast<char*>(p) + done, n - done);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const void* p, size_t n) {
  for (size_t done = 0; done < n;) {
    const ssize_t r = write(fd, static_cast<const char*>(p) + done, n - done);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

// Runs RunModel in a child process so that VmHWM is this model's alone. The child asks this
// process to measure the machine between its reps ('m' on the pipe, answered with a Machine) and
// to read its array once between decode steps ('p', answered with a Pass), then sends 'r' and
// its figures.
bool RunModelIsolated(const std::string& path, const CpuBackendOptions& bo, int n_decode, int n_prompt, int n_batch,
                      int reps, const std::function<Machine()>& measure, const std::function<Pass()>& pass,
                      ModelFigures* f) {
  int up[2], down[2];  // child -> parent, parent -> child
  if (pipe(up) != 0) return false;
  if (pipe(down) != 0) {
    close(up[0]);
    close(up[1]);
    return false;
  }
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    auto ask = [&] {
      Machine m;
      const char tag = 'm';
      if (!WriteAll(up[1], &tag, 1) || !ReadAll(down[0], &m, sizeof(m))) _exit(1);
      return m;
    };
    auto ask_pass = [&] {
      Pass p;
      const char tag = 'p';
      if (!WriteAll(up[1], &tag, 1) || !ReadAll(down[0], &p, sizeof(p))) _exit(1);
      return p;
    };
    ModelFigures mine;
    const bool ok = RunModel(path, bo, n_decode, n_prompt, n_batch, reps, ask, ask_pass, &mine);
    const char tag = 'r';
    if (ok && !(WriteAll(up[1], &tag, 1) && WriteAll(up[1], &mine, sizeof(mine)))) _exit(1);
    _exit(ok ? 0 : 1);
  }
  close(up[1]);
  close(down[0]);
  bool got = false;
  for (char tag; ReadAll(up[0], &tag, 1);) {
    if (tag == 'm') {
      const Machine m = measure();
      if (!WriteAll(down[1], &m, sizeof(m))) break;
    } else if (tag == 'p') {
      const Pass p = pass();
      if (!WriteAll(down[1], &p, sizeof(p))) break;
    } else if (tag == 'r') {
      got = ReadAll(up[0], f, sizeof(*f));
      break;
    } else {
      break;
    }
  }
  close(up[0]);
  close(down[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  return got && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::vector<int> ParseList(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

int Main(int argc, char** argv) {
  std::vector<std::string> models;
  std::vector<int> threads = {1, 2};
  int n_decode = 128, n_prompt = 512, reps = 3, n_batch = 0;
  bool q8_groups = true;  // --q8-groups 0: Q8_0 weights multiplied in the file's layout (A/B)
  bool float_groups = true;  // --float-groups 0: the same for F32 and F16
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (v == nullptr) {
      std::fprintf(stderr, "%s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--model")
      models.push_back(v);
    else if (a == "--threads")
      threads = ParseList(v);
    else if (a == "--decode")
      n_decode = std::atoi(v);
    else if (a == "--prompt")
      n_prompt = std::atoi(v);
    else if (a == "--batch")
      n_batch = std::max(0, std::atoi(v));
    else if (a == "--reps")
      reps = std::clamp(std::atoi(v), 1, kMaxReps);
    else if (a == "--q8-groups")
      q8_groups = std::string(v) != "0";
    else if (a == "--float-groups")
      float_groups = std::string(v) != "0";
    else {
      std::fprintf(stderr,
                   "unknown flag %s\nusage: strata-cpu-bench --model PATH [--model PATH...] "
                   "[--threads 1,2] [--decode 128] [--prompt 512] [--reps 3] [--batch N] [--q8-groups 0] [--float-groups 0]\n",
                   a.c_str());
      return 2;
    }
    ++i;
  }
  if (models.empty() || n_decode < 1 || n_prompt < 1 || threads.empty()) {
    std::fprintf(stderr,
                 "usage: strata-cpu-bench --model PATH [--model PATH...] [--threads 1,2] [--decode 128] "
                 "[--prompt 512] [--reps 3]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // a child that dies mid-run is reported as failed, not fatal to the run
  CpuBackend probe(CpuBackendOptions{1});
  std::printf("kernels: %s\n", cpu::IsaName(probe.isa()));
  std::printf("%-28s %3s | %8s %9s %7s %6s | %8s %8s %6s | %8s %8s | %6s %7s\n", "model", "thr", "dec t/s",
              "MB/token", "GB/s", "of BW", "pre t/s", "GFLOP/s", "of pk", "RSS MiB", "limit", "BW", "peak");
  // The machine is measured before and after every rep of every model (decode, then prefill), and
  // each rep is set against the better of the measurements just before and just after it: this
  // machine's bandwidth moves by 2x from one minute to the next, so a figure taken minutes away
  // compares the model with a different machine. A row's fraction is the median of its reps'.
  //
  // Decode is also set against the bandwidth of the same moments: after every decode step the
  // parent reads its array once (the patterns in turn), and the rep's decode is compared with the
  // best pattern's mean over the rep, so a slow or fast spell weighs on both alike. The best
  // single pass measured around a rep is a maximum over 28 passes of a machine whose passes
  // spread by ±10% within seconds, so even a kernel that reads exactly like the best pattern
  // comes out ~10% under it; the same-moment figure compares means with means. Both are printed.
  // Around each pass the parent sleeps 3 ms, longer than either process's pool spins before its
  // workers sleep (ThreadPool::kSpinNs), so neither process's idle workers take a core from the
  // other's work.
  // Models outer, thread counts inner: a model's rows at 1 and 2 threads run minutes apart, not a
  // whole run apart, so their ratio (decode scaling) compares nearly the same machine.
  const size_t nt = threads.size();
  std::vector<std::unique_ptr<ReadArray>> arrays;
  std::vector<std::unique_ptr<Canary>> canaries;
  std::vector<std::function<Machine()>> measures;
  std::vector<std::function<Pass()>> passes;
  for (size_t ti = 0; ti < nt; ++ti) {
    const int t = threads[ti];
    arrays.push_back(std::make_unique<ReadArray>(t));
    ReadArray* array = arrays.back().get();
    canaries.push_back(std::make_unique<Canary>(t));
    Canary* canary = canaries.back().get();
    measures.push_back([array, canary, t] { return Machine{array->Best(3), PeakFlops(t, 3), canary->Flops()}; });
    passes.push_back([array] {
      const auto quiet = std::chrono::nanoseconds(ThreadPool::kSpinNs + 1'000'000);
      std::this_thread::sleep_for(quiet);
      const Pass p = array->Next();
      std::this_thread::sleep_for(quiet);
      return p;
    });
  }
  std::vector<Machine> best(nt);  // per thread count: the best measured in the run
  for (size_t ti = 0; ti < nt; ++ti) {
    best[ti] = measures[ti]();
    std::printf("machine, %d thread%s: read bandwidth %.1f GB/s (1 GiB, best pass of 8 read patterns), "
                "peak fp32 FMA %.1f GFLOP/s (%d-wide FMAs), an L2-resident matmul %.1f GFLOP/s\n",
                threads[ti], threads[ti] == 1 ? "" : "s", best[ti].bw / 1e9, best[ti].peak / 1e9, PeakLanes(),
                best[ti].canary / 1e9);
  }
  std::fflush(stdout);
  // Per model and thread count: the best rep's decode tokens/s, and the mean over the reps of the
  // bandwidth in the same moments.
  std::vector<std::vector<double>> decode_tps(nt, std::vector<double>(models.size(), 0));
  std::vector<std::vector<double>> same_bw(nt, std::vector<double>(models.size(), 0));
  for (size_t mi = 0; mi < models.size(); ++mi) {
    for (size_t ti = 0; ti < nt; ++ti) {
      const int t = threads[ti];
      const std::string& m = models[mi];
      ModelFigures f;
      CpuBackendOptions bo{t};
      bo.q8_groups = q8_groups;
      bo.float_groups = float_groups;
      const bool ok = RunModelIsolated(m, bo, n_decode, n_prompt, n_batch, reps, measures[ti], passes[ti], &f);
      if (!ok) {
        std::printf("%s: failed\n", m.c_str());
        continue;
      }
      decode_tps[ti][mi] = f.decode_tps;
      for (int r = 0; r < f.reps_run; ++r) same_bw[ti][mi] += f.same_bw[r] / f.reps_run;
      best[ti].bw = std::max(best[ti].bw, f.best_around.bw);
      const std::string name = BaseName(m);
      const double gbs = f.decode_bytes * f.decode_tps;
      const double flops = f.prefill_flops * f.prefill_tps / n_prompt;
      const std::vector<double> of_bw(f.decode_of_bw, f.decode_of_bw + f.reps_run);
      const std::vector<double> of_same(f.decode_of_same, f.decode_of_same + f.reps_run);
      const std::vector<double> of_peak(f.prefill_of_peak, f.prefill_of_peak + f.reps_run);
      // tok/s, GB/s and GFLOP/s: the best rep's. "of BW": the median of the reps' decode against
      // the bandwidth of the same moments; "of pk": the median of the reps' prefill against the
      // peak measured around it. "limit": model file + KV cache + 10%, the resident-memory budget.
      // "BW", "peak": the best single passes measured around this row's reps.
      std::printf("%-28s %3d | %8.2f %9.1f %7.2f %5.0f%% | %8.1f %8.1f %5.0f%% | %8.0f %8.0f | %6.1f %7.1f\n",
                  name.c_str(), t, f.decode_tps, f.decode_bytes / 1e6, gbs / 1e9, 100 * Median(of_same),
                  f.prefill_tps, flops / 1e9, 100 * Median(of_peak), f.peak_rss_mib, (f.file_mib + f.kv_mib) * 1.1,
                  f.best_around.bw / 1e9, f.best_around.peak / 1e9);
      std::printf("  each rep: decode");
      for (int r = 0; r < f.reps_run; ++r) std::printf(" %.0f%% (%.1f)", 100 * of_same[r], f.same_bw[r] / 1e9);
      std::printf(" of the read bandwidth in the same moments (GB/s); against the best pass measured just "
                  "before and after it: decode");
      for (double v : of_bw) std::printf(" %.0f%%", 100 * v);
      std::printf(" of BW (median %.0f%%), prefill", 100 * Median(of_bw));
      for (double v : of_peak) std::printf(" %.0f%%", 100 * v);
      std::printf(" of peak; the host stole");
      std::vector<double> of_left;
      for (int r = 0; r < f.reps_run; ++r) {
        std::printf(" %.0f%%", 100 * f.prefill_steal[r]);
        of_left.push_back(f.prefill_steal[r] < 1 ? of_peak[r] / (1 - f.prefill_steal[r]) : 0);
      }
      std::printf(" of the CPUs' time during them: prefill");
      for (double v : of_left) std::printf(" %.0f%%", 100 * v);
      std::printf(" of the peak left (median %.0f%%)\n", 100 * Median(of_left));
      std::printf("    an L2-resident matmul of the engine's kernels around them ran at");
      std::vector<double> of_canary;
      for (int r = 0; r < f.reps_run; ++r) {
        std::printf(" %.0f%%", 100 * f.canary_of_peak[r]);
        of_canary.push_back(f.canary_of_peak[r] > 0 ? of_peak[r] / f.canary_of_peak[r] : 0);
      }
      std::printf(" of the peak; prefill");
      for (double v : of_canary) std::printf(" %.0f%%", 100 * v);
      std::printf(" of that (median %.0f%%)\n", 100 * Median(of_canary));
      if (n_batch > 0) {
        std::printf("  batched decode, %d sequences: %.1f tokens/s = %.2f of prefill (%.1f tokens/s with one logits "
                    "row)\n",
                    n_batch, f.batch_tps, f.batch_tps / f.prefill_tps, f.batch_one_row_tps);
      }
      std::fflush(stdout);
    }
  }
  // Decode scaling, next to what the memory system allows: decode that reads at the bandwidth
  // limit on every thread count cannot scale past the bandwidth's own ratio (the best passes of
  // the run, and the same-moment bandwidths of the model's two rows).
  for (size_t ti = 1; ti < nt; ++ti) {
    std::printf("decode, %d threads / %d: machine read bandwidth (best passes) %.2fx;", threads[ti], threads[0],
                best[ti].bw / best[0].bw);
    for (size_t mi = 0; mi < models.size(); ++mi) {
      if (decode_tps[0][mi] <= 0 || decode_tps[ti][mi] <= 0) continue;
      std::printf(" %s %.2fx (same moments' bandwidth %.2fx)", BaseName(models[mi]).c_str(),
                  decode_tps[ti][mi] / decode_tps[0][mi], same_bw[ti][mi] / same_bw[0][mi]);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) { return strata::Main(argc, argv); }
