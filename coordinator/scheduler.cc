#include "coordinator/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace strata::coordinator {

Scheduler::Scheduler(const SchedulerConfig& config) : config_(config), allocator_(config.n_blocks) {}

absl::Status Scheduler::Add(std::unique_ptr<Sequence> seq) {
  if (BlocksFor(seq->limit, config_.block_size) > config_.n_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("request needs up to ", seq->limit,
                                                   " tokens of KV cache; the cache holds ",
                                                   int64_t{config_.n_blocks} * config_.block_size));
  }
  if (n_waiting() >= config_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue is full: ", n_waiting(), " requests waiting (max_waiting ", config_.max_waiting, ")"));
  }
  waiting_.push_back(std::move(seq));
  return absl::OkStatus();
}

Sequence* Scheduler::Find(uint64_t id) {
  for (auto& s : running_)
    if (s->id == id) return s.get();
  for (auto& s : waiting_)
    if (s->id == id) return s.get();
  return nullptr;
}

bool Scheduler::Remove(uint64_t id) {
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if ((*it)->id == id) {
      allocator_.Free(&(*it)->blocks);
      running_.erase(it);
      return true;
    }
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->id == id) {
      allocator_.Free(&(*it)->blocks);
      waiting_.erase(it);
      return true;
    }
  }
  return false;
}

void Scheduler::Preempt(Sequence* victim) {
  allocator_.Free(&victim->blocks);
  victim->n_cached = 0;
  ++preemptions_;
  auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& s) { return s.get() == victim; });
  waiting_.push_front(std::move(*it));  // first in line when blocks free up
  running_.erase(it);
}

void Scheduler::Schedule(std::vector<ScheduledSeq>* out) {
  out->clear();
  // Admit waiting sequences (oldest first) while there is room for their pending tokens.
  while (!waiting_.empty() && n_running() < config_.max_running) {
    Sequence* s = waiting_.front().get();
    const int32_t need = BlocksFor(static_cast<int32_t>(s->tokens.size()), config_.block_size);
    if (need - static_cast<int32_t>(s->blocks.size()) > allocator_.n_free()) break;
    if (!allocator_.Allocate(need - static_cast<int32_t>(s->blocks.size()), &s->blocks)) break;
    s->admitted_order = next_order_++;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  // Decode tokens first (latency), then prefill chunks, shortest first so a short prompt is not
  // stuck behind a long one, all within the token budget.
  order_.clear();
  for (auto& r : running_) order_.push_back(r.get());
  std::stable_sort(order_.begin(), order_.end(), [](const Sequence* a, const Sequence* b) {
    return a->tokens.size() - a->n_cached < b->tokens.size() - b->n_cached;
  });
  int32_t budget = config_.max_batch_tokens;
  for (size_t i = 0; i < order_.size() && budget > 0; ++i) {
    Sequence* s = order_[i];
    if (std::find_if(running_.begin(), running_.end(), [&](const auto& r) { return r.get() == s; }) ==
        running_.end()) {
      continue;  // preempted earlier in this loop
    }
    const int32_t pending = static_cast<int32_t>(s->tokens.size()) - s->n_cached;
    if (pending <= 0 || s->in_flight) continue;
    const int32_t take = std::min(pending, budget);
    // Blocks for the tokens this step writes; preempt the newest unscheduled others if they run out.
    const int32_t need = BlocksFor(s->n_cached + take, config_.block_size) - static_cast<int32_t>(s->blocks.size());
    bool ok = need <= 0 || allocator_.Allocate(need, &s->blocks);
    while (!ok) {
      Sequence* victim = nullptr;
      for (auto& r : running_) {
        const bool scheduled =
            std::any_of(out->begin(), out->end(), [&](const ScheduledSeq& q) { return q.seq == r.get(); });
        if (r.get() != s && !scheduled && !r->in_flight &&
            (victim == nullptr || r->admitted_order > victim->admitted_order)) {
          victim = r.get();
        }
      }
      if (victim == nullptr) break;
      Preempt(victim);
      ok = allocator_.Allocate(need, &s->blocks);
    }
    if (!ok) continue;  // cannot grow now; it waits for blocks to free up
    out->push_back({s, s->n_cached, take, take == pending});
    s->in_flight = true;
    budget -= take;
  }
}

void Scheduler::Committed(const std::vector<ScheduledSeq>& step) {
  for (const ScheduledSeq& q : step) {
    q.seq->n_cached = q.start + q.n_tokens;
    q.seq->in_flight = false;
  }
}

void Scheduler::ResetAll() {
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    allocator_.Free(&(*it)->blocks);
    (*it)->n_cached = 0;
    (*it)->in_flight = false;
    waiting_.push_front(std::move(*it));
  }
  running_.clear();
}

void Scheduler::Abandoned(const std::vector<ScheduledSeq>& step) {
  for (const ScheduledSeq& q : step) q.seq->in_flight = false;
}

}  // namespace strata::coordinator
