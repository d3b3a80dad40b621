#include "core/model/weight_loader.h"

#include "absl/strings/str_cat.h"
#include "core/model/gguf.h"
#include "core/util/status.h"

namespace strata {

bool WeightLoader::Has(const std::string& name) const { return file_.FindTensor(name) != nullptr; }

absl::StatusOr<Tensor> WeightLoader::Matrix(const std::string& name, int64_t rows, int64_t cols) {
  STRATA_ASSIGN_OR_RETURN(const gguf::TensorInfo* info, file_.GetTensor(name, {cols, rows}));
  return backend_->PrepareWeight(info->AsTensor());
}

absl::StatusOr<const float*> WeightLoader::Vector(const std::string& name, int64_t n) {
  STRATA_ASSIGN_OR_RETURN(const gguf::TensorInfo* info, file_.GetTensor(name, {n}));
  Tensor t = info->AsTensor();
  if (t.dtype != DType::kF32) {
    converted_.emplace_back(n);
    DequantizeRow(t.dtype, t.data, converted_.back().data(), n);
    t = Tensor{DType::kF32, 1, n, converted_.back().data()};
  }
  STRATA_ASSIGN_OR_RETURN(Tensor prepared, backend_->PrepareWeight(t));
  return static_cast<const float*>(prepared.data);
}

absl::StatusOr<const float*> WeightLoader::OptionalVector(const std::string& name, int64_t n) {
  if (!Has(name)) return static_cast<const float*>(nullptr);
  return Vector(name, n);
}

}  // namespace strata
