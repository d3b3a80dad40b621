#include "core/model/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/util/mapped_file.h"
#include "core/util/status.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the GGUF reader assumes a little-endian host");

namespace strata {
namespace gguf {
namespace {

// Nested arrays recurse; a hostile file could otherwise nest deep enough to overflow the stack.
constexpr int kMaxArrayDepth = 16;
// Each parsed value costs ~100 bytes of memory, so a file made of one huge u8 array could otherwise
// make us allocate 100x its size. Real models have around a million values (vocab arrays).
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 23;
constexpr uint32_t kMaxDims = 4;

// Names and keys come from the file: escape them and cut them short so that messages stay readable.
std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 96;
  if (s.size() <= kMax) return absl::StrCat("'", absl::CHexEscape(s), "'");
  return absl::StrCat("'", absl::CHexEscape(s.substr(0, kMax)), "...'");
}

// Smallest encoding of one value of type t; used to bound counts by the bytes left.
uint64_t MinValueBytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
      return 8;
    case ValueType::kString:
      return 8;  // u64 length
    case ValueType::kArray:
      return 12;  // u32 element type + u64 count
  }
  return 1;
}

bool IsKnownType(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }

std::string DimsString(const std::vector<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

}  // namespace

std::string ValueTypeName(ValueType t) {
  static const char* const kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  if (i < sizeof(kNames) / sizeof(kNames[0])) return kNames[i];
  return absl::StrCat("type ", i);
}

bool IsIntegerType(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kUint16:
    case ValueType::kInt16:
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kUint64:
    case ValueType::kInt64:
      return true;
    default:
      return false;
  }
}

int64_t TensorInfo::rows() const {
  int64_t r = 1;
  for (size_t d = 1; d < dims.size(); ++d) r *= dims[d];
  return r;
}

// Reads one buffer front to back. Every read checks the bytes left; errors carry the file name, what
// was being read (the "context": a key or tensor name) and the byte offset.
class GgufParser {
 public:
  GgufParser(const uint8_t* data, size_t size, GgufFile* out) : data_(data), size_(size), out_(out) {}

  absl::Status Run() {
    STRATA_RETURN_IF_ERROR(ParseHeader());
    STRATA_RETURN_IF_ERROR(ParseMetadata());
    STRATA_RETURN_IF_ERROR(ParseAlignment());
    return ParseTensors();
  }

 private:
  size_t remaining() const { return size_ - pos_; }

