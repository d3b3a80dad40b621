// A persistent pool of worker threads for the CPU backend: threads are created once, so the
// per-token path creates no threads and allocates nothing.
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

  // Calls fn(begin, end, thread) over [0, n) split into chunks of `grain` items, spread over all
  // threads; returns when every chunk is done. Not reentrant.
  void ParallelFor(int64_t n, int64_t grain, absl::FunctionRef<void(int64_t, int64_t, int)> fn);

 private:
  void WorkerLoop(int thread);
  void RunChunks(int thread);

  const int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;  // bumped for each ParallelFor; guarded by mu_
  int busy_ = 0;             // workers still inside the current job; guarded by mu_
  bool stop_ = false;

  // The current job (valid while a ParallelFor is running).
  const absl::FunctionRef<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;
  std::atomic<int64_t> next_{0};
};

}  // namespace strata
