#include "coordinator/generation_service.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace strata::coordinator {

using grpc::Status;
using grpc::StatusCode;

std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return Status::OK;
  return Status(static_cast<StatusCode>(s.code()), std::string(s.message()));
}

GenerationService::GenerationService(const ModelConfig& config, const std::string& model_path, int tp, int pp,
                                     const Tokenizer* tokenizer, const RequestLimits& limits, ServingLoop* loop,
                                     WorkerPool* workers)
    : config_(config), model_path_(model_path), tp_(tp), pp_(pp), tokenizer_(tokenizer), limits_(limits),
      loop_(loop), workers_(workers) {
  limits_ = ResolveRequestLimits(limits_, config_.n_ctx);
}

Status GenerationService::Authorize(const grpc::ServerContext& context) const {
  return api_keys_ == nullptr ? Status::OK : api_keys_->Check(context);
}

Status GenerationService::Generate(grpc::ServerContext* context, const strata::v1::GenerateRequest* request,
                                   grpc::ServerWriter<strata::v1::GenerateResponse>* writer) {
  const Status status = Stream(context, request, writer);
  if (metrics_ != nullptr) {
    if (status.ok()) {
      metrics_->CountSuccess();
    } else {
      metrics_->CountFailure(StatusCodeName(status.error_code()));
    }
  }
  return status;
}

Status GenerationService::Stream(grpc::ServerContext* context, const strata::v1::GenerateRequest* request,
                                 grpc::ServerWriter<strata::v1::GenerateResponse>* writer) {
  if (Status auth = Authorize(*context); !auth.ok()) return auth;
  SubmitRequest submit;
  // Anonymous requests are numbered here; the validator keeps a client's own id.
  if (request->request_id().empty()) submit.request_id = absl::StrCat("req-", ++request_counter_);
  Status valid = ValidateGenerateRequest(config_, *tokenizer_, limits_, *request, &submit);
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
      // Tokens and the end wake this thread; the timeout only bounds how late a client that
      // vanished while nothing is streamed (queued, or between slow steps) is noticed. A short
      // poll across dozens of RPC threads costs the workers CPU on a small machine.
      auto wait = std::chrono::milliseconds(100);
      const auto to_deadline = context->deadline() - std::chrono::system_clock::now();
      if (to_deadline < wait) {
        wait = std::max(std::chrono::milliseconds(1),
                        std::chrono::duration_cast<std::chrono::milliseconds>(to_deadline) + std::chrono::milliseconds(1));
      }
      ch.cv.wait_for(lock, wait, [&] { return ch.done || !ch.responses.empty(); });
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

Status GenerationService::Tokenize(grpc::ServerContext* context, const strata::v1::TokenizeRequest* request,
                                   strata::v1::TokenizeResponse* response) {
  if (Status auth = Authorize(*context); !auth.ok()) return auth;
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

Status GenerationService::GetModelInfo(grpc::ServerContext* context, const strata::v1::GetModelInfoRequest*,
                                       strata::v1::ModelInfo* m) {
  if (Status auth = Authorize(*context); !auth.ok()) return auth;
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

Status GenerationService::GetClusterStatus(grpc::ServerContext* context, const strata::v1::GetClusterStatusRequest*,
                                           strata::v1::ClusterStatus* s) {
  if (Status auth = Authorize(*context); !auth.ok()) return auth;
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
