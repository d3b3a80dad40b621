// A persistent pool of worker threads for the CPU backend. Threads are created once; handing a job
// to them is a store to an atomic counter they spin on, and waiting for them is a spin on another,
// so the per-token path creates no threads, allocates nothing and takes no lock. A worker that has
// seen no job for kSpinNs goes to sleep on a condition variable, so an idle process burns no CPU;
// the next job wakes it (that one hand-off then costs a futex wake, a few microseconds).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace strata {

class ThreadPool {
 public:
  // n_threads >= 1; the calling thread is one of them, so n_threads - 1 workers are started.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread) over [0, n) split into chunks of `grain` items, handed out
  // dynamically to all threads (thread is 0..size()-1, 0 being the caller); returns when every
  // chunk is done. Not reentrant: call it from one thread at a time, never from inside fn.
  void ParallelFor(int64_t n, int64_t grain, absl::FunctionRef<void(int64_t, int64_t, int)> fn);

  // How long an idle worker spins before it sleeps. Long enough to span the serial gaps between
  // the parallel ops of a forward pass and between decode steps; short enough to be invisible
  // in `top` when the process is idle.
  static constexpr int64_t kSpinNs = 2'000'000;

 private:
  void WorkerLoop(int thread);
  void RunChunks(int thread);
  // Returns the new epoch once it differs from `seen` (or stop_ is set).
  uint64_t WaitForJob(uint64_t seen);

  const int n_threads_;
  std::vector<std::thread> workers_;

  // The current job: written by the caller before it bumps epoch_ (release), read by workers
  // after they see the new epoch (acquire).
  const absl::FunctionRef<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;

  // Each hot atomic on its own cache line: workers hammer next_ while the caller spins on
  // pending_ and idle workers spin on epoch_.
  alignas(64) std::atomic<uint64_t> epoch_{0};  // bumped once per job
  std::atomic<bool> stop_{false};
  alignas(64) std::atomic<int64_t> next_{0};  // first item not yet handed out
  alignas(64) std::atomic<int> pending_{0};   // workers still inside the current job
  alignas(64) std::atomic<int> sleepers_{0};  // workers blocked (or about to block) on wake_cv_

  // Only for the sleep/wake slow path.
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
};

}  // namespace strata
