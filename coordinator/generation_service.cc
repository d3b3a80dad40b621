#include "coordinator/generation_service.h"

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/sampling/sampling_params.h"

namespace strata::coordinator {

using grpc::Status;
using grpc::StatusCode;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return Status::OK;
  return Status(static_cast<StatusCode>(s.code()), std::string(s.message()));
}

GenerationService::GenerationService(const ModelConfig& config, const std::string& model_path, int tp, int pp,
                                     const Tokenizer* tokenizer, const RequestLimits& limits, ServingLoop* loop,
                                     WorkerPool* workers)
    : config_(config), model_path_(model_path), tp_(tp), pp_(pp), tokenizer_(tokenizer), limits_(limits),
      loop_(loop), workers_(workers) {
  const int32_t ctx = config_.n_ctx;
  if (limits_.max_prompt_tokens <= 0 || limits_.max_prompt_tokens >= ctx) limits_.max_prompt_tokens = ctx - 1;
  if (limits_.max_new_tokens <= 0 || limits_.max_new_tokens >= ctx) limits_.max_new_tokens = ctx - 1;
  if (limits_.max_total_tokens <= 0 || limits_.max_total_tokens > ctx) limits_.max_total_tokens = ctx;
}

Status GenerationService::Validate(const strata::v1::GenerateRequest& r, SubmitRequest* out) {
  auto invalid = [](const std::string& m) { return Status(StatusCode::INVALID_ARGUMENT, m); };
  out->request_id = r.request_id().empty() ? absl::StrCat("req-", ++request_counter_) : r.request_id();
  if (r.request_id().size() > 256) return invalid("request_id is longer than 256 bytes");
  switch (r.prompt_case()) {
    case strata::v1::GenerateRequest::kText:
      if (r.text().empty()) return invalid("prompt text is empty");
      if (static_cast<int64_t>(r.text().size()) > limits_.max_prompt_bytes) {
        return invalid(absl::StrCat("prompt text is ", r.text().size(), " bytes; the limit is ", limits_.max_prompt_bytes));
      }
      out->prompt = tokenizer_->Encode(r.text(), tokenizer_->add_bos());
      break;
    case strata::v1::GenerateRequest::kTokenIds:
      if (r.token_ids().ids().empty()) return invalid("prompt token_ids is empty");
      for (int i = 0; i < r.token_ids().ids_size(); ++i) {
        const int32_t id = r.token_ids().ids(i);
        if (id < 0 || id >= config_.n_vocab) {
          return invalid(absl::StrCat("token_ids[", i, "] = ", id, " is not a token id: the vocabulary is [0, ",
                                      config_.n_vocab, ")"));
        }
      }
      out->prompt.assign(r.token_ids().ids().begin(), r.token_ids().ids().end());
      break;
    default:
      return invalid("prompt is empty: set text or token_ids");
  }
  if (out->prompt.empty()) return invalid("prompt is empty after tokenization");
  const int32_t n_prompt = static_cast<int32_t>(out->prompt.size());
  if (n_prompt > limits_.max_prompt_tokens) {
    return invalid(absl::StrCat("prompt has ", n_prompt, " tokens; max_prompt_tokens is ", limits_.max_prompt_tokens));
  }
  const int32_t max_new = r.has_max_new_tokens() ? r.max_new_tokens() : std::min(128, limits_.max_new_tokens);
  if (max_new <= 0 || max_new > limits_.max_new_tokens) {
    return invalid(absl::StrCat("max_new_tokens must be in [1, ", limits_.max_new_tokens, "], got ", max_new));
  }
  if (static_cast<int64_t>(n_prompt) + max_new > limits_.max_total_tokens) {
    // Past the context, generation simply stops at its end (finish reason length); beyond the
    // operator's limit on total tokens it is refused.
    if (limits_.max_total_tokens < config_.n_ctx) {
      return invalid(absl::StrCat("prompt (", n_prompt, " tokens) + max_new_tokens (", max_new,
                                  ") exceeds max_total_tokens ", limits_.max_total_tokens));
    }
  }
  out->max_new_tokens = max_new;
  if (r.stop_size() > limits_.max_stop_strings) {
    return invalid(absl::StrCat("stop has ", r.stop_size(), " strings; the limit is ", limits_.max_stop_strings));
  }
  for (int i = 0; i < r.stop_size(); ++i) {
    if (r.stop(i).empty()) return invalid(absl::StrCat("stop[", i, "] is empty"));
    if (static_cast<int32_t>(r.stop(i).size()) > limits_.max_stop_length) {
      return invalid(absl::StrCat("stop[", i, "] is longer than ", limits_.max_stop_length, " bytes"));
    }
    out->stop.push_back(r.stop(i));
  }
  if (r.top_logprobs() < 0 || r.top_logprobs() > 20) {
    return invalid(absl::StrCat("top_logprobs must be in [0, 20], got ", r.top_logprobs()));
  }
  out->top_logprobs = r.top_logprobs();
  out->logprobs = r.logprobs() || r.top_logprobs() > 0;
  out->ignore_eos = r.ignore_eos();
  SamplingParams& p = out->sampling;
  const strata::v1::SamplingParams& s = r.sampling();
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_min_p()) p.min_p = s.min_p();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  if (s.has_frequency_penalty()) p.frequency_penalty = s.frequency_penalty();
  if (s.has_presence_penalty()) p.presence_penalty = s.presence_penalty();
  p.seed = s.has_seed() ? s.seed() : std::random_device{}();
  if (p.top_k < 0) return invalid(absl::StrCat("sampling.top_k must be >= 0, got ", p.top_k));
  absl::Status v = ValidateSamplingParams(p);
  if (!v.ok()) return invalid(absl::StrCat("sampling.", v.message()));
  return Status::OK;
}

