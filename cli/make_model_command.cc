// strata make-model --arch llama|gpt2 --preset NAME --dtype f32|f16|bf16|q8_0 --out PATH [--seed S]
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "core/model/make_model.h"

namespace strata::cli {
namespace {

std::string PresetList() {
  std::string s;
  for (const ModelPreset& p : ModelPresets()) absl::StrAppend(&s, "\n      ", p.arch, " ", p.name);
  return s;
}

}  // namespace

int MakeModelCommand(const std::vector<std::string>& args) {
  std::string arch, preset, dtype_name = "f32", out;
  int64_t seed = 0;
  FlagSet flags("make-model");
  flags.String("arch", &arch, "architecture: llama or gpt2 (required)");
  flags.String("preset", &preset, "model shape (required); presets:" + PresetList());
  flags.String("dtype", &dtype_name, "weight type: f32, f16, bf16 or q8_0 (default f32)");
  flags.String("out", &out, "output file (required)");
  flags.Int("seed", &seed, "random seed for the weights (default 0)");
  if (absl::Status s = flags.Parse(args); !s.ok()) {
    std::fprintf(stderr, "strata make-model: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"arch", &arch},
                                    {"preset", &preset}, {"out", &out}}) {
    if (value->empty()) {
      std::fprintf(stderr, "strata make-model: --%s is required\n", name);
      return 2;
    }
  }
  MakeModelOptions options;
  if (!ParseDType(dtype_name, &options.dtype)) {
    std::fprintf(stderr, "strata make-model: --dtype '%s' is not one of f32, f16, bf16, q8_0\n", dtype_name.c_str());
    return 2;
  }
  absl::StatusOr<ModelPreset> p = FindModelPreset(arch, preset);
  if (!p.ok()) {
    std::fprintf(stderr, "strata make-model: %s\n", std::string(p.status().message()).c_str());
    return 2;
  }
  options.preset = *p;
  options.seed = static_cast<uint64_t>(seed);
  options.out = out;

  // Progress on stderr: one updating line on a terminal, a line per 10% otherwise.
  const bool tty = isatty(fileno(stderr));
  const auto start = std::chrono::steady_clock::now();
  int last_decile = -1;
  auto progress = [&](uint64_t done, uint64_t total) {
    const double frac = total ? double(done) / total : 1.0;
    const int decile = static_cast<int>(frac * 10);
    if (!tty && decile == last_decile) return;
    last_decile = decile;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "%swriting %s: %.0f / %.0f MiB (%3.0f%%) %.1f s%s", tty ? "\r" : "", out.c_str(),
                 done / 1048576.0, total / 1048576.0, 100 * frac, secs, tty ? "" : "\n");
  };
  absl::Status s = MakeModel(options, progress);
  if (tty) std::fputc('\n', stderr);
  if (!s.ok()) {
    std::fprintf(stderr, "strata make-model: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s (%s %s, %s)\n", out.c_str(), arch.c_str(), preset.c_str(), dtype_name.c_str());
  return 0;
}

}  // namespace strata::cli
