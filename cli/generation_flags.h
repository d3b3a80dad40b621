// The generation flags shared by `strata run` and the standalone `strata-worker`:
// --max-tokens, --temperature, --top-k, --top-p, --min-p, penalties, --seed, --stop, --ignore-eos.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/flags.h"
#include "core/engine/engine.h"

namespace strata::cli {

class GenerationFlags {
 public:
  void Register(FlagSet* flags);
  // Checks the values and fills everything of `request` but the prompt. Messages name the flag.
  absl::Status Fill(const FlagSet& flags, GenerationRequest* request) const;

 private:
  int64_t max_tokens_ = 128, top_k_ = 0, seed_ = 0;
  double temperature_ = 1.0, top_p_ = 1.0, min_p_ = 0.0, repetition_ = 1.0, frequency_ = 0.0, presence_ = 0.0;
  std::vector<std::string> stop_;
  bool ignore_eos_ = false;
};

}  // namespace strata::cli