Status GenerationService::Generate(grpc::ServerContext* context, const strata::v1::GenerateRequest* request,
                                   grpc::ServerWriter<strata::v1::GenerateResponse>* writer) {
  SubmitRequest submit;
  Status valid = Validate(*request, &submit);
  if (!valid.ok()) return valid;
  uint64_t id = 0;
  absl::StatusOr<std::shared_ptr<ResponseChannel>> channel = loop_->Submit(std::move(submit), &id);
  if (!channel.ok()) return ToGrpc(channel.status());
  ResponseChannel& ch = **channel;
  for (;;) {
    std::deque<strata::v1::GenerateResponse> batch;
    bool done = false;
    absl::Status final_status;
    {
      std::unique_lock<std::mutex> lock(ch.mu);
      ch.cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return ch.done || !ch.responses.empty(); });
      batch.swap(ch.responses);
      done = ch.done;
      final_status = ch.status;
    }
    // A client that went away (or whose deadline passed) frees its KV blocks at the next step.
    if (context->IsCancelled()) {
      loop_->Cancel(id);
      const bool expired = context->deadline() <= std::chrono::system_clock::now();
      return expired ? Status(StatusCode::DEADLINE_EXCEEDED, "deadline exceeded")
                     : Status(StatusCode::CANCELLED, "the client cancelled the request");
    }
    for (auto& resp : batch) {
      if (!writer->Write(resp)) {
        loop_->Cancel(id);
        return Status(StatusCode::CANCELLED, "the client went away");
      }
    }
    if (done) return ToGrpc(final_status);
  }
}

Status GenerationService::Tokenize(grpc::ServerContext*, const strata::v1::TokenizeRequest* request,
                                   strata::v1::TokenizeResponse* response) {
  if (static_cast<int64_t>(request->text().size()) > limits_.max_prompt_bytes) {
    return Status(StatusCode::INVALID_ARGUMENT, absl::StrCat("text is longer than ", limits_.max_prompt_bytes, " bytes"));
  }
  const bool special = request->has_add_special() ? request->add_special() : true;
  for (int32_t id : tokenizer_->Encode(request->text(), special && tokenizer_->add_bos())) {
    response->add_ids(id);
    response->add_pieces(tokenizer_->TokenBytes(id));
  }
  return Status::OK;
}

Status GenerationService::GetModelInfo(grpc::ServerContext*, const strata::v1::GetModelInfoRequest*,
                                       strata::v1::ModelInfo* m) {
  m->set_model_path(model_path_);
  m->set_architecture(config_.arch_name);
  m->set_name(config_.name);
  m->set_vocab_size(config_.n_vocab);
  m->set_context_length(config_.n_ctx);
  m->set_n_layers(config_.n_layers);
  m->set_n_embd(config_.n_embd);
  m->set_n_heads(config_.n_heads);
  m->set_n_kv_heads(config_.n_kv_heads);
  m->set_tp(tp_);
  m->set_pp(pp_);
  m->set_max_prompt_tokens(limits_.max_prompt_tokens);
  m->set_max_new_tokens(limits_.max_new_tokens);
  m->set_max_total_tokens(limits_.max_total_tokens);
  m->set_max_stop_strings(limits_.max_stop_strings);
  return Status::OK;
}

Status GenerationService::GetClusterStatus(grpc::ServerContext*, const strata::v1::GetClusterStatusRequest*,
                                           strata::v1::ClusterStatus* s) {
  s->set_serving(workers_->ready());
  s->set_world_size(workers_->world_size());
  for (auto& w : workers_->Status()) *s->add_workers() = w;
  const ServingLoop::Stats st = loop_->stats();
  s->set_kv_blocks_total(st.blocks_total);
  s->set_kv_blocks_free(st.blocks_free);
  s->set_kv_block_size(st.block_size);
  s->set_requests_running(st.running);
  s->set_requests_waiting(st.waiting);
  s->set_steps(st.steps);
  s->set_preemptions(st.preemptions);
  return Status::OK;
}

}  // namespace strata::coordinator
