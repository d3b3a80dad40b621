// strata run --model PATH --prompt TEXT [--max-tokens N] [--temperature X] [--threads N] [--json] ...
// Generates in this process, streaming text (or one JSON object per token) to stdout.
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/generation_flags.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/engine/engine.h"
#include "core/engine/json_lines.h"
#include "core/engine/model_bundle.h"

namespace strata::cli {
namespace {

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "strata run: %s\n", message.c_str());
  return code;
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  std::string model_path, prompt, dump_logits;
  int64_t threads = 0;  // 0: all cores
  bool json = false;
  GenerationFlags gen;
  FlagSet flags("run");
  flags.String("model", &model_path, "GGUF model file (required)");
  flags.String("prompt", &prompt, "prompt text (required)");
  gen.Register(&flags);
  flags.Int("threads", &threads, "CPU threads (default: all cores)");
  flags.Bool("json", &json, "one JSON object per token; the last line has finish reason and usage");
  flags.String("dump-logits", &dump_logits, "append each step's logits (f32, n_vocab per step) to this file");
  if (absl::Status s = flags.Parse(args); !s.ok()) return Fail(std::string(s.message()), 2);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (model_path.empty()) return Fail("--model is required", 2);
  if (!flags.was_set("prompt")) return Fail("--prompt is required", 2);
  if (threads < 0 || threads > 1024) return Fail(absl::StrCat("--threads must be in [0, 1024], got ", threads), 2);
  GenerationRequest request;
  if (absl::Status s = gen.Fill(flags, &request); !s.ok()) return Fail(std::string(s.message()), 2);

  CpuBackend backend(CpuBackendOptions{threads > 0 ? static_cast<int>(threads)
                                                   : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))});
  ModelOptions model_options;
  model_options.max_logit_rows = 1;
  const auto t_load = std::chrono::steady_clock::now();
  absl::StatusOr<ModelBundle> bundle = LoadModelBundle(model_path, &backend, model_options);
  if (!bundle.ok()) return Fail(std::string(bundle.status().message()));
  EngineOptions engine_options;
  engine_options.max_seqs = 1;
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(bundle->model.get(), bundle->tokenizer.get(), &backend, engine_options);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));
  FILE* dump = nullptr;
  if (!dump_logits.empty()) {
    dump = std::fopen(dump_logits.c_str(), "wb");
    if (dump == nullptr) return Fail(absl::StrCat("cannot write ", dump_logits));
    (*engine)->executor()->set_logits_observer(
        [dump](const float* row, int32_t n) { std::fwrite(row, sizeof(float), n, dump); });
  }

  request.prompt = bundle->tokenizer->Encode(prompt, bundle->tokenizer->add_bos());
  if (absl::Status s = (*engine)->Validate(request); !s.ok()) return Fail(std::string(s.message()), 2);

  const auto t_start = std::chrono::steady_clock::now();
  auto t_first = t_start;
  bool first = true;
  auto on_token = [&](size_t, const GeneratedToken& t) {
    if (first) {
      t_first = std::chrono::steady_clock::now();
      first = false;
    }
    if (json) {
      std::printf("%s\n", TokenJsonLine(t).c_str());
    } else {
      std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    }
    std::fflush(stdout);
  };
  absl::StatusOr<std::vector<GenerationResult>> results = (*engine)->Generate({request}, on_token);
  if (dump != nullptr) std::fclose(dump);
  if (!results.ok()) return Fail(std::string(results.status().message()));
  const auto t_end = std::chrono::steady_clock::now();
  const GenerationResult& r = results->front();
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::printf("%s\n", json ? FinishJsonLine(r, request.sampling.seed).c_str() : "");
  std::fprintf(stderr,
               "[%s, %d threads] load %.2f s, prompt %d tokens in %.3f s, %d tokens generated, %.2f tokens/s decode, "
               "finish: %s\n",
               backend.name().c_str(), backend.n_threads(), secs(t_load, t_start), r.prompt_tokens,
               secs(t_start, t_first), r.completion_tokens,
               r.completion_tokens > 1 ? (r.completion_tokens - 1) / secs(t_first, t_end) : 0.0,
               FinishReasonName(r.finish));
  return 0;
}

}  // namespace strata::cli
