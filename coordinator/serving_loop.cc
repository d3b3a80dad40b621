#include "coordinator/serving_loop.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/utf8.h"

namespace strata::coordinator {

using strata::v1::CoordinatorMessage;
using strata::v1::FinishReason;
using strata::v1::GenerateResponse;

namespace {
double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

ServingLoop::ServingLoop(const Tokenizer* tokenizer, int32_t n_ctx, const SchedulerConfig& config,
                         WorkerPool* workers, absl::Duration step_timeout, int depth,
                         absl::Duration recovery_timeout)
    : tokenizer_(tokenizer),
      n_ctx_(n_ctx),
      workers_(workers),
      step_timeout_(step_timeout),
      depth_(std::max(1, depth)),
      recovery_timeout_(recovery_timeout),
      scheduler_(config) {
  thread_ = std::thread([this] { Run(); });
}

ServingLoop::~ServingLoop() { Stop(); }

void ServingLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  FailAll(absl::UnavailableError("the server is shutting down"));
}

void ServingLoop::Wake() { cv_.notify_all(); }

int ServingLoop::Drain(absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  while (!active_.empty() && absl::Now() < deadline) {
    lock.unlock();
    absl::SleepFor(absl::Milliseconds(20));
    lock.lock();
  }
  return static_cast<int>(active_.size());
}

absl::StatusOr<std::shared_ptr<ResponseChannel>> ServingLoop::Submit(SubmitRequest request, uint64_t* id) {
  {
    // Before the group was ever complete there is nothing to wait for; after, a lost group is
    // being restarted and requests queue (up to max_waiting) until it is back.
    std::lock_guard<std::mutex> lock(mu_);
    if (!ever_ready_ && !workers_->ready()) {
      return absl::UnavailableError(absl::StrCat("no workers: ", workers_->world_size(),
                                                 " worker ranks must be attached and ready"));
    }
  }
  auto seq = std::make_unique<Sequence>();
  seq->tokens = request.prompt;
  seq->prompt_len = static_cast<int32_t>(request.prompt.size());
  seq->limit = static_cast<int32_t>(
      std::min<int64_t>(static_cast<int64_t>(request.prompt.size()) + request.max_new_tokens, n_ctx_));
  seq->sampling = request.sampling;
  auto channel = std::make_shared<ResponseChannel>();
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_ || draining_) return absl::UnavailableError("the server is shutting down");
  seq->id = next_id_++;
  const uint64_t seq_id = seq->id;
  absl::Status s = scheduler_.Add(std::move(seq));
  if (!s.ok()) return s;
  active_[seq_id] = std::make_unique<Active>(std::move(request), channel, *tokenizer_);
  *id = seq_id;
  cv_.notify_all();
  return channel;
}

void ServingLoop::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.push_back(id);
  cv_.notify_all();
}

ServingLoop::Stats ServingLoop::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.running = scheduler_.n_running();
  s.waiting = scheduler_.n_waiting();
  s.blocks_free = scheduler_.free_blocks();
  s.blocks_total = scheduler_.total_blocks();
  s.block_size = scheduler_.config().block_size;
  s.steps = steps_;
  s.preemptions = scheduler_.preemptions();
  return s;
}

// Ends a request: frees its blocks and closes its channel. mu_ held.
void ServingLoop::Finish(uint64_t id, Active& a, FinishReason reason, const absl::Status& status) {
  scheduler_.Remove(id);
  {
    std::lock_guard<std::mutex> lock(a.channel->mu);
    a.channel->status = status;
    a.channel->done = true;
  }
  a.channel->cv.notify_all();
  if (metrics_ != nullptr && status.ok() && reason != strata::v1::FINISH_REASON_CANCELLED) {
    metrics_->ObserveEndToEnd(Seconds(std::chrono::steady_clock::now() - a.arrived));
  }
  active_.erase(id);
}

void ServingLoop::FailAll(const absl::Status& status) {
  std::vector<uint64_t> ids;
  for (auto& [id, a] : active_) ids.push_back(id);
  for (uint64_t id : ids) Finish(id, *active_[id], strata::v1::FINISH_REASON_UNSPECIFIED, status);
}

void ServingLoop::WorkersLost(const std::string& why) {
  if (down_since_ == absl::InfinitePast()) {
    down_since_ = absl::Now();
    // Disconnect the rest of the old group too, so its ranks exit and free their places for the
    // group that replaces it.
    workers_->DropAll(why);
    std::fprintf(stderr, "strata-coordinator: worker group lost (%s); %d requests wait for it to come back\n",
                 why.c_str(), static_cast<int>(active_.size()));
  }
  scheduler_.ResetAll();
}

