// The coordinator's scheduler: which tokens of which sequences run in the next step, and where
// their KV lives. Pure bookkeeping, no I/O, so it is unit-tested on its own.
//
// vLLM-style, with no prefill/decode modes: every sequence has `tokens` (prompt + generated) and
// `n_cached` (tokens whose K/V are in the cache); a step advances each running sequence by up to
// the remaining token budget (one token when decoding, a chunk when prefilling). KV blocks are
// allocated as a sequence grows; when they run out, the most recently admitted sequence is
// preempted: its blocks are freed and it goes back to the front of the queue, to be recomputed
// from prompt + generated tokens (its sampling is seeded per draw, so it continues identically).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "core/kv/block_allocator.h"
#include "core/sampling/sampling_params.h"

namespace strata::coordinator {

struct SchedulerConfig {
  int32_t block_size = 16;
  int32_t n_blocks = 0;
  int32_t max_batch_tokens = 512;  // tokens per step
  int32_t max_running = 16;        // sequences in the running set (and sampling per step)
  int32_t max_waiting = 64;        // queued sequences beyond the running set
};

struct Sequence {
  uint64_t id = 0;
  std::vector<int32_t> tokens;  // prompt + generated
  int32_t prompt_len = 0;
  int32_t limit = 0;            // total tokens it may reach (prompt + max new, within the context)
  SamplingParams sampling;      // seed set
  // Scheduler state.
  int32_t n_cached = 0;
  std::vector<int32_t> blocks;
  uint64_t admitted_order = 0;
  bool in_flight = false;  // in a step that has not come back yet: not schedulable, not preemptible

  int32_t generated() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
};

// One sequence's part of a step.
struct ScheduledSeq {
  Sequence* seq;
  int32_t start;     // = seq->n_cached before the step
  int32_t n_tokens;  // tokens [start, start + n_tokens) of seq->tokens
  bool sample;       // its last token completes the sequence so far: sample the next
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  // Queues a sequence. RESOURCE_EXHAUSTED when the queue is full; INVALID_ARGUMENT when it could
  // never fit in the cache.
  absl::Status Add(std::unique_ptr<Sequence> seq);
  // Removes a sequence wherever it is and frees its blocks. Returns false if unknown.
  bool Remove(uint64_t id);
  // Plans the next step into `out` (cleared first) from sequences not already in flight, and
  // marks them in flight. Empty when there is nothing to run.
  void Schedule(std::vector<ScheduledSeq>* out);
  // After the step ran: marks the scheduled tokens as cached and the sequences schedulable.
  void Committed(const std::vector<ScheduledSeq>& step);
  // After a step failed: its sequences are schedulable again, nothing was cached.
  void Abandoned(const std::vector<ScheduledSeq>& step);
  // The workers' caches are gone (a worker died): every sequence goes back to the queue, in
  // admission order ahead of new ones, to be recomputed from prompt + generated tokens.
  void ResetAll();
  Sequence* Find(uint64_t id);

  int32_t n_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t n_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t free_blocks() const { return allocator_.n_free(); }
  int32_t total_blocks() const { return allocator_.n_blocks(); }
  uint64_t preemptions() const { return preemptions_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  void Preempt(Sequence* victim);

  SchedulerConfig config_;
  BlockAllocator allocator_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  std::vector<Sequence*> order_;                     // scratch: running_ by pending tokens
  uint64_t next_order_ = 0;
  uint64_t preemptions_ = 0;
};

}  // namespace strata::coordinator
