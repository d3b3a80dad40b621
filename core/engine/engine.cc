#include "core/engine/engine.h"

#include <algorithm>
#include <deque>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/sampling/sampler.h"
#include "core/sampling/stop_strings.h"
#include "core/tokenizer/stream_decoder.h"
#include "core/util/status.h"

namespace strata {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kEos: return "eos";
    case FinishReason::kStop: return "stop";
  }
  return "unknown";
}

namespace {

// The run state of one request.
struct Sequence {
  Sequence(size_t index, const GenerationRequest& req, const Tokenizer& tok, int32_t n_ctx)
      : index(index),
        req(req),
        tokens(req.prompt),
        limit(std::min<int64_t>(static_cast<int64_t>(req.prompt.size()) + req.max_tokens, n_ctx)),
        sampler(req.sampling),
        decoder(tok, /*strip_leading_space=*/false),
        stop(req.stop) {
    result.prompt_tokens = static_cast<int32_t>(req.prompt.size());
  }
  int32_t pending() const { return static_cast<int32_t>(tokens.size()) - n_cached; }

  size_t index;
  const GenerationRequest& req;
  std::vector<int32_t> tokens;  // prompt + generated
  int32_t n_cached = 0;         // tokens whose K/V are in the cache
  int32_t limit;                // total tokens this sequence may reach
  std::vector<int32_t> blocks;  // block table
  Sampler sampler;
  StreamDecoder decoder;
  StopMatcher stop;
  GenerationResult result;
  bool done = false;
};

}  // namespace

namespace {
absl::Status CheckEngineOptions(const StepExecutor& executor, const Tokenizer& tokenizer,
                                const EngineOptions& options);
}  // namespace

