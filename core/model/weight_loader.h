// Looks up a model's tensors by name with the shape the architecture expects and hands them to
// the backend. Matrices stay memory-mapped (no copy on the CPU backend); small 1-D tensors (norms,
// biases) are converted to f32 once so kernels need only one type for them; the model keeps its
// loader alive for as long as it uses the weights.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/tensor/tensor.h"

namespace strata {
namespace gguf {
class GgufFile;
}

class WeightLoader {
 public:
  WeightLoader(const gguf::GgufFile& file, Backend* backend) : file_(file), backend_(backend) {}

  bool Has(const std::string& name) const;
  // A [rows, cols] matrix (GGUF dims {cols, rows}).
  absl::StatusOr<Tensor> Matrix(const std::string& name, int64_t rows, int64_t cols);
  // A vector of n values as f32 in backend memory.
  absl::StatusOr<const float*> Vector(const std::string& name, int64_t n);
  // As Vector, or nullptr when the tensor is absent (optional biases).
  absl::StatusOr<const float*> OptionalVector(const std::string& name, int64_t n);

 private:
  const gguf::GgufFile& file_;
  Backend* backend_;
  std::deque<std::vector<float>> converted_;  // f32 copies of non-f32 vectors; the loader must outlive the model's use
};

}  // namespace strata
