// Writes GGUF v3 files that llama.cpp and other GGUF tools can read. Metadata is held in memory;
// tensor data is produced one tensor at a time by a callback, so writing a large model needs only
// one tensor's worth of memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/gguf.h"
#include "core/tensor/dtype.h"

namespace strata {

class GgufWriter {
 public:
  // Fills `buf` (zeroed, exactly the tensor's byte size) with the data of tensor `index`.
  using FillFn = std::function<absl::Status(size_t index, std::vector<uint8_t>& buf)>;
  using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

  // `alignment` must be a power of two; it is written as general.alignment only if not 32.
  explicit GgufWriter(uint32_t alignment = gguf::kDefaultAlignment) : alignment_(alignment) {}

  // Keys keep their first insertion order; setting a key again replaces its value in place.
  void SetU32(std::string key, uint32_t v);
  void SetI32(std::string key, int32_t v);
  void SetU64(std::string key, uint64_t v);
  void SetF32(std::string key, float v);
  void SetBool(std::string key, bool v);
  void SetString(std::string key, std::string v);
  void SetStringArray(std::string key, std::vector<std::string> v);
  void SetF32Array(std::string key, std::vector<float> v);
  void SetI32Array(std::string key, std::vector<int32_t> v);
  void SetValue(std::string key, gguf::Value v);

  // Declares a tensor (dims in GGUF order, dims[0] = columns); its data comes from the fill callback.
  // Shapes are checked by Write.
  void AddTensor(std::string name, std::vector<int64_t> dims, DType type);

  // Writes header, tensor infos, padding and data to path + ".tmp", then renames it to `path`, so a
  // failed write never leaves a half-written file. `progress(done, total)` counts tensor data bytes
  // and is called after each tensor.
  absl::Status Write(const std::string& path, const FillFn& fill, const ProgressFn& progress = nullptr) const;
  // The same bytes, in memory (for tests).
  absl::StatusOr<std::vector<uint8_t>> WriteToBuffer(const FillFn& fill) const;

 private:
  struct TensorDecl {
    std::string name;
    std::vector<int64_t> dims;
    DType type;
  };
  using Sink = std::function<absl::Status(const void* data, size_t n)>;

  absl::Status Serialize(const std::string& name, const Sink& sink, const FillFn& fill,
                         const ProgressFn& progress) const;

  uint32_t alignment_;
  std::vector<std::pair<std::string, gguf::Value>> kv_;
  std::vector<TensorDecl> tensors_;
};

}  // namespace strata
