#include "core/sampling/penalties.h"

#include <algorithm>
#include <utility>

namespace strata {

void ApplyPenalties(const SamplingParams& p, float* logits, int32_t vocab_offset, int32_t n,
                    const std::vector<int32_t>& history, size_t generated_begin,
                    std::vector<std::pair<int32_t, int32_t>>* scratch) {
  const bool repetition = p.repetition_penalty > 0.0f && p.repetition_penalty != 1.0f;
  if (p.penalty_last_n == 0) return;
  if (!repetition && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) return;
  const size_t size = history.size();
  const size_t window = p.penalty_last_n < 0 ? size : static_cast<size_t>(p.penalty_last_n);
  const size_t start = window >= size ? 0 : size - window;
  // (id, 1 if generated) for the window's tokens in this slice, grouped by id.
  std::vector<std::pair<int32_t, int32_t>>& seen = *scratch;
  seen.clear();
  for (size_t i = start; i < size; ++i) {
    const int32_t t = history[i];
    if (t >= vocab_offset && t < vocab_offset + n) seen.emplace_back(t, i >= generated_begin ? 1 : 0);
  }
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size();) {
    const int32_t t = seen[i].first;
    int32_t in_output = 0;
    for (; i < seen.size() && seen[i].first == t; ++i) in_output += seen[i].second;
    float& l = logits[t - vocab_offset];
    if (repetition) l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    if (in_output > 0) l -= p.frequency_penalty * static_cast<float>(in_output) + p.presence_penalty;
  }
}

}  // namespace strata
