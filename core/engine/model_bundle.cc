#include "core/engine/model_bundle.h"

#include "absl/strings/str_cat.h"
#include "core/model/gguf.h"
#include "core/tokenizer/gguf_vocab.h"
#include "core/util/status.h"

namespace strata {

absl::StatusOr<ModelBundle> LoadModelBundle(const std::string& path, Backend* backend, const ModelOptions& options) {
  ModelBundle b;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::Open(path));
  b.file = std::move(file);
  STRATA_ASSIGN_OR_RETURN(Vocab vocab, ReadGgufVocab(*b.file));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(std::move(vocab));
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat(path, ": tokenizer: ", tok.status().message()));
  }
  b.tokenizer = std::move(*tok);
  STRATA_ASSIGN_OR_RETURN(b.model, LoadModel(b.file, backend, options));
  return b;
}

}  // namespace strata
