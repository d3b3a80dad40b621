// strata run --model PATH --prompt TEXT [--max-tokens N] [--temperature X] [--threads N] [--json] ...
// Generates in this process, streaming text (or one JSON object per token) to stdout.
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/engine/engine.h"
#include "core/engine/model_bundle.h"
#include "nlohmann/json.hpp"

namespace strata::cli {
namespace {

struct RunConfig {
  std::string model, prompt;
  int64_t max_tokens = 128;
  int64_t threads = 0;  // 0: all cores
  bool json = false;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  SamplingParams sampling;
  bool seed_given = false;
};

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "strata run: %s\n", message.c_str());
  return code;
}

std::string Json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // invalid UTF-8 -> U+FFFD
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  RunConfig cfg;
  double temperature = 0.8, top_p = 1.0, min_p = 0.0, rep = 1.0, freq = 0.0, pres = 0.0;
  int64_t top_k = 0, seed = 0;
  FlagSet flags("run");
  flags.String("model", &cfg.model, "GGUF model file (required)");
  flags.String("prompt", &cfg.prompt, "prompt text (required)");
  flags.Int("max-tokens", &cfg.max_tokens, "tokens to generate (default 128)");
  flags.Float("temperature", &temperature, "sampling temperature; 0 = greedy (default 0.8)");
  flags.Int("top-k", &top_k, "keep the k most likely tokens; 0 = off (default 0)");
  flags.Float("top-p", &top_p, "nucleus sampling mass in (0, 1] (default 1)");
  flags.Float("min-p", &min_p, "drop tokens below min-p times the top probability (default 0)");
  flags.Float("repetition-penalty", &rep, "penalty for tokens already seen, 1 = off (default 1)");
  flags.Float("frequency-penalty", &freq, "penalty per occurrence in the output (default 0)");
  flags.Float("presence-penalty", &pres, "penalty for tokens present in the output (default 0)");
  flags.Int("seed", &seed, "random seed (default: random; printed with --json)");
  flags.StringList("stop", &cfg.stop, "stop string (repeatable)");
  flags.Bool("ignore-eos", &cfg.ignore_eos, "keep generating past the end-of-sequence token");
  flags.Int("threads", &cfg.threads, "CPU threads (default: all cores)");
  flags.Bool("json", &cfg.json, "one JSON object per token; the last line has finish reason and usage");
  if (absl::Status s = flags.Parse(args); !s.ok()) return Fail(std::string(s.message()), 2);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (cfg.model.empty()) return Fail("--model is required", 2);
  if (!flags.was_set("prompt")) return Fail("--prompt is required", 2);
  if (cfg.max_tokens <= 0) return Fail(absl::StrCat("--max-tokens must be positive, got ", cfg.max_tokens), 2);
  if (cfg.max_tokens > (1 << 30)) return Fail("--max-tokens is too large", 2);
  if (cfg.threads < 0 || cfg.threads > 1024) return Fail(absl::StrCat("--threads must be in [0, 1024], got ", cfg.threads), 2);
  if (top_k < 0 || top_k > (1 << 30)) return Fail(absl::StrCat("--top-k must be >= 0, got ", top_k), 2);
  cfg.sampling.temperature = static_cast<float>(temperature);
  cfg.sampling.top_k = static_cast<int32_t>(top_k);
  cfg.sampling.top_p = static_cast<float>(top_p);
  cfg.sampling.min_p = static_cast<float>(min_p);
  cfg.sampling.repetition_penalty = static_cast<float>(rep);
  cfg.sampling.frequency_penalty = static_cast<float>(freq);
  cfg.sampling.presence_penalty = static_cast<float>(pres);
  cfg.sampling.seed = flags.was_set("seed") ? static_cast<uint64_t>(seed) : std::random_device{}();
  if (absl::Status s = ValidateSamplingParams(cfg.sampling); !s.ok()) return Fail(std::string(s.message()), 2);

  CpuBackendOptions backend_options;
  backend_options.n_threads =
      cfg.threads > 0 ? static_cast<int>(cfg.threads) : std::max(1u, std::thread::hardware_concurrency());
  CpuBackend backend(backend_options);
  ModelOptions model_options;
  model_options.max_logit_rows = 1;
  const auto t_load = std::chrono::steady_clock::now();
  absl::StatusOr<ModelBundle> bundle = LoadModelBundle(cfg.model, &backend, model_options);
  if (!bundle.ok()) return Fail(std::string(bundle.status().message()));
  EngineOptions engine_options;
  engine_options.max_seqs = 1;
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(bundle->model.get(), bundle->tokenizer.get(), &backend, engine_options);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));

  GenerationRequest request;
  request.prompt = bundle->tokenizer->Encode(cfg.prompt, bundle->tokenizer->add_bos());
  request.sampling = cfg.sampling;
  request.max_tokens = static_cast<int32_t>(cfg.max_tokens);
  request.stop = cfg.stop;
  request.ignore_eos = cfg.ignore_eos;
  if (absl::Status s = (*engine)->Validate(request); !s.ok()) return Fail(std::string(s.message()), 2);

  const auto t_start = std::chrono::steady_clock::now();
  auto t_first = t_start;
  bool first = true;
  auto on_token = [&](size_t, const GeneratedToken& t) {
    if (first) {
      t_first = std::chrono::steady_clock::now();
      first = false;
    }
    if (cfg.json) {
      std::printf("%s\n", Json({{"id", t.id}, {"text", t.text}, {"logprob", t.logprob}}).c_str());
    } else {
      std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    }
    std::fflush(stdout);
  };
  absl::StatusOr<std::vector<GenerationResult>> results = (*engine)->Generate({request}, on_token);
  if (!results.ok()) return Fail(std::string(results.status().message()));
  const auto t_end = std::chrono::steady_clock::now();
  const GenerationResult& r = results->front();
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  const double decode_s = secs(t_first, t_end);
  if (cfg.json) {
    std::printf("%s\n", Json({{"finish_reason", FinishReasonName(r.finish)},
                              {"usage", {{"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.completion_tokens}}},
                              {"seed", cfg.sampling.seed}})
                            .c_str());
  } else {
    std::printf("\n");
  }
  std::fprintf(stderr,
               "[%s] load %.2f s, prompt %d tokens in %.3f s, %d tokens generated, %.2f tokens/s decode, finish: %s\n",
               backend.name().c_str(), secs(t_load, t_start), r.prompt_tokens, secs(t_start, t_first),
               r.completion_tokens, r.completion_tokens > 1 ? (r.completion_tokens - 1) / decode_s : 0.0,
               FinishReasonName(r.finish));
  return 0;
}

}  // namespace strata::cli
