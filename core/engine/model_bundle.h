// Everything loaded from one model file: the mapped file, its tokenizer and the model.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"

namespace strata {
namespace gguf {
class GgufFile;
}

struct ModelBundle {
  std::shared_ptr<const gguf::GgufFile> file;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Model> model;
};

// Opens a GGUF file and loads its tokenizer and model on `backend`. Errors name the file.
absl::StatusOr<ModelBundle> LoadModelBundle(const std::string& path, Backend* backend, const ModelOptions& options);
// The same for a file already open.
absl::StatusOr<ModelBundle> LoadModelBundle(std::shared_ptr<const gguf::GgufFile> file, Backend* backend,
                                            const ModelOptions& options);

}  // namespace strata
