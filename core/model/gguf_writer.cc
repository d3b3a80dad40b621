#include "core/model/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/status.h"

namespace strata {
namespace {

using gguf::Value;
using gguf::ValueType;

constexpr uint32_t kVersion = 3;
constexpr uint32_t kMaxDims = 4;
constexpr size_t kMaxTensorName = 63;  // llama.cpp rejects names of GGML_MAX_NAME (64) bytes or more

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// Appends little-endian encodings to a byte string (the host is little-endian; see gguf.cc).
class Encoder {
 public:
  template <typename T>
  void Put(T x) {
    out_.append(reinterpret_cast<const char*>(&x), sizeof(T));
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    out_.append(s);
  }
  void Pad(uint64_t alignment) { out_.resize(AlignUp(out_.size(), alignment), '\0'); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

bool InRange(const Value& v) {
  switch (v.type) {
    case ValueType::kUint8:
      return v.u <= std::numeric_limits<uint8_t>::max();
    case ValueType::kUint16:
      return v.u <= std::numeric_limits<uint16_t>::max();
    case ValueType::kUint32:
      return v.u <= std::numeric_limits<uint32_t>::max();
    case ValueType::kInt8:
      return v.i >= INT8_MIN && v.i <= INT8_MAX;
    case ValueType::kInt16:
      return v.i >= INT16_MIN && v.i <= INT16_MAX;
    case ValueType::kInt32:
      return v.i >= INT32_MIN && v.i <= INT32_MAX;
    default:
      return true;
  }
}

// Encodes the payload of `v` (no type tag), checking that it is well formed.
absl::Status EncodeValue(const Value& v, Encoder* e) {
  if (!InRange(v))
    return absl::InvalidArgumentError(absl::StrCat("value out of range for ", ValueTypeName(v.type)));
  switch (v.type) {
    case ValueType::kUint8:
      e->Put<uint8_t>(v.u);
      break;
    case ValueType::kInt8:
      e->Put<int8_t>(v.i);
      break;
    case ValueType::kUint16:
      e->Put<uint16_t>(v.u);
      break;
    case ValueType::kInt16:
      e->Put<int16_t>(v.i);
      break;
    case ValueType::kUint32:
      e->Put<uint32_t>(v.u);
      break;
    case ValueType::kInt32:
      e->Put<int32_t>(v.i);
      break;
    case ValueType::kUint64:
      e->Put<uint64_t>(v.u);
      break;
    case ValueType::kInt64:
      e->Put<int64_t>(v.i);
      break;
    case ValueType::kFloat32:
      e->Put<float>(static_cast<float>(v.f));
      break;
    case ValueType::kFloat64:
      e->Put<double>(v.f);
      break;
    case ValueType::kBool:
      e->Put<uint8_t>(v.b ? 1 : 0);
      break;
    case ValueType::kString:
      e->PutString(v.str);
      break;
    case ValueType::kArray:
      e->Put<uint32_t>(static_cast<uint32_t>(v.array_type));
      e->Put<uint64_t>(v.array.size());
      for (const Value& elem : v.array) {
        if (elem.type != v.array_type) {
          return absl::InvalidArgumentError(absl::StrCat("array of ", ValueTypeName(v.array_type),
                                                         " holds an element of type ",
                                                         ValueTypeName(elem.type)));
        }
        STRATA_RETURN_IF_ERROR(EncodeValue(elem, e));
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown value type ", static_cast<uint32_t>(v.type)));
  }
  return absl::OkStatus();
}

Value Scalar(ValueType t) {
  Value v;
  v.type = t;
  return v;
}

template <typename T, typename Setter>
Value Array(ValueType elem_type, const std::vector<T>& xs, Setter set) {
  Value v = Scalar(ValueType::kArray);
  v.array_type = elem_type;
  v.array.resize(xs.size(), Scalar(elem_type));
  for (size_t k = 0; k < xs.size(); ++k) set(&v.array[k], xs[k]);
  return v;
}

// Checks a tensor declaration against what GGUF readers (llama.cpp included) accept; returns its size.
absl::StatusOr<uint64_t> TensorBytes(const std::string& name, const std::vector<int64_t>& dims, DType type) {
  const std::string tname = absl::StrCat("tensor '", name, "'");
  if (name.empty() || name.size() > kMaxTensorName) {
    return absl::InvalidArgumentError(
        absl::StrCat(tname, ": names must be 1 to ", kMaxTensorName, " bytes long"));
  }
  if (!IsSupportedDType(static_cast<uint32_t>(type))) {
    return absl::InvalidArgumentError(
        absl::StrCat(tname, ": unsupported type ", DTypeName(static_cast<uint32_t>(type))));
  }
  if (dims.empty() || dims.size() > kMaxDims) {
    return absl::InvalidArgumentError(
        absl::StrCat(tname, ": has ", dims.size(), " dimensions, expected 1 to ", kMaxDims));
  }
  const int64_t block = DTypeBlockSize(type);
  uint64_t n = static_cast<uint64_t>(DTypeBlockBytes(type));
  bool overflow = false;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] <= 0)
      return absl::InvalidArgumentError(absl::StrCat(tname, ": dimension ", d, " is ", dims[d]));
    overflow |= __builtin_mul_overflow(n, static_cast<uint64_t>(d == 0 ? dims[0] / block : dims[d]), &n);
  }
  if (dims[0] % block != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tname, ": ", dims[0], " columns is not a multiple of the block size ", block));
  }
  if (overflow || n > (uint64_t{1} << 62))
    return absl::InvalidArgumentError(absl::StrCat(tname, ": too large"));
  return n;
}

