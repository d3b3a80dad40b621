// Reader for GGUF files (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), versions 2
// and 3, little-endian. The file is memory-mapped; tensor data is never copied. Parsing treats the
// file as hostile: every read is bounds-checked, counts are bounded by the bytes that remain, and
// every error is an InvalidArgument whose message starts with the file name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tensor/dtype.h"
#include "core/tensor/tensor.h"

namespace strata {

class MappedFile;

namespace gguf {

inline constexpr uint32_t kDefaultAlignment = 32;

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "u8", "i32", "f32", "bool", "string", "array", ...; "type N" for an unknown id.
std::string ValueTypeName(ValueType t);
bool IsIntegerType(ValueType t);  // u8..i64 (not bool)

// One metadata value.
struct Value {
  ValueType type = ValueType::kUint8;
  // Scalars: unsigned types use u, signed types i, f32/f64 f, bool b.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string str;
  ValueType array_type = ValueType::kUint8;  // element type when type == kArray
  std::vector<Value> array;                  // elements when type == kArray (nested arrays allowed)
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the fastest-varying (columns)
  DType type = DType::kF32;
  uint64_t offset = 0;            // relative to the start of the data section
  const uint8_t* data = nullptr;  // points into the mapping
  uint64_t nbytes = 0;

  int64_t rows() const;  // product of dims[1..]; 1 for 1-D
  int64_t cols() const { return dims.empty() ? 0 : dims[0]; }
  Tensor AsTensor() const { return {type, rows(), cols(), data}; }
};

class GgufFile {
 public:
  // Maps and parses `path`.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses a buffer that must outlive the returned object. `name` is used in error messages.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size,
                                                         const std::string& name);
  ~GgufFile();

  uint32_t version() const { return version_; }
  const std::string& name() const { return name_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the data section in the file
  // Whether the data is a read-only mapping of the file (Open), whose pages may be dropped and
  // read again; a Parse()d buffer belongs to the caller.
  bool mapped() const { return file_ != nullptr; }

  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }  // file order
  const Value* Find(absl::string_view key) const;  // nullptr if absent
  bool Has(absl::string_view key) const { return Find(key) != nullptr; }

  // Typed getters: NotFound if absent, InvalidArgument if the type is wrong. Integer getters accept
  // every integer type (GetInt also bool) and check that the value fits. GetFloat accepts f32, f64
  // and integers.
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;
  absl::StatusOr<double> GetFloat(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(absl::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(absl::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(absl::string_view key) const;
  // Return `dflt` when the key is absent; a present key of the wrong type is still an error.
  absl::StatusOr<int64_t> GetIntOr(absl::string_view key, int64_t dflt) const;
  absl::StatusOr<double> GetFloatOr(absl::string_view key, double dflt) const;
  absl::StatusOr<bool> GetBoolOr(absl::string_view key, bool dflt) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(absl::string_view name) const;  // nullptr if absent
  // The tensor `name`, checked to have exactly `dims` (GGUF order). NotFound if absent.
  absl::StatusOr<const TensorInfo*> GetTensor(absl::string_view name, std::vector<int64_t> dims) const;

 private:
  friend class GgufParser;
  GgufFile() = default;

  // Finds `key` or returns NotFound naming the file and key.
  absl::StatusOr<const Value*> Require(absl::string_view key) const;
  absl::Status TypeError(absl::string_view key, const Value& v, absl::string_view expected) const;

  std::unique_ptr<MappedFile> file_;  // set by Open; keeps the mapping alive
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  absl::flat_hash_map<std::string, size_t> metadata_index_;
  std::vector<TensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace gguf
}  // namespace strata
