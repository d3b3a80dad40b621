// Reads a tokenizer vocabulary from GGUF metadata (tokenizer.ggml.*) and writes one back.
#pragma once

#include "absl/status/statusor.h"
#include "core/tokenizer/vocab.h"

namespace strata {
namespace gguf {
class GgufFile;
}
class GgufWriter;

// Errors name the file and the key (missing tokens, scores of the wrong length, unknown model).
absl::StatusOr<Vocab> ReadGgufVocab(const gguf::GgufFile& file);
// Writes every tokenizer key other GGUF tools expect (model, pre, tokens, scores, token types,
// merges, special ids, add_bos/add_eos).
void WriteGgufVocab(const Vocab& vocab, GgufWriter* writer);

}  // namespace strata
