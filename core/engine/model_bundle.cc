#include "core/engine/model_bundle.h"

#include "absl/strings/str_cat.h"
#include "core/model/gguf.h"
#include "core/tokenizer/gguf_vocab.h"
#include "core/util/status.h"

namespace strata {

absl::StatusOr<ModelBundle> LoadModelBundle(const std::string& path, Backend* backend, const ModelOptions& options) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::Open(path));
  return LoadModelBundle(std::move(file), backend, options);
}

absl::StatusOr<ModelBundle> LoadModelBundle(std::shared_ptr<const gguf::GgufFile> file, Backend* backend,
                                            const ModelOptions& options) {
  ModelBundle b;
  b.file = std::move(file);
  const std::string& path = b.file->name();
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