  absl::Status Error(absl::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(out_->name_, ": ", msg));
  }
  absl::Status Truncated(uint64_t need, absl::string_view what) const {
    return Error(absl::StrFormat("%s: truncated: %s needs %d bytes at byte offset %d, but only %d remain",
                                 context_, what, need, pos_, remaining()));
  }

  template <typename T>
  absl::Status Read(T* out, absl::string_view what) {
    if (remaining() < sizeof(T)) return Truncated(sizeof(T), what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, absl::string_view what) {
    uint64_t len = 0;
    STRATA_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return Error(
          absl::StrFormat("%s: truncated: %s at byte offset %d has length %d, but only %d bytes remain",
                          context_, what, pos_ - 8, len, remaining()));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return absl::OkStatus();
  }

  // Counts come before their elements, so a count that the rest of the file cannot hold is corrupt;
  // checking it here keeps us from reserving memory for 2^62 elements.
  absl::Status CheckCount(uint64_t count, uint64_t min_bytes_each, absl::string_view what) const {
    if (count > remaining() / min_bytes_each) {
      return Error(absl::StrFormat(
          "%s: %s %d at byte offset %d is too large: only %d bytes remain (truncated or corrupt file)",
          context_, what, count, pos_ - 8, remaining()));
    }
    return absl::OkStatus();
  }

  absl::Status CountValues(uint64_t n) {
    n_values_ += n;
    if (n_values_ > kMaxMetadataValues) {
      return Error(absl::StrFormat("%s: metadata holds more than %d values (at byte offset %d)", context_,
                                   kMaxMetadataValues, pos_));
    }
    return absl::OkStatus();
  }

  absl::Status ParseHeader() {
    context_ = "header";
    char magic[4];
    STRATA_RETURN_IF_ERROR(Read(&magic, "the magic"));
    if (std::memcmp(magic, "GGUF", 4) != 0) {
      return Error(absl::StrFormat("not a GGUF file: it starts with \"%s\", expected \"GGUF\"",
                                   absl::CHexEscape(absl::string_view(magic, 4))));
    }
    uint32_t version = 0;
    STRATA_RETURN_IF_ERROR(Read(&version, "the version"));
    const uint32_t swapped = __builtin_bswap32(version);
    if (version == 1) {
      return Error(
          "GGUF version 1 is not supported (it uses 32-bit counts); strata reads versions 2 and 3, "
          "re-convert the model with a current llama.cpp");
    }
    if (version != 2 && version != 3) {
      if (swapped >= 1 && swapped <= 3) {
        return Error(
            absl::StrFormat("the file is big-endian (byte-swapped version %d); strata reads only "
                            "little-endian GGUF files",
                            swapped));
      }
      return Error(absl::StrFormat("unsupported GGUF version %d (strata reads versions 2 and 3)", version));
    }
    out_->version_ = version;
    STRATA_RETURN_IF_ERROR(Read(&n_tensors_, "the tensor count"));
    STRATA_RETURN_IF_ERROR(Read(&n_kv_, "the metadata count"));
    // Bound both counts by the smallest possible entry: a key/value is at least 8 + 4 + 1 bytes, a
    // tensor info 8 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    if (n_kv_ > remaining() / 13) {
      return Error(
          absl::StrFormat("header: metadata count %d is too large: only %d bytes remain "
                          "(truncated or corrupt file)",
                          n_kv_, remaining()));
    }
    if (n_tensors_ > remaining() / 32) {
      return Error(
          absl::StrFormat("header: tensor count (n_tensors) %d is too large: only %d bytes remain "
                          "(truncated or corrupt file)",
                          n_tensors_, remaining()));
    }
    return absl::OkStatus();
  }

  absl::Status ParseValue(ValueType type, int depth, Value* v) {
    v->type = type;
    switch (type) {
      case ValueType::kUint8:
        return ReadScalar<uint8_t>(&v->u, "a u8");
      case ValueType::kInt8:
        return ReadScalar<int8_t>(&v->i, "an i8");
      case ValueType::kUint16:
        return ReadScalar<uint16_t>(&v->u, "a u16");
      case ValueType::kInt16:
        return ReadScalar<int16_t>(&v->i, "an i16");
      case ValueType::kUint32:
        return ReadScalar<uint32_t>(&v->u, "a u32");
      case ValueType::kInt32:
        return ReadScalar<int32_t>(&v->i, "an i32");
      case ValueType::kUint64:
        return ReadScalar<uint64_t>(&v->u, "a u64");
      case ValueType::kInt64:
        return ReadScalar<int64_t>(&v->i, "an i64");
      case ValueType::kFloat32:
        return ReadScalar<float>(&v->f, "an f32");
      case ValueType::kFloat64:
        return ReadScalar<double>(&v->f, "an f64");
      case ValueType::kBool: {
        uint8_t x = 0;
        STRATA_RETURN_IF_ERROR(Read(&x, "a bool"));
        if (x > 1) {
          return Error(absl::StrFormat("%s: bool value %d at byte offset %d is neither 0 nor 1", context_, x,
                                       pos_ - 1));
        }
        v->b = x != 0;
        return absl::OkStatus();
      }
      case ValueType::kString:
        return ReadString(&v->str, "a string");
      case ValueType::kArray:
        return ParseArray(depth, v);
    }
    return Error(absl::StrFormat("%s: unknown value type %d", context_, static_cast<uint32_t>(type)));
  }

  template <typename T, typename Field>
  absl::Status ReadScalar(Field* field, absl::string_view what) {
    T x{};
    STRATA_RETURN_IF_ERROR(Read(&x, what));
    *field = static_cast<Field>(x);
    return absl::OkStatus();
  }

  absl::Status ParseArray(int depth, Value* v) {
    if (depth >= kMaxArrayDepth) {
      return Error(absl::StrFormat("%s: arrays nested more than %d deep (at byte offset %d)", context_,
                                   kMaxArrayDepth, pos_));
    }
    uint32_t elem_type = 0;
    STRATA_RETURN_IF_ERROR(Read(&elem_type, "an array element type"));
    if (!IsKnownType(elem_type)) {
      return Error(absl::StrFormat("%s: unknown array element type %d at byte offset %d", context_, elem_type,
                                   pos_ - 4));
    }
    uint64_t count = 0;
    STRATA_RETURN_IF_ERROR(Read(&count, "an array count"));
    const auto et = static_cast<ValueType>(elem_type);
    STRATA_RETURN_IF_ERROR(CheckCount(count, MinValueBytes(et), "array count"));
    STRATA_RETURN_IF_ERROR(CountValues(count));
    v->array_type = et;
    v->array.resize(count);
    for (Value& e : v->array) STRATA_RETURN_IF_ERROR(ParseValue(et, depth + 1, &e));
    return absl::OkStatus();
  }

  absl::Status ParseMetadata() {
    // n_kv_ is bounded only loosely (tensor data counts as "remaining"), so reserve a modest amount.
    out_->metadata_.reserve(std::min<uint64_t>(n_kv_, 1024));
    for (uint64_t k = 0; k < n_kv_; ++k) {
      context_ = absl::StrCat("metadata entry #", k);
      const size_t start = pos_;
      std::string key;
      STRATA_RETURN_IF_ERROR(ReadString(&key, "the key"));
      context_ = absl::StrCat("metadata key ", Quote(key));
      if (!out_->metadata_index_.emplace(key, out_->metadata_.size()).second) {
        return Error(absl::StrFormat("duplicate metadata key %s at byte offset %d", Quote(key), start));
      }
      uint32_t type = 0;
      STRATA_RETURN_IF_ERROR(Read(&type, "the value type"));
      if (!IsKnownType(type)) {
        return Error(
            absl::StrFormat("%s: unknown value type %d at byte offset %d", context_, type, pos_ - 4));
      }
      STRATA_RETURN_IF_ERROR(CountValues(1));
      out_->metadata_.emplace_back(std::move(key), Value());
      STRATA_RETURN_IF_ERROR(ParseValue(static_cast<ValueType>(type), 0, &out_->metadata_.back().second));
    }
    return absl::OkStatus();
  }

  absl::Status ParseAlignment() {
    const Value* a = out_->Find("general.alignment");
    if (a == nullptr) return absl::OkStatus();
    if (a->type != ValueType::kUint32) {
      return Error(absl::StrCat("metadata key 'general.alignment' has type ", ValueTypeName(a->type),
                                ", expected u32"));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return Error(absl::StrCat("general.alignment is ", a->u, "; it must be a nonzero power of two"));
    }
    out_->alignment_ = a->u;
    return absl::OkStatus();
  }

  absl::Status ParseTensorInfo(uint64_t index, TensorInfo* t) {
    context_ = absl::StrCat("tensor info #", index);
    STRATA_RETURN_IF_ERROR(ReadString(&t->name, "the tensor name"));
    const std::string qname = Quote(t->name);
    context_ = absl::StrCat("tensor ", qname);
    uint32_t n_dims = 0;
    STRATA_RETURN_IF_ERROR(Read(&n_dims, "the number of dimensions"));
    if (n_dims < 1 || n_dims > kMaxDims) {
      return Error(
          absl::StrFormat("tensor %s has %d dimensions; GGUF tensors have 1 to %d (at byte offset %d)", qname,
                          n_dims, kMaxDims, pos_ - 4));
    }
    t->dims.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      STRATA_RETURN_IF_ERROR(Read(&dim, "a dimension"));
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(
            absl::StrFormat("tensor %s has dimension %d of size %d; sizes must be positive "
                            "(at byte offset %d)",
                            qname, d, dim, pos_ - 8));
      }
      t->dims[d] = static_cast<int64_t>(dim);
    }
    uint32_t type = 0;
    STRATA_RETURN_IF_ERROR(Read(&type, "the tensor type"));
    if (!IsSupportedDType(type)) {
      return Error(
          absl::StrFormat("tensor %s has type %s, which strata does not support "
                          "(supported: f32, f16, bf16, q8_0)",
                          qname, DTypeName(type)));
    }
    t->type = static_cast<DType>(type);
    return Read(&t->offset, "the tensor data offset");
  }

  // Checks the size and placement of a tensor whose info was parsed, and points it into the buffer.
  absl::Status PlaceTensor(TensorInfo* t) {
    const std::string qname = Quote(t->name);
    const int64_t block = DTypeBlockSize(t->type);
    if (t->cols() % block != 0) {
      return Error(
          absl::StrFormat("tensor %s has %d columns, which is not a multiple of the %s block size %d", qname,
                          t->cols(), DTypeName(static_cast<uint32_t>(t->type)), block));
    }
    uint64_t nbytes = static_cast<uint64_t>(t->cols() / block);
    bool overflow = __builtin_mul_overflow(nbytes, static_cast<uint64_t>(DTypeBlockBytes(t->type)), &nbytes);
    for (size_t d = 1; d < t->dims.size(); ++d) {
      overflow |= __builtin_mul_overflow(nbytes, static_cast<uint64_t>(t->dims[d]), &nbytes);
    }
    if (overflow || nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(absl::StrFormat("tensor %s with dims %s is too large", qname, DimsString(t->dims)));
    }
    t->nbytes = nbytes;
    if (t->offset % out_->alignment_ != 0) {
      return Error(
          absl::StrFormat("tensor %s has data offset %d, which is not a multiple of the alignment %d", qname,
                          t->offset, out_->alignment_));
    }
    const uint64_t data_offset = out_->data_offset_;
    if (data_offset > size_ || t->offset > size_ - data_offset || nbytes > size_ - data_offset - t->offset) {
      return Error(
          absl::StrFormat("tensor %s (%d bytes at data offset %d, file offset %d) extends past the "
                          "end of the file (%d bytes); the file is truncated or corrupt",
                          qname, nbytes, t->offset, data_offset + t->offset, size_));
    }
    t->data = data_ + data_offset + t->offset;
    return absl::OkStatus();
  }

  absl::Status ParseTensors() {
    auto& tensors = out_->tensors_;
    tensors.reserve(std::min<uint64_t>(n_tensors_, 4096));  // grows with what is actually parsed
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      const size_t start = pos_;
      tensors.emplace_back();
      STRATA_RETURN_IF_ERROR(ParseTensorInfo(i, &tensors.back()));
      if (!out_->tensor_index_.emplace(tensors.back().name, i).second) {
        return Error(
            absl::StrFormat("duplicate tensor name %s at byte offset %d", Quote(tensors.back().name), start));
      }
    }
    // The data section starts at the first aligned offset after the header. A file without tensors may
    // end before it, which is why data_offset may exceed size_.
    const uint64_t align = out_->alignment_;
    out_->data_offset_ = (static_cast<uint64_t>(pos_) + align - 1) / align * align;
    for (TensorInfo& t : tensors) STRATA_RETURN_IF_ERROR(PlaceTensor(&t));
    return absl::OkStatus();
  }

  const uint8_t* data_;
  size_t size_;
  GgufFile* out_;
  size_t pos_ = 0;
  std::string context_;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t n_values_ = 0;
};

