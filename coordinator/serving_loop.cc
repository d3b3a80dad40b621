#include "coordinator/serving_loop.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace strata::coordinator {

using strata::v1::CoordinatorMessage;
using strata::v1::FinishReason;
using strata::v1::GenerateResponse;

ServingLoop::ServingLoop(const Tokenizer* tokenizer, int32_t n_ctx, const SchedulerConfig& config,
                         WorkerPool* workers, absl::Duration step_timeout)
    : tokenizer_(tokenizer), n_ctx_(n_ctx), workers_(workers), step_timeout_(step_timeout), scheduler_(config) {
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

absl::StatusOr<std::shared_ptr<ResponseChannel>> ServingLoop::Submit(SubmitRequest request, uint64_t* id) {
  if (!workers_->ready()) {
    return absl::UnavailableError(absl::StrCat("no workers: ", workers_->world_size(),
                                               " worker ranks must be attached and ready"));
  }
  auto seq = std::make_unique<Sequence>();
  seq->tokens = request.prompt;
  seq->prompt_len = static_cast<int32_t>(request.prompt.size());
  seq->limit = static_cast<int32_t>(
      std::min<int64_t>(static_cast<int64_t>(request.prompt.size()) + request.max_new_tokens, n_ctx_));
  seq->sampling = request.sampling;
  auto channel = std::make_shared<ResponseChannel>();
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return absl::UnavailableError("the server is shutting down");
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
  (void)reason;
  active_.erase(id);
}

void ServingLoop::FailAll(const absl::Status& status) {
  std::vector<uint64_t> ids;
  for (auto& [id, a] : active_) ids.push_back(id);
  for (uint64_t id : ids) Finish(id, *active_[id], strata::v1::FINISH_REASON_UNSPECIFIED, status);
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
    GenerateResponse resp;
    resp.set_request_id(a.request.request_id);
    strata::v1::Token* tok = resp.add_tokens();
    tok->set_id(t.id());
    if (a.request.logprobs) tok->set_logprob(t.logprob());
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
    tok->set_text(text);
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
  std::vector<ScheduledSeq> step;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Cancellations first: their blocks are free for this step.
    for (uint64_t id : cancelled_) {
      auto it = active_.find(id);
      if (it != active_.end()) Finish(id, *it->second, strata::v1::FINISH_REASON_CANCELLED, absl::CancelledError("cancelled"));
    }
    cancelled_.clear();
    if (!workers_->ready()) {
      if (!active_.empty()) FailAll(absl::UnavailableError("the workers are not ready"));
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    scheduler_.Schedule(&step);
    if (step.empty()) {
      cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stop_ || !cancelled_.empty() || scheduler_.n_waiting() > 0; });
      continue;
    }
    CoordinatorMessage msg;
    BuildStep(step, &msg);
    const uint64_t step_id = msg.step().step_id();
    // The network round trip runs unlocked so RPC threads can submit and cancel meanwhile; the
    // scheduled sequences stay alive because only this thread removes sequences.
    lock.unlock();
    absl::Status sent = workers_->SendToAll(msg);
    absl::StatusOr<strata::v1::StepResult> result =
        sent.ok() ? workers_->WaitResult(step_id, step_timeout_) : absl::StatusOr<strata::v1::StepResult>(sent);
    lock.lock();
    ++steps_;
    if (result.ok() && !result->error().empty()) result = absl::InternalError(absl::StrCat("worker error: ", result->error()));
    if (!result.ok()) {
      std::fprintf(stderr, "strata-coordinator: step %llu failed: %s\n", static_cast<unsigned long long>(step_id),
                   std::string(result.status().message()).c_str());
      FailAll(absl::UnavailableError(absl::StrCat("the step failed: ", result.status().message())));
      continue;
    }
    scheduler_.Committed(step);
    Apply(*result);
  }
}

}  // namespace strata::coordinator
