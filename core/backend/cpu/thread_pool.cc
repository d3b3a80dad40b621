#include "core/backend/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace strata {
namespace {

// Tells the core we are spinning (frees pipeline resources for the other hyperthread and avoids
// the memory-order mis-speculation penalty when the awaited store lands).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    stop_.store(true, std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
  }
  wake_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::RunChunks(int thread) {
  for (;;) {
    const int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
    if (begin >= n_) return;
    (*fn_)(begin, std::min(n_, begin + grain_), thread);
  }
}

uint64_t ThreadPool::WaitForJob(uint64_t seen) {
  // Hot path: spin on the epoch. The clock is read only every 256 spins.
  const int64_t deadline = NowNs() + kSpinNs;
  for (uint32_t spins = 1;; ++spins) {
    const uint64_t e = epoch_.load(std::memory_order_acquire);
    if (e != seen) return e;
    CpuRelax();
    if ((spins & 255) == 0) {
      if (NowNs() > deadline) break;
      std::this_thread::yield();  // cheap when the core is ours; lets others run when oversubscribed
    }
  }
  // Slow path: sleep. sleepers_ is raised before the epoch is checked under the lock, and the
  // caller bumps the epoch before it reads sleepers_ (both seq_cst), so either the caller sees a
  // sleeper and notifies, or this thread sees the new epoch: no wake-up is lost.
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  uint64_t e;
  {
    std::unique_lock<std::mutex> lock(wake_mu_);
    wake_cv_.wait(lock, [&] { return epoch_.load(std::memory_order_seq_cst) != seen; });
    e = epoch_.load(std::memory_order_acquire);
  }
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
  return e;
}

void ThreadPool::WorkerLoop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    seen = WaitForJob(seen);
    if (stop_.load(std::memory_order_acquire)) return;
    RunChunks(thread);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain, absl::FunctionRef<void(int64_t, int64_t, int)> fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  fn_ = &fn;
  n_ = n;
  grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  epoch_.fetch_add(1, std::memory_order_seq_cst);  // publishes the job (release)
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    // Taking the lock orders this notify after a sleeper's predicate check.
    { std::lock_guard<std::mutex> lock(wake_mu_); }
    wake_cv_.notify_all();
  }
  RunChunks(0);
  // Every chunk is handed out; wait for the workers still finishing theirs (or not yet awake:
  // each worker must pass through RunChunks once per epoch before the job fields change).
  for (uint32_t spins = 1; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    CpuRelax();
    if ((spins & 255) == 0) std::this_thread::yield();
  }
  fn_ = nullptr;
}

}  // namespace strata