void ServingLoop::BuildStep(const std::vector<ScheduledSeq>& step, CoordinatorMessage* msg) {
  strata::v1::StepPlan* plan = msg->mutable_step();
  plan->set_step_id(next_step_++);
  for (const ScheduledSeq& q : step) {
    strata::v1::SeqStep* s = plan->add_seqs();
    const Sequence& seq = *q.seq;
    s->set_seq_id(seq.id);
    s->mutable_tokens()->Add(seq.tokens.begin() + q.start, seq.tokens.begin() + q.start + q.n_tokens);
    s->set_start_pos(q.start);
    s->mutable_block_table()->Add(seq.blocks.begin(), seq.blocks.end());
    s->set_sample(q.sample);
    if (!q.sample) continue;
    const SamplingParams& p = seq.sampling;
    strata::v1::SamplingParams* sp = s->mutable_sampling();
    sp->set_temperature(p.temperature);
    sp->set_top_k(p.top_k);
    sp->set_top_p(p.top_p);
    sp->set_min_p(p.min_p);
    sp->set_repetition_penalty(p.repetition_penalty);
    sp->set_frequency_penalty(p.frequency_penalty);
    sp->set_presence_penalty(p.presence_penalty);
    sp->set_seed(p.seed);
    s->set_draw_index(seq.generated());
    s->set_top_logprobs(active_.at(seq.id)->request.top_logprobs);
    s->set_skip_logprob(!active_.at(seq.id)->request.logprobs);
    const bool penalties = (p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) &&
                           p.penalty_last_n != 0;
    if (penalties) {
      const size_t n = seq.tokens.size();
      const size_t window = p.penalty_last_n < 0 ? n : std::min<size_t>(n, p.penalty_last_n);
      s->mutable_recent_tokens()->Add(seq.tokens.end() - window, seq.tokens.end());
      s->set_recent_generated(std::min<int32_t>(static_cast<int32_t>(window), seq.generated()));
    }
  }
}

// Applies a step's sampled tokens: text, stop strings, finish. mu_ held.
void ServingLoop::Apply(const strata::v1::StepResult& result) {
  for (const strata::v1::SampledToken& t : result.tokens()) {
    auto it = active_.find(t.seq_id());
    Sequence* seq = scheduler_.Find(t.seq_id());
    if (it == active_.end() || seq == nullptr) continue;  // cancelled meanwhile
    Active& a = *it->second;
    seq->tokens.push_back(t.id());
    if (metrics_ != nullptr) {
      const auto now = std::chrono::steady_clock::now();
      const bool first = a.streamed == 0;
      metrics_->ObserveToken(first, Seconds(now - (first ? a.arrived : a.last_token)), seq->prompt_len);
      a.last_token = now;
    }
    ++a.streamed;
    GenerateResponse resp;
    resp.set_request_id(a.request.request_id);
    strata::v1::Token* tok = resp.add_tokens();
    tok->set_id(t.id());
    if (a.request.logprobs) tok->set_logprob(t.logprob());
    for (const strata::v1::TopLogprob& alt : t.top_logprobs()) {
      strata::v1::TopLogprob* out = tok->add_top_logprobs();
      out->set_id(alt.id());
      out->set_logprob(alt.logprob());
      out->set_text(SanitizeUtf8(tokenizer_->TokenBytes(alt.id())));
    }
    FinishReason finish = strata::v1::FINISH_REASON_UNSPECIFIED;
    std::string text;
    if (!a.request.ignore_eos && tokenizer_->IsEog(t.id())) {
      finish = strata::v1::FINISH_REASON_EOS;
    } else {
      StopMatcher::Result m = a.stop.Push(a.decoder.Push(t.id()));
      text = m.emit;
      if (m.stopped) finish = strata::v1::FINISH_REASON_STOP;
      else if (static_cast<int32_t>(seq->tokens.size()) >= seq->limit) finish = strata::v1::FINISH_REASON_LENGTH;
    }
    if (finish == strata::v1::FINISH_REASON_EOS || finish == strata::v1::FINISH_REASON_LENGTH) {
      // Release what the UTF-8 decoder and the stop matcher still hold.
      StopMatcher::Result m = a.stop.Push(a.decoder.Flush());
      text += m.emit;
      if (m.stopped) finish = strata::v1::FINISH_REASON_STOP;
      else text += a.stop.Flush();
    }
    tok->set_text(SanitizeUtf8(text));  // proto3 strings must be UTF-8; the id is exact
    if (finish != strata::v1::FINISH_REASON_UNSPECIFIED) {
      resp.set_finish_reason(finish);
      resp.mutable_usage()->set_prompt_tokens(seq->prompt_len);
      resp.mutable_usage()->set_completion_tokens(seq->generated());
    }
    {
      std::lock_guard<std::mutex> lock(a.channel->mu);
      a.channel->responses.push_back(std::move(resp));
    }
    a.channel->cv.notify_all();
    if (finish != strata::v1::FINISH_REASON_UNSPECIFIED) Finish(t.seq_id(), a, finish, absl::OkStatus());
  }
}

