// Fuzzes the coordinator's request validation: the input is parsed as a serialized
// strata.v1.GenerateRequest (what the gRPC server hands the service; bytes that do not parse are
// refused by gRPC before the service sees them) and validated against two small models: a llama
// tokenizer with the default limits, and a gpt2 tokenizer whose embedding is larger than its
// vocabulary, under tight operator limits. An accepted request must be within every limit; a
// refused one must be INVALID_ARGUMENT with a message.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "coordinator/request_validation.h"
#include "core/sampling/sampling_params.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/vocab_builder.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/stubs/logging.h"
#include "strata/v1/generation.pb.h"

namespace strata::coordinator {
namespace {

struct Setup {
  const char* name;
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  RequestLimits limits;  // resolved
};

std::unique_ptr<Tokenizer> MustCreate(Vocab vocab) {
  auto t = Tokenizer::Create(std::move(vocab));
  FUZZ_CHECK(t.ok(), "%s", t.status().ToString().c_str());
  return std::move(*t);
}

const std::vector<Setup>& Setups() {
  static const std::vector<Setup>* setups = [] {
    // Bytes that do not parse are expected here; protobuf would log each one.
    google::protobuf::SetLogHandler(nullptr);
    auto* v = new std::vector<Setup>;
    {
      Setup s{"llama-defaults", {}, MustCreate(BuildLlamaVocab(512)), {}};
      s.config.arch_name = "llama";
      s.config.n_vocab = s.tokenizer->n_vocab();
      s.config.n_ctx = 256;
      s.limits = ResolveRequestLimits(RequestLimits{}, s.config.n_ctx);
      v->push_back(std::move(s));
    }
    {
      Setup s{"gpt2-tight", {}, MustCreate(BuildGpt2Vocab(300)), {}};
      s.config.arch = Arch::kGpt2;
      s.config.arch_name = "gpt2";
      s.config.n_vocab = s.tokenizer->n_vocab() + 20;  // padded embedding: ids past the tokenizer are valid
      s.config.n_ctx = 64;
      RequestLimits l;
      l.max_prompt_tokens = 40;
      l.max_new_tokens = 30;
      l.max_total_tokens = 50;
      l.max_stop_strings = 3;
      l.max_stop_length = 8;
      l.max_prompt_bytes = 200;
      s.limits = ResolveRequestLimits(l, s.config.n_ctx);
      v->push_back(std::move(s));
    }
    return v;
  }();
  return *setups;
}

void Check(const Setup& s, const strata::v1::GenerateRequest& r) {
  SubmitRequest out;
  out.request_id = "req-1";
  const grpc::Status status = ValidateGenerateRequest(s.config, *s.tokenizer, s.limits, r, &out);
  if (!status.ok()) {
    FUZZ_CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT, "%s: code %d: %s", s.name,
               static_cast<int>(status.error_code()), status.error_message().c_str());
    FUZZ_CHECK(!status.error_message().empty(), "%s: error without a message", s.name);
    return;
  }
  const RequestLimits& l = s.limits;
  FUZZ_CHECK(out.request_id == (r.request_id().empty() ? "req-1" : r.request_id()), "%s: request id", s.name);
  FUZZ_CHECK(out.request_id.size() <= 256, "%s: request id of %zu bytes", s.name, out.request_id.size());
  FUZZ_CHECK(!out.prompt.empty() && static_cast<int64_t>(out.prompt.size()) <= l.max_prompt_tokens,
             "%s: prompt of %zu tokens", s.name, out.prompt.size());
  for (int32_t id : out.prompt) FUZZ_CHECK(id >= 0 && id < s.config.n_vocab, "%s: prompt id %d", s.name, id);
  FUZZ_CHECK(out.max_new_tokens >= 1 && out.max_new_tokens <= l.max_new_tokens, "%s: max_new_tokens %d", s.name,
             out.max_new_tokens);
  if (l.max_total_tokens < s.config.n_ctx) {
    FUZZ_CHECK(static_cast<int64_t>(out.prompt.size()) + out.max_new_tokens <= l.max_total_tokens,
               "%s: total tokens over the limit", s.name);
  }
  FUZZ_CHECK(static_cast<int64_t>(out.stop.size()) <= l.max_stop_strings, "%s: %zu stop strings", s.name,
             out.stop.size());
  for (const std::string& stop : out.stop) {
    FUZZ_CHECK(!stop.empty() && static_cast<int64_t>(stop.size()) <= l.max_stop_length, "%s: stop of %zu bytes",
               s.name, stop.size());
  }
  FUZZ_CHECK(out.top_logprobs >= 0 && out.top_logprobs <= 20, "%s: top_logprobs %d", s.name, out.top_logprobs);
  FUZZ_CHECK(out.top_logprobs == 0 || out.logprobs, "%s: top_logprobs without logprobs", s.name);
  const absl::Status sampling = ValidateSamplingParams(out.sampling);
  FUZZ_CHECK(sampling.ok(), "%s: accepted bad sampling: %s", s.name, sampling.ToString().c_str());
  FUZZ_CHECK(std::isfinite(out.sampling.temperature) && out.sampling.top_k >= 0, "%s: sampling", s.name);
}

}  // namespace
}  // namespace strata::coordinator

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::coordinator;
  const std::vector<Setup>& setups = Setups();
  strata::v1::GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  for (const Setup& s : setups) Check(s, request);
  return 0;
}
