// The coordinator's engine loop: one thread that turns the scheduler's plans into step messages
// for the workers, waits for the sampled tokens and streams them to the requests (incremental
// detokenization, stop strings, finish). RPC threads only submit, cancel and read responses.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/metrics.h"
#include "coordinator/scheduler.h"
#include "coordinator/worker_pool.h"
#include "core/sampling/stop_strings.h"
#include "core/tokenizer/stream_decoder.h"
#include "core/tokenizer/tokenizer.h"
#include "strata/v1/generation.pb.h"

namespace strata::coordinator {

// What an RPC thread reads: responses to write, then a final status.
struct ResponseChannel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<strata::v1::GenerateResponse> responses;
  bool done = false;
  absl::Status status;  // final status once done
};

struct SubmitRequest {
  std::string request_id;
  std::vector<int32_t> prompt;
  int32_t max_new_tokens = 0;
  SamplingParams sampling;  // seed set
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool logprobs = false;
  int32_t top_logprobs = 0;  // alternatives per token, 0..20
};

class ServingLoop {
 public:
  // `depth`: step plans kept in flight (the number of pipeline stages, so every stage has work).
  // `recovery_timeout`: how long requests wait for a worker group that went away to come back
  // before they end with UNAVAILABLE.
  ServingLoop(const Tokenizer* tokenizer, int32_t n_ctx, const SchedulerConfig& config, WorkerPool* workers,
              absl::Duration step_timeout, int depth = 1, absl::Duration recovery_timeout = absl::Seconds(60));
  ~ServingLoop();

  // Queues a request; its responses arrive on the returned channel. RESOURCE_EXHAUSTED when the
  // queue is full, UNAVAILABLE when the workers are not ready.
  absl::StatusOr<std::shared_ptr<ResponseChannel>> Submit(SubmitRequest request, uint64_t* id);
  // The client went away or its deadline passed: its KV blocks are freed at the next step.
  void Cancel(uint64_t id);
  // Wakes the loop (a worker attached or became ready).
  void Wake();
  void Stop();
  // Graceful shutdown: refuse new requests (UNAVAILABLE) and wait up to `grace` for the running
  // and queued ones to finish; returns how many were still unfinished (Stop ends them).
  int Drain(absl::Duration grace);

  struct Stats {
    int32_t running = 0, waiting = 0, blocks_free = 0, blocks_total = 0, block_size = 0;
    uint64_t steps = 0, preemptions = 0;
  };
  Stats stats() const;
  // Where request timings and token counts go (optional; set before the first request).
  void set_metrics(Metrics* metrics) { metrics_ = metrics; }

 private:
  struct Active {
    std::unique_ptr<Sequence> pending;  // owned here until the scheduler takes it
    std::shared_ptr<ResponseChannel> channel;
    SubmitRequest request;
    StreamDecoder decoder;
    StopMatcher stop;
    // For metrics: arrival, whether a step has included it yet, the latest token's time.
    std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now(), last_token;
    bool scheduled = false;
    int64_t streamed = 0;
    Active(SubmitRequest r, std::shared_ptr<ResponseChannel> c, const Tokenizer& tok)
        : channel(std::move(c)), request(std::move(r)), decoder(tok, false), stop(request.stop) {}
  };

  void Run();
  void Finish(uint64_t id, Active& a, strata::v1::FinishReason reason, const absl::Status& status);
  void FailAll(const absl::Status& status);
  // The worker group is gone or broken: keep every request, to be recomputed when it is back.
  void WorkersLost(const std::string& why);
  void BuildStep(const std::vector<ScheduledSeq>& step, strata::v1::CoordinatorMessage* msg);
  void Apply(const strata::v1::StepResult& result);

  const Tokenizer* tokenizer_;
  const int32_t n_ctx_;
  WorkerPool* workers_;
  const absl::Duration step_timeout_;
  const int depth_;
  const absl::Duration recovery_timeout_;
  mutable std::mutex mu_;
  bool ever_ready_ = false;           // guarded by mu_: the group was complete at least once
  absl::Time down_since_ = absl::InfinitePast();  // guarded by mu_: when the group went away
  std::condition_variable cv_;
  Scheduler scheduler_;                               // guarded by mu_
  std::unordered_map<uint64_t, std::unique_ptr<Active>> active_;  // guarded by mu_
  std::vector<uint64_t> cancelled_;                   // guarded by mu_
  uint64_t next_id_ = 1, next_step_ = 1, steps_ = 0;  // guarded by mu_
  bool stop_ = false;
  bool draining_ = false;  // guarded by mu_
  std::thread thread_;
  Metrics* metrics_ = nullptr;
};

}  // namespace strata::coordinator