// Writes all of [data, data + n) to fd, retrying short writes and EINTR.
bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

// ---- metadata ----

void GgufWriter::SetValue(std::string key, gguf::Value v) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(v));
}

void GgufWriter::SetU32(std::string key, uint32_t x) {
  Value v = Scalar(ValueType::kUint32);
  v.u = x;
  SetValue(std::move(key), std::move(v));
}

void GgufWriter::SetI32(std::string key, int32_t x) {
  Value v = Scalar(ValueType::kInt32);
  v.i = x;
  SetValue(std::move(key), std::move(v));
}

void GgufWriter::SetU64(std::string key, uint64_t x) {
  Value v = Scalar(ValueType::kUint64);
  v.u = x;
  SetValue(std::move(key), std::move(v));
}

void GgufWriter::SetF32(std::string key, float x) {
  Value v = Scalar(ValueType::kFloat32);
  v.f = x;
  SetValue(std::move(key), std::move(v));
}

void GgufWriter::SetBool(std::string key, bool x) {
  Value v = Scalar(ValueType::kBool);
  v.b = x;
  SetValue(std::move(key), std::move(v));
}

void GgufWriter::SetString(std::string key, std::string x) {
  Value v = Scalar(ValueType::kString);
  v.str = std::move(x);
  SetValue(std::move(key), std::move(v));
}

void GgufWriter::SetStringArray(std::string key, std::vector<std::string> xs) {
  Value v = Scalar(ValueType::kArray);
  v.array_type = ValueType::kString;
  v.array.resize(xs.size(), Scalar(ValueType::kString));
  for (size_t k = 0; k < xs.size(); ++k) v.array[k].str = std::move(xs[k]);
  SetValue(std::move(key), std::move(v));
}

void GgufWriter::SetF32Array(std::string key, std::vector<float> xs) {
  SetValue(std::move(key), Array(ValueType::kFloat32, xs, [](Value* v, float x) { v->f = x; }));
}

void GgufWriter::SetI32Array(std::string key, std::vector<int32_t> xs) {
  SetValue(std::move(key), Array(ValueType::kInt32, xs, [](Value* v, int32_t x) { v->i = x; }));
}

void GgufWriter::AddTensor(std::string name, std::vector<int64_t> dims, DType type) {
  tensors_.push_back({std::move(name), std::move(dims), type});
}

// ---- serialization ----

