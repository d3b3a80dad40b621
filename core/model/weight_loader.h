// Looks up a model's tensors by name with the shape the architecture expects and hands them to
// the backend, cut to this rank's shard (Megatron split):
//   kOutput: rows [offset, offset + n) of W[out, in] — a view into the mapping, no copy;
//   kInput:  columns [offset, offset + n) of every row — gathered once into owned memory, and the
//            mapped pages of the full tensor are released, so a rank keeps only its slice.
// When the backend copies a weight (the CPU backend repacks Q8_0 for its AVX2 kernels), the
// loader drops its own copy or the mapped pages, so each weight is resident once.
// Small 1-D tensors (norms, biases) are converted to f32 once. The model keeps its loader alive
// for as long as it uses the weights.
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
  // A whole [rows, cols] table read by rows (embeddings; GGUF dims {cols, rows}).
  absl::StatusOr<Tensor> Table(const std::string& name, int64_t rows, int64_t cols);
  // Rows [offset, offset + n) of a [rows, cols] matrix (split by output dimension).
  absl::StatusOr<Tensor> RowShard(const std::string& name, int64_t rows, int64_t cols, int64_t offset, int64_t n);
  // Columns [offset, offset + n) of a [rows, cols] matrix (split by input dimension).
  absl::StatusOr<Tensor> ColumnShard(const std::string& name, int64_t rows, int64_t cols, int64_t offset, int64_t n);
  // Values [offset, offset + n) of a vector of `total` values, as f32 in backend memory.
  absl::StatusOr<const float*> Vector(const std::string& name, int64_t total, int64_t offset = 0, int64_t n = -1);
  // As Vector, or nullptr when the tensor is absent (optional biases).
  absl::StatusOr<const float*> OptionalVector(const std::string& name, int64_t total, int64_t offset = 0,
                                              int64_t n = -1);

 private:
  // The backend's copy of a weight that is a view into the mapped file, whose pages are released
  // when the backend made its own copy.
  absl::StatusOr<Tensor> PrepareMapped(const Tensor& mapped);

  const gguf::GgufFile& file_;
  Backend* backend_;
  std::deque<std::vector<float>> vectors_;     // f32 copies of vector slices
  std::deque<std::vector<uint8_t>> columns_;   // gathered column shards
};

}  // namespace strata
