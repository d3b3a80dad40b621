// The --json output of `strata run` and `strata-worker`: one object per token, then one with the
// finish reason and usage. Strings are escaped as JSON; invalid UTF-8 becomes U+FFFD.
#pragma once

#include <cstdint>
#include <string>

#include "core/engine/engine.h"

namespace strata {

// {"id": 123, "text": " there", "logprob": -0.25}
std::string TokenJsonLine(const GeneratedToken& token);
// {"finish_reason": "length", "usage": {"prompt_tokens": 5, "completion_tokens": 200}, "seed": 7}
std::string FinishJsonLine(const GenerationResult& result, uint64_t seed);
// A JSON string literal (with quotes) for arbitrary bytes.
std::string JsonString(const std::string& bytes);

}  // namespace strata