absl::Status GgufWriter::Serialize(const std::string& name, const Sink& sink, const FillFn& fill,
                                   const ProgressFn& progress) const {
  auto error = [&name](absl::string_view msg) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", msg));
  };
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0) {
    return error(absl::StrCat("alignment ", alignment_, " is not a power of two"));
  }

  // general.alignment always reflects the constructor's value: a conflicting Set* would make the
  // file unreadable, and llama.cpp requires the key to be a u32.
  bool has_alignment_key = false;
  for (const auto& [key, v] : kv_) {
    if (key != "general.alignment") continue;
    if (v.type != ValueType::kUint32 || v.u != alignment_) {
      return error(absl::StrCat("general.alignment must be set through the GgufWriter constructor (u32 ",
                                alignment_, ")"));
    }
    has_alignment_key = true;
  }
  if (!fill && !tensors_.empty()) return error("tensors were declared but no fill callback was given");
  const bool add_alignment_key = !has_alignment_key && alignment_ != gguf::kDefaultAlignment;

  Encoder e;
  e.Put<uint32_t>(0x46554747);  // "GGUF" read as a little-endian u32
  e.Put<uint32_t>(kVersion);
  e.Put<uint64_t>(tensors_.size());
  e.Put<uint64_t>(kv_.size() + (add_alignment_key ? 1 : 0));
  if (add_alignment_key) {
    e.PutString("general.alignment");
    e.Put<uint32_t>(static_cast<uint32_t>(ValueType::kUint32));
    e.Put<uint32_t>(alignment_);
  }
  for (const auto& [key, v] : kv_) {
    e.PutString(key);
    e.Put<uint32_t>(static_cast<uint32_t>(v.type));
    absl::Status st = EncodeValue(v, &e);
    if (!st.ok()) return error(absl::StrCat("metadata key '", key, "': ", st.message()));
  }

  // Tensor infos. Each tensor's data starts at an aligned offset, as llama.cpp expects.
  std::vector<uint64_t> nbytes(tensors_.size());
  uint64_t offset = 0;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const TensorDecl& t = tensors_[k];
    for (size_t j = 0; j < k; ++j) {
      if (tensors_[j].name == t.name) return error(absl::StrCat("duplicate tensor '", t.name, "'"));
    }
    absl::StatusOr<uint64_t> n = TensorBytes(t.name, t.dims, t.type);
    if (!n.ok()) return error(n.status().message());
    nbytes[k] = *n;

    e.PutString(t.name);
    e.Put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) e.Put<uint64_t>(static_cast<uint64_t>(d));
    e.Put<uint32_t>(static_cast<uint32_t>(t.type));
    e.Put<uint64_t>(offset);
    offset = AlignUp(offset + *n, alignment_);
  }
  const uint64_t total = offset;
  e.Pad(alignment_);
  STRATA_RETURN_IF_ERROR(sink(e.bytes().data(), e.bytes().size()));

  std::vector<uint8_t> buf;
  const std::vector<uint8_t> zeros(alignment_, 0);
  uint64_t done = 0;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    buf.assign(nbytes[k], 0);
    absl::Status st = fill(k, buf);
    if (!st.ok()) {
      return absl::Status(st.code(),
                          absl::StrCat(name, ": filling tensor '", tensors_[k].name, "': ", st.message()));
    }
    if (buf.size() != nbytes[k]) {
      return error(absl::StrFormat("the fill callback resized tensor '%s' from %d to %d bytes",
                                   tensors_[k].name, nbytes[k], buf.size()));
    }
    STRATA_RETURN_IF_ERROR(sink(buf.data(), buf.size()));
    const uint64_t padded = AlignUp(nbytes[k], alignment_);
    STRATA_RETURN_IF_ERROR(sink(zeros.data(), padded - nbytes[k]));
    done += padded;
    if (progress) progress(done, total);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> GgufWriter::WriteToBuffer(const FillFn& fill) const {
  std::vector<uint8_t> out;
  auto sink = [&out](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    out.insert(out.end(), p, p + n);
    return absl::OkStatus();
  };
  STRATA_RETURN_IF_ERROR(Serialize("<buffer>", sink, fill, nullptr));
  return out;
}

absl::Status GgufWriter::Write(const std::string& path, const FillFn& fill,
                               const ProgressFn& progress) const {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot create ", tmp, ": ", std::strerror(errno)));
  }
  auto sink = [&](const void* data, size_t n) {
    errno = 0;
    if (WriteAll(fd, data, n)) return absl::OkStatus();
    const int err = errno != 0 ? errno : EIO;
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": write to ", tmp, " failed: ", std::strerror(err)));
  };
  absl::Status st = Serialize(path, sink, fill, progress);
  // fsync before rename so that a crash cannot leave a renamed but empty file behind.
  if (st.ok() && ::fsync(fd) != 0) {
    st =
        absl::InvalidArgumentError(absl::StrCat(path, ": fsync of ", tmp, " failed: ", std::strerror(errno)));
  }
  if (::close(fd) != 0 && st.ok()) {
    st =
        absl::InvalidArgumentError(absl::StrCat(path, ": close of ", tmp, " failed: ", std::strerror(errno)));
  }
  if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    st = absl::InvalidArgumentError(absl::StrCat(path, ": cannot rename ", tmp, ": ", std::strerror(errno)));
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace strata
