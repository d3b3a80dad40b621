#include "coordinator/request_validation.h"

#include <algorithm>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/sampling/sampling_params.h"

namespace strata::coordinator {

using grpc::Status;
using grpc::StatusCode;

RequestLimits ResolveRequestLimits(RequestLimits limits, int32_t n_ctx) {
  if (limits.max_prompt_tokens <= 0 || limits.max_prompt_tokens >= n_ctx) limits.max_prompt_tokens = n_ctx - 1;
  if (limits.max_new_tokens <= 0 || limits.max_new_tokens >= n_ctx) limits.max_new_tokens = n_ctx - 1;
  if (limits.max_total_tokens <= 0 || limits.max_total_tokens > n_ctx) limits.max_total_tokens = n_ctx;
  return limits;
}

Status ValidateGenerateRequest(const ModelConfig& config, const Tokenizer& tokenizer, const RequestLimits& limits,
                               const strata::v1::GenerateRequest& r, SubmitRequest* out) {
  auto invalid = [](const std::string& m) { return Status(StatusCode::INVALID_ARGUMENT, m); };
  if (!r.request_id().empty()) out->request_id = r.request_id();
  if (r.request_id().size() > 256) return invalid("request_id is longer than 256 bytes");
  switch (r.prompt_case()) {
    case strata::v1::GenerateRequest::kText:
      if (r.text().empty()) return invalid("prompt text is empty");
      if (static_cast<int64_t>(r.text().size()) > limits.max_prompt_bytes) {
        return invalid(absl::StrCat("prompt text is ", r.text().size(), " bytes; the limit is ", limits.max_prompt_bytes));
      }
      out->prompt = tokenizer.Encode(r.text(), tokenizer.add_bos());
      break;
    case strata::v1::GenerateRequest::kTokenIds:
      if (r.token_ids().ids().empty()) return invalid("prompt token_ids is empty");
      for (int i = 0; i < r.token_ids().ids_size(); ++i) {
        const int32_t id = r.token_ids().ids(i);
        if (id < 0 || id >= config.n_vocab) {
          return invalid(absl::StrCat("token_ids[", i, "] = ", id, " is not a token id: the vocabulary is [0, ",
                                      config.n_vocab, ")"));
        }
      }
      out->prompt.assign(r.token_ids().ids().begin(), r.token_ids().ids().end());
      break;
    default:
      return invalid("prompt is empty: set text or token_ids");
  }
  if (out->prompt.empty()) return invalid("prompt is empty after tokenization");
  const int32_t n_prompt = static_cast<int32_t>(out->prompt.size());
  if (n_prompt > limits.max_prompt_tokens) {
    return invalid(absl::StrCat("prompt has ", n_prompt, " tokens; max_prompt_tokens is ", limits.max_prompt_tokens));
  }
  const int32_t max_new = r.has_max_new_tokens() ? r.max_new_tokens() : std::min(128, limits.max_new_tokens);
  if (max_new <= 0 || max_new > limits.max_new_tokens) {
    return invalid(absl::StrCat("max_new_tokens must be in [1, ", limits.max_new_tokens, "], got ", max_new));
  }
  if (static_cast<int64_t>(n_prompt) + max_new > limits.max_total_tokens) {
    // Past the context, generation simply stops at its end (finish reason length); beyond the
    // operator's limit on total tokens it is refused.
    if (limits.max_total_tokens < config.n_ctx) {
      return invalid(absl::StrCat("prompt (", n_prompt, " tokens) + max_new_tokens (", max_new,
                                  ") exceeds max_total_tokens ", limits.max_total_tokens));
    }
  }
  out->max_new_tokens = max_new;
  if (r.stop_size() > limits.max_stop_strings) {
    return invalid(absl::StrCat("stop has ", r.stop_size(), " strings; the limit is ", limits.max_stop_strings));
  }
  for (int i = 0; i < r.stop_size(); ++i) {
    if (r.stop(i).empty()) return invalid(absl::StrCat("stop[", i, "] is empty"));
    if (static_cast<int32_t>(r.stop(i).size()) > limits.max_stop_length) {
      return invalid(absl::StrCat("stop[", i, "] is longer than ", limits.max_stop_length, " bytes"));
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

}  // namespace strata::coordinator