Engine::Engine(StepExecutor* executor, std::unique_ptr<StepExecutor> owned, const Tokenizer* tokenizer,
               const EngineOptions& options)
    : executor_(executor),
      owned_executor_(std::move(owned)),
      tokenizer_(tokenizer),
      allocator_(executor->n_blocks()),
      options_(options) {
  options_.block_size = executor->block_size();
  options_.n_blocks = executor->n_blocks();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(Model* model, const Tokenizer* tokenizer, Backend* backend,
                                                       const EngineOptions& options) {
  const int32_t n_blocks = options.n_blocks > 0 ? options.n_blocks
                                                : std::max(1, options.max_seqs) *
                                                      BlocksFor(model->config().n_ctx, options.block_size);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LocalExecutor> executor,
                          LocalExecutor::Create(model, backend, options.block_size, n_blocks));
  StepExecutor* raw = executor.get();
  STRATA_RETURN_IF_ERROR(CheckEngineOptions(*raw, *tokenizer, options));
  return std::unique_ptr<Engine>(new Engine(raw, std::move(executor), tokenizer, options));
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(StepExecutor* executor, const Tokenizer* tokenizer,
                                                       const EngineOptions& options) {
  STRATA_RETURN_IF_ERROR(CheckEngineOptions(*executor, *tokenizer, options));
  return std::unique_ptr<Engine>(new Engine(executor, nullptr, tokenizer, options));
}

namespace {

absl::Status CheckEngineOptions(const StepExecutor& executor, const Tokenizer& tokenizer,
                                const EngineOptions& options) {
  const ModelConfig& c = executor.config();
  if (options.max_seqs <= 0 || options.max_seqs > executor.max_seqs()) {
    return absl::InvalidArgumentError(absl::StrCat("max_seqs must be in [1, ", executor.max_seqs(), "], got ",
                                                   options.max_seqs));
  }
  if (tokenizer.n_vocab() > c.n_vocab) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer has ", tokenizer.n_vocab(),
                                                   " tokens but the model's vocabulary is ", c.n_vocab));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Engine::Validate(const GenerationRequest& r) const {
  const ModelConfig& c = executor_->config();
  if (r.prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (static_cast<int64_t>(r.prompt.size()) >= c.n_ctx) {
    return absl::InvalidArgumentError(absl::StrCat("prompt has ", r.prompt.size(),
                                                   " tokens; the context length is ", c.n_ctx,
                                                   " and at least one must be left to generate"));
  }
  for (int32_t id : r.prompt) {
    if (id < 0 || id >= c.n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token id ", id, " is outside [0, ", c.n_vocab, ")"));
    }
  }
  if (r.max_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be positive, got ", r.max_tokens));
  }
  STRATA_RETURN_IF_ERROR(ValidateSamplingParams(r.sampling));
  const int64_t total = std::min<int64_t>(static_cast<int64_t>(r.prompt.size()) + r.max_tokens, c.n_ctx);
  if (BlocksFor(static_cast<int32_t>(total), options_.block_size) > options_.n_blocks) {
    return absl::ResourceExhaustedError(absl::StrCat("request needs ", total, " tokens of KV cache; the cache holds ",
                                                     int64_t{options_.n_blocks} * options_.block_size));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GenerationResult>> Engine::Generate(const std::vector<GenerationRequest>& requests,
                                                               const TokenCallback& on_token) {
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::Status s = Validate(requests[i]);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("request ", i, ": ", s.message()));
  }
  const ModelConfig& c = executor_->config();
  const int32_t budget = executor_->max_batch_tokens();
  const int32_t block_size = options_.block_size;
  std::deque<size_t> waiting;
  for (size_t i = 0; i < requests.size(); ++i) waiting.push_back(i);
  std::vector<std::unique_ptr<Sequence>> active;
  std::vector<GenerationResult> results(requests.size());

  auto finish = [&](Sequence& s, FinishReason reason, GeneratedToken* last) {
    // Release held-back text: what the UTF-8 decoder and the stop matcher still hold.
    if (reason != FinishReason::kStop) {
      StopMatcher::Result r = s.stop.Push(s.decoder.Flush());
      std::string tail = r.emit + (r.stopped ? std::string() : s.stop.Flush());
      if (r.stopped) reason = FinishReason::kStop;
      last->text += tail;
      s.result.text += tail;
    }
    s.result.finish = reason;
    s.done = true;
  };

  std::vector<std::pair<Sequence*, int32_t>> stepped;  // sequences in this step's batch, with their token counts
  std::vector<Sequence*> sampled;                       // sequences whose logits come back, in batch order
  while (!waiting.empty() || !active.empty()) {
    // Admit waiting requests while there is room; each reserves the blocks it can ever need, so
    // a running sequence never has to be preempted.
    while (!waiting.empty() && static_cast<int32_t>(active.size()) < options_.max_seqs) {
      auto seq = std::make_unique<Sequence>(waiting.front(), requests[waiting.front()], *tokenizer_, c.n_ctx);
      if (!allocator_.Allocate(BlocksFor(seq->limit, block_size), &seq->blocks)) break;
      waiting.pop_front();
      active.push_back(std::move(seq));
    }
    if (active.empty()) return absl::InternalError("no request fits in the KV cache");

    // Build the step: decode tokens first (one each), then prefill chunks up to the token budget.
    batch_.Clear();
    stepped.clear();
    sampled.clear();
    int32_t used = 0;
    for (int pass = 0; pass < 2; ++pass) {
      for (auto& s : active) {
        const bool decode = s->pending() == 1;
        if (decode != (pass == 0) || used >= budget) continue;
        const int32_t take = std::min(s->pending(), budget - used);
        const bool last_chunk = take == s->pending();
        batch_.AddSequence(s->tokens.data() + s->n_cached, take, s->n_cached, s->blocks, block_size,
                           last_chunk);
        stepped.emplace_back(s.get(), take);
        if (last_chunk) sampled.push_back(s.get());
        used += take;
      }
    }
    rows_.clear();
    for (Sequence* s : sampled) {
      s->sampler.Reset(s->req.sampling, DrawSeed(s->req.sampling.seed, s->result.ids.size()));
      rows_.push_back({&s->sampler, &s->tokens, s->req.prompt.size()});
    }
    if (absl::Status st = executor_->Step(batch_, rows_, &sampled_); !st.ok()) {
      for (auto& s : active) allocator_.Free(&s->blocks);  // nothing is lost: the blocks come back
      return st;
    }
    for (auto& [seq, take] : stepped) seq->n_cached += take;

    for (size_t r = 0; r < sampled.size(); ++r) {
      Sequence& s = *sampled[r];
      GeneratedToken tok;
      tok.id = sampled_[r].id;
      tok.logprob = sampled_[r].logprob;
      s.tokens.push_back(tok.id);
      s.result.ids.push_back(tok.id);
      if (!s.req.ignore_eos && tokenizer_->IsEog(tok.id)) {
        finish(s, FinishReason::kEos, &tok);
      } else {
        StopMatcher::Result m = s.stop.Push(s.decoder.Push(tok.id));
        tok.text = m.emit;
        s.result.text += m.emit;
        if (m.stopped) {
          finish(s, FinishReason::kStop, &tok);
        } else if (static_cast<int32_t>(s.tokens.size()) >= s.limit) {
          finish(s, FinishReason::kLength, &tok);
        }
      }
      if (on_token) on_token(s.index, tok);
    }
    // Retire finished sequences and free their blocks at once.
    for (auto& s : active) {
      if (!s->done) continue;
      s->result.completion_tokens = static_cast<int32_t>(s->result.ids.size());
      allocator_.Free(&s->blocks);
      results[s->index] = std::move(s->result);
    }
    active.erase(std::remove_if(active.begin(), active.end(), [](const auto& s) { return s->done; }), active.end());
  }
  return results;
}

}  // namespace strata