void ServingLoop::Run() {
  struct InFlight {
    uint64_t step_id;
    std::vector<ScheduledSeq> seqs;
  };
  std::deque<InFlight> in_flight;  // oldest first; workers run plans in the order they are sent
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Cancellations first, so their blocks are free for the next plan. A sequence inside a step
    // still running is cancelled once that step is back.
    std::vector<uint64_t> later;
    for (uint64_t id : cancelled_) {
      auto it = active_.find(id);
      if (it == active_.end()) continue;
      const Sequence* seq = scheduler_.Find(id);
      if (seq != nullptr && seq->in_flight) {
        later.push_back(id);
        continue;
      }
      Finish(id, *it->second, strata::v1::FINISH_REASON_CANCELLED, absl::CancelledError("cancelled"));
    }
    cancelled_.swap(later);
    if (!workers_->ready()) {
      for (auto& f : in_flight) scheduler_.Abandoned(f.seqs);
      in_flight.clear();
      if (ever_ready_) {
        WorkersLost("a worker went away");
        if (!active_.empty() && absl::Now() - down_since_ > recovery_timeout_) {
          FailAll(absl::UnavailableError(absl::StrCat("the worker group has been down for more than ",
                                                      absl::FormatDuration(recovery_timeout_))));
        }
      }
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      continue;
    }
    if (!ever_ready_ || down_since_ != absl::InfinitePast()) {
      if (ever_ready_) std::fprintf(stderr, "strata-coordinator: worker group back; resuming %d requests\n",
                                    static_cast<int>(active_.size()));
      ever_ready_ = true;
      down_since_ = absl::InfinitePast();
    }
    // Keep up to `depth_` plans in flight over disjoint sequences, so with P pipeline stages
    // stage 0 starts the next plan while later stages finish the previous ones.
    while (static_cast<int>(in_flight.size()) < depth_) {
      InFlight f;
      scheduler_.Schedule(&f.seqs);
      if (f.seqs.empty()) break;
      CoordinatorMessage msg;
      BuildStep(f.seqs, &msg);
      if (metrics_ != nullptr) {
        const auto now = std::chrono::steady_clock::now();
        for (const ScheduledSeq& q : f.seqs) {
          Active& a = *active_.at(q.seq->id);
          if (!a.scheduled) metrics_->ObserveQueueTime(Seconds(now - a.arrived));
          a.scheduled = true;
        }
      }
      f.step_id = msg.step().step_id();
      in_flight.push_back(std::move(f));
      // Sent unlocked so RPC threads can submit and cancel meanwhile; scheduled sequences stay
      // alive because only this thread removes sequences, and not while they are in flight.
      lock.unlock();
      absl::Status sent = workers_->SendToAll(msg);
      lock.lock();
      if (!sent.ok()) break;  // the wait below reports the broken group
    }
    if (in_flight.empty()) {
      cv_.wait_for(lock, std::chrono::milliseconds(200),
                   [&] { return stop_ || !cancelled_.empty() || scheduler_.n_waiting() > 0; });
      continue;
    }
    InFlight f = std::move(in_flight.front());
    in_flight.pop_front();
    lock.unlock();
    absl::StatusOr<strata::v1::StepResult> result = workers_->WaitResult(f.step_id, step_timeout_);
    lock.lock();
    ++steps_;
    if (result.ok() && !result->error().empty()) {
      result = absl::InternalError(absl::StrCat("worker error: ", result->error()));
    }
    if (!result.ok()) {
      std::fprintf(stderr, "strata-coordinator: step %llu failed: %s\n", static_cast<unsigned long long>(f.step_id),
                   std::string(result.status().message()).c_str());
      scheduler_.Abandoned(f.seqs);
      for (auto& g : in_flight) scheduler_.Abandoned(g.seqs);
      in_flight.clear();
      if (result.status().code() == absl::StatusCode::kInternal) {
        // The workers ran the step and reported an error: a bug, not a lost worker; retrying
        // would fail the same way.
        FailAll(absl::InternalError(std::string(result.status().message())));
      } else {
        // A worker went away or hung: drop the group (a supervisor restarts it) and keep the requests.
        WorkersLost(std::string(result.status().message()));
      }
      continue;
    }
    scheduler_.Committed(f.seqs);
    Apply(*result);
  }
  for (auto& f : in_flight) scheduler_.Abandoned(f.seqs);
}

}  // namespace strata::coordinator
