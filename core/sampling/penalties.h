// Repetition, frequency and presence penalties on a slice of the vocabulary, with exactly the
// semantics of Sampler (see sampling_params.h): used where logits are split across ranks and each
// rank penalizes its own slice before candidates are exchanged.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/sampling/sampling_params.h"

namespace strata {

// logits[0, n) hold vocabulary ids [vocab_offset, vocab_offset + n). history = prompt + generated,
// generated tokens start at generated_begin. `scratch` is reused between calls, so the
// per-token path allocates nothing once it has grown to the penalty window.
void ApplyPenalties(const SamplingParams& p, float* logits, int32_t vocab_offset, int32_t n,
                    const std::vector<int32_t>& history, size_t generated_begin,
                    std::vector<std::pair<int32_t, int32_t>>* scratch);

}  // namespace strata
