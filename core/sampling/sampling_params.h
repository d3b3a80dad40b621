// Per-request sampling settings. The defaults sample from the model's full distribution with no
// truncation and no penalties; `temperature = 0` switches to greedy decoding.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace strata {

struct SamplingParams {
  float temperature = 1.0f;  // 0 => greedy (argmax, ties -> lowest id)
  int32_t top_k = 0;         // 0 => disabled
  float top_p = 1.0f;        // (0, 1]; 1 => disabled
  float min_p = 0.0f;        // [0, 1); 0 => disabled
  // > 0; 1 => off. CTRL-style: logit > 0 ? logit / p : logit * p, over tokens seen in the penalty
  // window of prompt + output.
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;  // [-2, 2]; logit -= f * count(token in output)
  float presence_penalty = 0.0f;   // [-2, 2]; logit -= p * (count > 0) (output tokens)
  // Window of most recent tokens considered for all penalties; -1 => whole history, 0 => disabled.
  int32_t penalty_last_n = 64;
  uint64_t seed = 0;  // same seed + same logits + same history => same tokens
};

// OK, or InvalidArgument naming the first bad field and its allowed range, e.g.
// "top_p must be in (0, 1], got 1.5". NaN is rejected everywhere.
absl::Status ValidateSamplingParams(const SamplingParams& p);

}  // namespace strata
