#include "cli/generation_flags.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace strata::cli {

void GenerationFlags::Register(FlagSet* f) {
  f->Int("max-tokens", &max_tokens_, "tokens to generate (default 128)");
  f->Float("temperature", &temperature_, "sampling temperature; 0 = greedy (default 1)");
  f->Int("top-k", &top_k_, "keep the k most likely tokens; 0 = off (default 0)");
  f->Float("top-p", &top_p_, "nucleus sampling mass in (0, 1] (default 1)");
  f->Float("min-p", &min_p_, "drop tokens below min-p times the top probability (default 0)");
  f->Float("repetition-penalty", &repetition_, "penalty for tokens already seen, 1 = off (default 1)");
  f->Float("frequency-penalty", &frequency_, "penalty per occurrence in the output (default 0)");
  f->Float("presence-penalty", &presence_, "penalty for tokens present in the output (default 0)");
  f->Int("seed", &seed_, "random seed (default: random; printed with --json)");
  f->StringList("stop", &stop_, "stop string (repeatable)");
  f->Bool("ignore-eos", &ignore_eos_, "keep generating past the end-of-sequence token");
}

absl::Status GenerationFlags::Fill(const FlagSet& flags, GenerationRequest* r) const {
  if (max_tokens_ <= 0) return absl::InvalidArgumentError(absl::StrCat("--max-tokens must be positive, got ", max_tokens_));
  if (max_tokens_ > (1 << 30)) return absl::InvalidArgumentError("--max-tokens is too large");
  if (top_k_ < 0 || top_k_ > (1 << 30)) return absl::InvalidArgumentError(absl::StrCat("--top-k must be >= 0, got ", top_k_));
  r->max_tokens = static_cast<int32_t>(max_tokens_);
  r->stop = stop_;
  r->ignore_eos = ignore_eos_;
  SamplingParams& p = r->sampling;
  p.temperature = static_cast<float>(temperature_);
  p.top_k = static_cast<int32_t>(top_k_);
  p.top_p = static_cast<float>(top_p_);
  p.min_p = static_cast<float>(min_p_);
  p.repetition_penalty = static_cast<float>(repetition_);
  p.frequency_penalty = static_cast<float>(frequency_);
  p.presence_penalty = static_cast<float>(presence_);
  p.seed = flags.was_set("seed") ? static_cast<uint64_t>(seed_) : std::random_device{}();
  return ValidateSamplingParams(p);
}

}  // namespace strata::cli