GgufFile::~GgufFile() = default;

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, Parse(file->data(), file->size(), path));
  gguf->file_ = std::move(file);
  return gguf;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size,
                                                          const std::string& name) {
  std::unique_ptr<GgufFile> out(new GgufFile());
  out->name_ = name;
  STRATA_RETURN_IF_ERROR(GgufParser(data, size, out.get()).Run());
  return out;
}

// ---- metadata getters ----

const Value* GgufFile::Find(absl::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

absl::StatusOr<const Value*> GgufFile::Require(absl::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(name_, ": metadata key '", key, "' not found"));
  return v;
}

absl::Status GgufFile::TypeError(absl::string_view key, const Value& v, absl::string_view expected) const {
  std::string actual = ValueTypeName(v.type);
  if (v.type == ValueType::kArray) actual = absl::StrCat("array of ", ValueTypeName(v.array_type));
  return absl::InvalidArgumentError(
      absl::StrCat(name_, ": metadata key '", key, "' has type ", actual, ", expected ", expected));
}

namespace {

// The value of an integer (or bool) as int64; false if it does not fit.
bool ToInt64(const Value& v, int64_t* out) {
  switch (v.type) {
    case ValueType::kUint8:
    case ValueType::kUint16:
    case ValueType::kUint32:
    case ValueType::kUint64:
      if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
      *out = static_cast<int64_t>(v.u);
      return true;
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64:
      *out = v.i;
      return true;
    case ValueType::kBool:
      *out = v.b ? 1 : 0;
      return true;
    default:
      return false;
  }
}

bool IsNumber(ValueType t) {
  return IsIntegerType(t) || t == ValueType::kFloat32 || t == ValueType::kFloat64;
}

double ToDouble(const Value& v) {
  if (v.type == ValueType::kFloat32 || v.type == ValueType::kFloat64) return v.f;
  if (v.type == ValueType::kInt8 || v.type == ValueType::kInt16 || v.type == ValueType::kInt32 ||
      v.type == ValueType::kInt64) {
    return static_cast<double>(v.i);
  }
  return static_cast<double>(v.u);
}

}  // namespace

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  STRATA_ASSIGN_OR_RETURN(const Value* v, Require(key));
  if (!IsIntegerType(v->type) && v->type != ValueType::kBool) return TypeError(key, *v, "an integer");
  int64_t out;
  if (!ToInt64(*v, &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": metadata key '", key, "' has value ", v->u, ", which does not fit in int64"));
  }
  return out;
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  STRATA_ASSIGN_OR_RETURN(const Value* v, Require(key));
  if (!IsNumber(v->type)) return TypeError(key, *v, "a number");
  return ToDouble(*v);
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  STRATA_ASSIGN_OR_RETURN(const Value* v, Require(key));
  if (v->type != ValueType::kBool) return TypeError(key, *v, "bool");
  return v->b;
}

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  STRATA_ASSIGN_OR_RETURN(const Value* v, Require(key));
  if (v->type != ValueType::kString) return TypeError(key, *v, "string");
  return v->str;
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(absl::string_view key) const {
  STRATA_ASSIGN_OR_RETURN(const Value* v, Require(key));
  if (v->type != ValueType::kArray || v->array_type != ValueType::kString) {
    return TypeError(key, *v, "array of string");
  }
  std::vector<std::string> out;
  out.reserve(v->array.size());
  for (const Value& e : v->array) out.push_back(e.str);
  return out;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(absl::string_view key) const {
  STRATA_ASSIGN_OR_RETURN(const Value* v, Require(key));
  if (v->type != ValueType::kArray || !IsNumber(v->array_type)) return TypeError(key, *v, "array of numbers");
  std::vector<float> out;
  out.reserve(v->array.size());
  for (const Value& e : v->array) out.push_back(static_cast<float>(ToDouble(e)));
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(absl::string_view key) const {
  STRATA_ASSIGN_OR_RETURN(const Value* v, Require(key));
  if (v->type != ValueType::kArray || !IsIntegerType(v->array_type)) {
    return TypeError(key, *v, "array of integers");
  }
  std::vector<int64_t> out(v->array.size());
  for (size_t k = 0; k < out.size(); ++k) {
    if (!ToInt64(v->array[k], &out[k])) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": metadata key '", key, "' element ", k,
                                                     " has value ", v->array[k].u,
                                                     ", which does not fit in int64"));
    }
  }
  return out;
}

absl::StatusOr<int64_t> GgufFile::GetIntOr(absl::string_view key, int64_t dflt) const {
  return Has(key) ? GetInt(key) : dflt;
}

absl::StatusOr<double> GgufFile::GetFloatOr(absl::string_view key, double dflt) const {
  return Has(key) ? GetFloat(key) : dflt;
}

absl::StatusOr<bool> GgufFile::GetBoolOr(absl::string_view key, bool dflt) const {
  return Has(key) ? GetBool(key) : dflt;
}

// ---- tensors ----

const TensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<const TensorInfo*> GgufFile::GetTensor(absl::string_view name,
                                                      std::vector<int64_t> dims) const {
  const TensorInfo* t = FindTensor(name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(name_, ": tensor '", name, "' not found"));
  if (t->dims != dims) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": tensor '", name, "' has dims ",
                                                   DimsString(t->dims), ", expected ", DimsString(dims)));
  }
  return t;
}

}  // namespace gguf
}  // namespace strata
