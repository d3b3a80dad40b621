#include "core/sampling/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace strata {

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  // Comparisons are written so that NaN fails them.
  if (!(p.temperature >= 0.0f && std::isfinite(p.temperature))) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be a finite number >= 0 (0 = greedy), got ", p.temperature));
  }
  if (p.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0 (0 = disabled), got ", p.top_k));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1), got ", p.min_p));
  }
  if (!(p.repetition_penalty > 0.0f && std::isfinite(p.repetition_penalty))) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty must be a finite number > 0 (1 = off), got ", p.repetition_penalty));
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("frequency_penalty must be in [-2, 2], got ", p.frequency_penalty));
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("presence_penalty must be in [-2, 2], got ", p.presence_penalty));
  }
  if (p.penalty_last_n < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "penalty_last_n must be >= -1 (-1 = whole history, 0 = disabled), got ", p.penalty_last_n));
  }
  return absl::OkStatus();
}

}  // namespace strata
