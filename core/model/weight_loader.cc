#include "core/model/weight_loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/model/gguf.h"
#include "core/util/status.h"

namespace strata {
namespace {

// Drops the whole pages of [p, p + n) from this process's resident set (file-backed and clean,
// so they can be read again if ever touched). Purely a memory optimisation: errors are ignored.
void ReleasePages(const void* p, size_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

bool WeightLoader::Has(const std::string& name) const { return file_.FindTensor(name) != nullptr; }

absl::StatusOr<Tensor> WeightLoader::Table(const std::string& name, int64_t rows, int64_t cols) {
  STRATA_ASSIGN_OR_RETURN(const gguf::TensorInfo* info, file_.GetTensor(name, {cols, rows}));
  return backend_->PrepareTable(info->AsTensor());
}

absl::StatusOr<Tensor> WeightLoader::PrepareMapped(const Tensor& mapped) {
  STRATA_ASSIGN_OR_RETURN(Tensor prepared, backend_->PrepareWeight(mapped));
  // The backend made its own copy (a repacked or device one): the file's pages are not read again.
  if (prepared.data != mapped.data && file_.mapped()) ReleasePages(mapped.data, static_cast<size_t>(mapped.nbytes()));
  return prepared;
}

absl::StatusOr<Tensor> WeightLoader::RowShard(const std::string& name, int64_t rows, int64_t cols, int64_t offset,
                                              int64_t n) {
  STRATA_ASSIGN_OR_RETURN(const gguf::TensorInfo* info, file_.GetTensor(name, {cols, rows}));
  return PrepareMapped(info->AsTensor().RowSlice(offset, n));
}

absl::StatusOr<Tensor> WeightLoader::ColumnShard(const std::string& name, int64_t rows, int64_t cols, int64_t offset,
                                                 int64_t n) {
  STRATA_ASSIGN_OR_RETURN(const gguf::TensorInfo* info, file_.GetTensor(name, {cols, rows}));
  const Tensor full = info->AsTensor();
  if (offset == 0 && n == cols) return PrepareMapped(full);
  const int64_t block = DTypeBlockSize(full.dtype);
  if (offset % block != 0 || n % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        file_.name(), ": tensor '", name, "' (", DTypeName(static_cast<uint32_t>(full.dtype)),
        ") cannot be split at column ", offset, " into slices of ", n, " columns: slices must be whole blocks of ",
        block, " values; use fewer tensor-parallel ranks"));
  }
  const int64_t slice_bytes = RowBytes(full.dtype, n), skip = RowBytes(full.dtype, offset);
  columns_.emplace_back(static_cast<size_t>(slice_bytes * rows));
  uint8_t* dst = columns_.back().data();
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * slice_bytes, static_cast<const uint8_t*>(full.row(r)) + skip, slice_bytes);
  }
  if (file_.mapped()) ReleasePages(full.data, static_cast<size_t>(full.nbytes()));
  STRATA_ASSIGN_OR_RETURN(Tensor prepared, backend_->PrepareWeight(Tensor{full.dtype, rows, n, dst}));
  if (prepared.data != dst) columns_.pop_back();  // the backend keeps its own copy
  return prepared;
}

absl::StatusOr<const float*> WeightLoader::Vector(const std::string& name, int64_t total, int64_t offset,
                                                  int64_t n) {
  if (n < 0) n = total - offset;
  STRATA_ASSIGN_OR_RETURN(const gguf::TensorInfo* info, file_.GetTensor(name, {total}));
  Tensor t = info->AsTensor();
  if (t.dtype != DType::kF32 || offset != 0) {
    std::vector<float> all(total);
    DequantizeRow(t.dtype, t.data, all.data(), total);
    vectors_.emplace_back(all.begin() + offset, all.begin() + offset + n);
    t = Tensor{DType::kF32, 1, n, vectors_.back().data()};
  }
  // Read as plain values (norms, biases), never multiplied: a table's layout, not a weight's.
  STRATA_ASSIGN_OR_RETURN(Tensor prepared, backend_->PrepareTable(t));
  return static_cast<const float*>(prepared.data);
}

absl::StatusOr<const float*> WeightLoader::OptionalVector(const std::string& name, int64_t total, int64_t offset,
                                                          int64_t n) {
  if (!Has(name)) return static_cast<const float*>(nullptr);
  return Vector(name, total, offset, n);
}

}  // namespace strata
