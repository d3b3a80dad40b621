// strata generate --server HOST:PORT --prompt TEXT [--max-tokens N] [--temperature X] ... [--json]
// A gRPC client of strata.v1.Generation.Generate: streams the generated text (or one JSON object per token)
// to stdout as it arrives. Only the sampling settings given on the command line are sent, so the
// server's defaults apply to the others.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "absl/strings/str_cat.h"
#include "cli/client_connection.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/generate_client.h"
#include "cli/grpc_util.h"
#include "core/engine/json_lines.h"
#include "strata/v1/generation.pb.h"

namespace strata::cli {
namespace {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "strata generate: %s\n", message.c_str());
  return code;
}

const char* FinishReasonText(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH: return "length";
    case v1::FINISH_REASON_EOS: return "eos";
    case v1::FINISH_REASON_STOP: return "stop";
    case v1::FINISH_REASON_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

std::string TokenLine(const v1::Token& t, bool with_logprob) {
  std::string line = absl::StrCat("{\"id\":", t.id(), ",\"text\":", JsonString(t.text()));
  if (with_logprob) {
    absl::StrAppend(&line, ",\"logprob\":", std::isfinite(t.logprob()) ? absl::StrCat(t.logprob()) : "null");
  }
  return line + "}";
}

// The flags, as given. Sampling values are checked by the server, which names the field.
struct GenerateFlags {
  std::string prompt, request_id;
  int64_t max_tokens = 0, top_k = 0, seed = 0;
  double temperature = 0, top_p = 0, min_p = 0, repetition = 0, frequency = 0, presence = 0, timeout = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false, logprobs = false, json = false;
};

// Fills the request from the flags that were set; an error names the flag (exit code 2).
absl::Status BuildRequest(const FlagSet& flags, const GenerateFlags& f, v1::GenerateRequest* req) {
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  req->set_request_id(f.request_id);
  req->set_text(f.prompt);
  if (flags.was_set("max-tokens")) {
    if (f.max_tokens < 0 || f.max_tokens > kInt32Max) {
      return absl::InvalidArgumentError(
          absl::StrCat("--max-tokens must be in [0, ", kInt32Max, "], got ", f.max_tokens));
    }
    req->set_max_new_tokens(static_cast<int32_t>(f.max_tokens));
  }
  v1::SamplingParams* s = req->mutable_sampling();
  if (flags.was_set("temperature")) s->set_temperature(static_cast<float>(f.temperature));
  if (flags.was_set("top-k")) {
    if (f.top_k < 0 || f.top_k > kInt32Max) {
      return absl::InvalidArgumentError(absl::StrCat("--top-k must be in [0, ", kInt32Max, "], got ", f.top_k));
    }
    s->set_top_k(static_cast<int32_t>(f.top_k));
  }
  if (flags.was_set("top-p")) s->set_top_p(static_cast<float>(f.top_p));
  if (flags.was_set("min-p")) s->set_min_p(static_cast<float>(f.min_p));
  if (flags.was_set("repetition-penalty")) s->set_repetition_penalty(static_cast<float>(f.repetition));
  if (flags.was_set("frequency-penalty")) s->set_frequency_penalty(static_cast<float>(f.frequency));
  if (flags.was_set("presence-penalty")) s->set_presence_penalty(static_cast<float>(f.presence));
  if (flags.was_set("seed")) {
    if (f.seed < 0) return absl::InvalidArgumentError(absl::StrCat("--seed must be >= 0, got ", f.seed));
    s->set_seed(static_cast<uint64_t>(f.seed));
  }
  for (const std::string& stop : f.stop) req->add_stop(stop);
  req->set_ignore_eos(f.ignore_eos);
  req->set_logprobs(f.logprobs);
  return absl::OkStatus();
}

}  // namespace

int GenerateCommand(const std::vector<std::string>& args) {
  GenerateFlags f;
  FlagSet flags("generate");
  ClientConnection connection;
  connection.Register(&flags);
  flags.String("prompt", &f.prompt, "prompt text (required)");
  flags.Int("max-tokens", &f.max_tokens, "tokens to generate (default: the server's, 128)");
  flags.Float("temperature", &f.temperature, "sampling temperature; 0 = greedy (default: the server's, 1)");
  flags.Int("top-k", &f.top_k, "keep the k most likely tokens; 0 = off");
  flags.Float("top-p", &f.top_p, "nucleus sampling mass in (0, 1]");
  flags.Float("min-p", &f.min_p, "drop tokens below min-p times the top probability");
  flags.Float("repetition-penalty", &f.repetition, "penalty for tokens already seen, 1 = off");
  flags.Float("frequency-penalty", &f.frequency, "penalty per occurrence in the output");
  flags.Float("presence-penalty", &f.presence, "penalty for tokens present in the output");
  flags.Int("seed", &f.seed, "random seed (default: random per request)");
  flags.StringList("stop", &f.stop, "stop string (repeatable)");
  flags.Bool("ignore-eos", &f.ignore_eos, "keep generating past the end-of-sequence token");
  flags.Bool("logprobs", &f.logprobs, "return the log-probability of each token (shown with --json)");
  flags.Float("timeout", &f.timeout, "give up after this many seconds (default: no deadline)");
  flags.String("request-id", &f.request_id, "request id (default: assigned by the server)");
  flags.Bool("json", &f.json, "one JSON object per token; the last line has finish reason and usage");
  if (absl::Status s = flags.Parse(args); !s.ok()) return Fail(std::string(s.message()), 2);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (connection.server.empty()) return Fail("--server is required", 2);
  if (!flags.was_set("prompt")) return Fail("--prompt is required", 2);
  if (flags.was_set("timeout") && !(f.timeout > 0))
    return Fail(absl::StrCat("--timeout must be positive, got ", f.timeout), 2);
  v1::GenerateRequest request;
  if (absl::Status s = BuildRequest(flags, f, &request); !s.ok()) return Fail(std::string(s.message()), 2);

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = connection.Connect();
  if (!channel.ok()) return Fail(std::string(channel.status().message()), 2);
  grpc::ClientContext context;
  connection.Authorize(&context);
  if (flags.was_set("timeout")) {
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(f.timeout)));
  }
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage;
  std::string request_id;
  bool printed_text = false;
  auto on_response = [&](const v1::GenerateResponse& response) {
    for (const v1::Token& t : response.tokens()) {
      if (f.json) {
        std::printf("%s\n", TokenLine(t, f.logprobs).c_str());
      } else {
        std::fwrite(t.text().data(), 1, t.text().size(), stdout);
        printed_text |= !t.text().empty();
      }
    }
    std::fflush(stdout);
    request_id = response.request_id();
    if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      finish = response.finish_reason();
      usage = response.usage();
    }
  };
  GenerateCall call(*channel, &context, request, on_response);
  const grpc::Status status = call.Await();
  if (!status.ok()) {
    if (printed_text) std::printf("\n");
    std::fflush(stdout);
    return Fail(absl::StrCat(StatusCodeName(status.error_code()), ": ", status.error_message()), 1);
  }
  if (f.json) {
    std::printf(
        "{\"finish_reason\":\"%s\",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d},\"request_id\":%s}\n",
        FinishReasonText(finish), usage.prompt_tokens(), usage.completion_tokens(), JsonString(request_id).c_str());
  } else {
    std::printf("\n");
  }
  std::fflush(stdout);
  if (finish == v1::FINISH_REASON_UNSPECIFIED) return Fail("the server ended the stream without a finish reason", 1);
  return 0;
}

}  // namespace strata::cli
