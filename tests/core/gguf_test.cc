// Tests for the GGUF reader and writer: round trips of every dtype and metadata type, and corrupt
// or hostile inputs, which must fail with a clear message and never read outside the buffer (run
// under ASan: every parse below gets a heap buffer of exactly the bytes it may read).
#include "core/model/gguf.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/model/gguf_writer.h"
#include "gtest/gtest.h"

#ifndef STRATA_SOURCE_DIR
#define STRATA_SOURCE_DIR "."
#endif

namespace strata {
namespace {

using gguf::GgufFile;
using gguf::TensorInfo;
using gguf::Value;
using gguf::ValueType;
using Bytes = std::vector<uint8_t>;

absl::StatusOr<std::unique_ptr<GgufFile>> ParseBytes(const Bytes& b) {
  return GgufFile::Parse(b.data(), b.size(), "test.gguf");
}

// Checks that `text` contains `part`; gtest alone (no gmock) keeps the test's dependencies small.
::testing::AssertionResult Contains(absl::string_view text, absl::string_view part) {
  if (absl::StrContains(text, part)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}
#define EXPECT_CONTAINS(text, part) EXPECT_TRUE(Contains(text, part))

// Parses an error-expected buffer and returns the message (empty if parsing succeeded).
std::string ParseError(const Bytes& b) {
  auto f = ParseBytes(b);
  if (f.ok()) return "";
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
  EXPECT_EQ(f.status().message().substr(0, 11), "test.gguf: ") << f.status();
  return std::string(f.status().message());
}

// Builds raw GGUF bytes by hand, for inputs the writer refuses to produce.
class Raw {
 public:
  Raw& U8(uint8_t x) { return Put(x); }
  Raw& U32(uint32_t x) { return Put(x); }
  Raw& U64(uint64_t x) { return Put(x); }
  Raw& Str(const std::string& s) {
    U64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  Raw& Header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bytes.insert(bytes.end(), {'G', 'G', 'U', 'F'});
    return U32(version).U64(n_tensors).U64(n_kv);
  }
  Raw& KvU32(const std::string& key, uint32_t v) { return Str(key).U32(4).U32(v); }
  // One tensor info: name, dims, type, offset.
  Raw& Tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    return U32(type).U64(offset);
  }
  Raw& Pad(size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
    return *this;
  }
  Raw& Zeros(size_t n) {
    bytes.resize(bytes.size() + n, 0);
    return *this;
  }

  Bytes bytes;

 private:
  template <typename T>
  Raw& Put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    bytes.insert(bytes.end(), p, p + sizeof(T));
    return *this;
  }
};

// A file with one f32 tensor of `dims` and one u32 key, laid out correctly.
Bytes OneTensorFile(const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset, size_t data_bytes) {
  Raw r;
  r.Header(3, 1, 1).KvU32("general.foo", 7).Tensor("w", dims, type, offset).Pad(32).Zeros(data_bytes);
  return r.bytes;
}

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

int64_t NumElements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// A writer with every kind of metadata and one tensor of each dtype, and the bytes of each tensor.
struct Fixture {
  GgufWriter writer;
  std::vector<std::vector<int64_t>> dims = {{64, 3}, {32, 2, 2}, {96}, {64, 2, 2, 2}};
  std::vector<DType> types = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0};
  std::vector<std::vector<float>> values;
  std::vector<Bytes> data;

  explicit Fixture(uint32_t alignment = 32) : writer(alignment) {
    writer.SetString("general.architecture", "llama");
    writer.SetU32("llama.block_count", 5);
    writer.SetI32("test.i32", -12345);
    writer.SetU64("test.u64", (uint64_t{1} << 63) + 5);
    writer.SetF32("test.f32", 1.5f);
    writer.SetBool("test.bool", true);
    writer.SetStringArray("tokenizer.ggml.tokens", {"<unk>", "", std::string("a\0b", 3), "héllo"});
    writer.SetF32Array("tokenizer.ggml.scores", {0.0f, -1.25f, 3.5f, 1e-20f});
    writer.SetI32Array("tokenizer.ggml.token_type", {2, 1, 1, -7});
    Value f64;
    f64.type = ValueType::kFloat64;
    f64.f = 3.141592653589793;
    writer.SetValue("test.f64", f64);
    Value i8;
    i8.type = ValueType::kInt8;
    i8.i = -128;
    writer.SetValue("test.i8", i8);
    for (size_t k = 0; k < types.size(); ++k) {
      writer.AddTensor("t." + DTypeName(static_cast<uint32_t>(types[k])), dims[k], types[k]);
      values.push_back(RandomFloats(NumElements(dims[k]), 100 + k));
      Bytes b(RowBytes(types[k], NumElements(dims[k])));
      QuantizeRow(types[k], values[k].data(), b.data(), NumElements(dims[k]));
      data.push_back(std::move(b));
    }
  }

  GgufWriter::FillFn Fill() const {
    return [this](size_t index, std::vector<uint8_t>& buf) {
      if (buf.size() != data[index].size()) return absl::InternalError("wrong buffer size");
      for (uint8_t x : buf) {
        if (x != 0) return absl::InternalError("buffer not zeroed");
      }
      buf = data[index];
      return absl::OkStatus();
    };
  }

  Bytes Serialize() const {
    auto b = writer.WriteToBuffer(Fill());
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *b : Bytes();
  }
};

// ---------------------------------------------------------------- round trips

TEST(GgufTest, RoundTripEveryDType) {
  Fixture fx;
  const Bytes bytes = fx.Serialize();
  auto f = ParseBytes(bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ((*f)->alignment(), 32u);
  EXPECT_FALSE((*f)->Has("general.alignment"));  // only written when not the default
  ASSERT_EQ((*f)->tensors().size(), fx.types.size());
  for (size_t k = 0; k < fx.types.size(); ++k) {
    const TensorInfo& t = (*f)->tensors()[k];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.type, fx.types[k]);
    EXPECT_EQ(t.dims, fx.dims[k]);
    EXPECT_EQ(t.cols(), fx.dims[k][0]);
    EXPECT_EQ(t.rows() * t.cols(), NumElements(fx.dims[k]));
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ((t.data - bytes.data()) % 32, 0);
    ASSERT_EQ(t.nbytes, fx.data[k].size());
    EXPECT_EQ(std::memcmp(t.data, fx.data[k].data(), t.nbytes), 0);

    const Tensor view = t.AsTensor();
    EXPECT_EQ(view.nbytes(), static_cast<int64_t>(t.nbytes));
    std::vector<float> back(NumElements(fx.dims[k]));
    DequantizeRow(t.type, t.data, back.data(), back.size());
    for (size_t i = 0; i < back.size(); ++i) {
      const float x = fx.values[k][i];
      const float tol = t.type == DType::kF32    ? 0.0f
                        : t.type == DType::kF16  ? 1e-3f * std::fabs(x)
                        : t.type == DType::kBF16 ? 8e-3f * std::fabs(x)
                                                 : 0.03f;  // q8_0: |x| <= ~4, step <= 4/127
      ASSERT_NEAR(back[i], x, tol) << "element " << i;
    }
  }
  EXPECT_EQ((*f)->FindTensor("t.q8_0"), &(*f)->tensors()[3]);
  EXPECT_EQ((*f)->FindTensor("nope"), nullptr);
}

TEST(GgufTest, RoundTripMetadata) {
  Fixture fx;
  // Nested arrays: [[1, 2], [], [65535]] of u16 and [["x"], ["y", "z"]] of strings.
  Value nested;
  nested.type = ValueType::kArray;
  nested.array_type = ValueType::kArray;
  for (const std::vector<uint64_t>& xs : std::vector<std::vector<uint64_t>>{{1, 2}, {}, {65535}}) {
    Value inner;
    inner.type = ValueType::kArray;
    inner.array_type = ValueType::kUint16;
    for (uint64_t x : xs) {
      Value e;
      e.type = ValueType::kUint16;
      e.u = x;
      inner.array.push_back(e);
    }
    nested.array.push_back(inner);
  }
  fx.writer.SetValue("test.nested", nested);
  fx.writer.SetU32("llama.block_count", 6);  // replaces in place: order is unchanged
  auto f = ParseBytes(fx.Serialize());
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;

  std::vector<std::string> keys;
  for (const auto& kv : g.metadata()) keys.push_back(kv.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"general.architecture", "llama.block_count", "test.i32",
                                            "test.u64", "test.f32", "test.bool", "tokenizer.ggml.tokens",
                                            "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "test.f64",
                                            "test.i8", "test.nested"}));

  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetInt("llama.block_count"), 6);
  EXPECT_EQ(g.Find("llama.block_count")->type, ValueType::kUint32);
  EXPECT_EQ(*g.GetInt("test.i32"), -12345);
  EXPECT_EQ(*g.GetInt("test.i8"), -128);
  EXPECT_EQ(g.Find("test.u64")->u, (uint64_t{1} << 63) + 5);
  EXPECT_EQ(*g.GetFloat("test.f32"), 1.5);
  EXPECT_EQ(*g.GetFloat("test.f64"), 3.141592653589793);
  EXPECT_EQ(*g.GetFloat("llama.block_count"), 6.0);
  EXPECT_TRUE(*g.GetBool("test.bool"));
  EXPECT_EQ(*g.GetInt("test.bool"), 1);
  EXPECT_EQ(*g.GetStringArray("tokenizer.ggml.tokens"),
            (std::vector<std::string>{"<unk>", "", std::string("a\0b", 3), "héllo"}));
  EXPECT_EQ(*g.GetFloatArray("tokenizer.ggml.scores"), (std::vector<float>{0.0f, -1.25f, 3.5f, 1e-20f}));
  EXPECT_EQ(*g.GetIntArray("tokenizer.ggml.token_type"), (std::vector<int64_t>{2, 1, 1, -7}));
  EXPECT_EQ(*g.GetFloatArray("tokenizer.ggml.token_type"), (std::vector<float>{2, 1, 1, -7}));

  const Value* n = g.Find("test.nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->array_type, ValueType::kArray);
  ASSERT_EQ(n->array.size(), 3u);
  EXPECT_EQ(n->array[0].array.size(), 2u);
  EXPECT_EQ(n->array[0].array[1].u, 2u);
  EXPECT_EQ(n->array[1].array.size(), 0u);
  EXPECT_EQ(n->array[1].array_type, ValueType::kUint16);
  EXPECT_EQ(n->array[2].array[0].u, 65535u);

  // Defaults and errors.
  EXPECT_EQ(*g.GetIntOr("llama.missing", 42), 42);
  EXPECT_EQ(*g.GetFloatOr("llama.missing", 0.5), 0.5);
  EXPECT_FALSE(*g.GetBoolOr("llama.missing", false));
  EXPECT_EQ(*g.GetIntOr("llama.block_count", 42), 6);
  EXPECT_EQ(g.GetInt("llama.missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_CONTAINS(g.GetInt("llama.missing").status().message(), "'llama.missing'");
  EXPECT_EQ(g.GetInt("general.architecture").status().message(),
            "test.gguf: metadata key 'general.architecture' has type string, expected an integer");
  EXPECT_FALSE(g.GetIntOr("general.architecture", 1).ok());
  EXPECT_CONTAINS(g.GetInt("test.u64").status().message(), "does not fit");
  EXPECT_CONTAINS(g.GetStringArray("tokenizer.ggml.scores").status().message(),
                  "has type array of f32, expected array of string");
  EXPECT_FALSE(g.GetIntArray("tokenizer.ggml.scores").ok());
  EXPECT_FALSE(g.GetBool("llama.block_count").ok());
  EXPECT_FALSE(g.GetFloat("general.architecture").ok());
  EXPECT_FALSE(g.GetString("test.f32").ok());
}

TEST(GgufTest, GetTensorChecksDims) {
  Fixture fx;
  auto f = ParseBytes(fx.Serialize());
  ASSERT_TRUE(f.ok()) << f.status();
  auto t = (*f)->GetTensor("t.f32", {64, 3});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->name, "t.f32");
  auto bad = (*f)->GetTensor("t.f32", {64, 4});
  EXPECT_EQ(bad.status().message(), "test.gguf: tensor 't.f32' has dims [64, 3], expected [64, 4]");
  EXPECT_EQ((*f)->GetTensor("nope", {1}).status().code(), absl::StatusCode::kNotFound);
}

TEST(GgufTest, NonDefaultAlignment) {
  Fixture fx(64);
  const Bytes bytes = fx.Serialize();
  auto f = ParseBytes(bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ(*(*f)->GetInt("general.alignment"), 64);
  for (const TensorInfo& t : (*f)->tensors()) EXPECT_EQ((t.data - bytes.data()) % 64, 0) << t.name;
  EXPECT_FALSE(GgufWriter(48).WriteToBuffer(fx.Fill()).ok());
}

TEST(GgufTest, WriterRejectsBadTensors) {
  auto fill = [](size_t, std::vector<uint8_t>&) { return absl::OkStatus(); };
  GgufWriter w;
  w.AddTensor("q", {33, 2}, DType::kQ8_0);
  EXPECT_CONTAINS(w.WriteToBuffer(fill).status().message(), "'q'");
  GgufWriter dup;
  dup.AddTensor("a", {4}, DType::kF32);
  dup.AddTensor("a", {4}, DType::kF32);
  EXPECT_CONTAINS(dup.WriteToBuffer(fill).status().message(), "duplicate");
  GgufWriter zero;
  zero.AddTensor("z", {4, 0}, DType::kF32);
  EXPECT_FALSE(zero.WriteToBuffer(fill).ok());
}

TEST(GgufTest, WriteFileAndOpen) {
  Fixture fx;
  const std::string path = ::testing::TempDir() + "/gguf_test_" + std::to_string(::getpid()) + ".gguf";
  uint64_t last_done = 0, last_total = 0;
  int calls = 0;
  absl::Status st = fx.writer.Write(path, fx.Fill(), [&](uint64_t done, uint64_t total) {
    EXPECT_GT(done, last_done);
    last_done = done;
    last_total = total;
    ++calls;
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(last_done, last_total);
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);

  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->name(), path);
  EXPECT_EQ((*f)->tensors().size(), 4u);
  // The file holds the same bytes as the in-memory serialization.
  std::ifstream in(path, std::ios::binary);
  const Bytes on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, fx.Serialize());

  // A failing fill leaves neither the file nor the temporary behind.
  const std::string path2 = path + ".2";
  st = fx.writer.Write(path2, [](size_t, std::vector<uint8_t>&) { return absl::DataLossError("boom"); });
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_CONTAINS(st.message(), "boom");
  EXPECT_NE(::access(path2.c_str(), F_OK), 0);
  EXPECT_NE(::access((path2 + ".tmp").c_str(), F_OK), 0);
  ::unlink(path.c_str());

  st = fx.writer.Write("/nonexistent-dir/x.gguf", fx.Fill());
  EXPECT_CONTAINS(st.message(), "/nonexistent-dir/x.gguf");
}

TEST(GgufTest, OpenErrors) {
  auto missing = GgufFile::Open("/nonexistent/model.gguf");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_CONTAINS(missing.status().message(), "/nonexistent/model.gguf");
  EXPECT_CONTAINS(missing.status().message(), "No such file");

  const std::string empty = ::testing::TempDir() + "/gguf_empty_" + std::to_string(::getpid()) + ".gguf";
  std::ofstream(empty).close();
  auto f = GgufFile::Open(empty);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(f.status().message(), "truncated");
  ::unlink(empty.c_str());
}

// ---------------------------------------------------------------- corrupt inputs

TEST(GgufCorruptTest, Header) {
  Raw bad_magic;
  bad_magic.bytes = {'G', 'G', 'M', 'L', 3, 0, 0, 0};
  EXPECT_CONTAINS(ParseError(bad_magic.bytes), "not a GGUF file");
  EXPECT_CONTAINS(ParseError(Raw().Header(1, 0, 0).bytes), "version 1");
  EXPECT_CONTAINS(ParseError(Raw().Header(4, 0, 0).bytes), "unsupported GGUF version 4");
  EXPECT_CONTAINS(ParseError(Raw().Header(0x03000000, 0, 0).bytes), "big-endian");
  EXPECT_CONTAINS(ParseError(Raw().Header(3, uint64_t{1} << 62, 0).bytes), "too large");
  EXPECT_CONTAINS(ParseError(Raw().Header(3, 0, uint64_t{1} << 62).bytes), "too large");
  EXPECT_CONTAINS(ParseError(Bytes{}), "truncated");
  // A header with nothing after it is a valid, empty file, in both supported versions.
  EXPECT_EQ(ParseError(Raw().Header(2, 0, 0).bytes), "");
  EXPECT_EQ(ParseError(Raw().Header(3, 0, 0).bytes), "");
}

TEST(GgufCorruptTest, TruncatedAtEveryOffset) {
  Fixture fx;
  const Bytes full = fx.Serialize();
  auto parsed = ParseBytes(full);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const TensorInfo& last = (*parsed)->tensors().back();
  ASSERT_EQ(last.data + last.nbytes, full.data() + full.size());  // no padding after it: every prefix cuts
  for (size_t n = 0; n < full.size(); ++n) {
    const Bytes prefix(full.begin(), full.begin() + n);  // exact size, so ASan sees any over-read
    EXPECT_NE(ParseError(prefix), "") << "prefix of " << n << " bytes parsed";
  }
}

TEST(GgufCorruptTest, FlippedBytesNeverCrash) {
  Fixture fx;
  const Bytes full = fx.Serialize();
  auto parsed = ParseBytes(full);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Flipping tensor data changes nothing the parser looks at, so only the header is fuzzed.
  const size_t header_end = (*parsed)->tensors()[0].data - full.data();
  for (size_t pos = 0; pos < header_end; ++pos) {
    for (uint8_t x : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
      Bytes b = full;
      b[pos] = x;
      (void)ParseBytes(b);  // may succeed or fail; must not crash, hang or over-read
    }
  }
}

TEST(GgufCorruptTest, Metadata) {
  const uint64_t big = uint64_t{1} << 62;
  // Key string length 2^63.
  EXPECT_CONTAINS(ParseError(Raw().Header(3, 0, 1).U64(uint64_t{1} << 63).bytes), "truncated");
  // Value string length 2^63.
  std::string msg = ParseError(Raw().Header(3, 0, 1).Str("k.s").U32(8).U64(uint64_t{1} << 63).bytes);
  EXPECT_CONTAINS(msg, "truncated");
  EXPECT_CONTAINS(msg, "'k.s'");
  // Array count 2^62 (strings, u8, nested arrays).
  for (uint32_t et : {8u, 0u, 9u}) {
    msg = ParseError(Raw().Header(3, 0, 1).Str("k.arr").U32(9).U32(et).U64(big).bytes);
    EXPECT_CONTAINS(msg, "too large");
    EXPECT_CONTAINS(msg, "'k.arr'");
  }
  msg = ParseError(Raw().Header(3, 0, 1).Str("k.t").U32(13).U32(0).bytes);
  EXPECT_CONTAINS(msg, "unknown value type 13");
  EXPECT_CONTAINS(msg, "'k.t'");
  EXPECT_CONTAINS(ParseError(Raw().Header(3, 0, 1).Str("k.a").U32(9).U32(99).U64(0).bytes),
                  "unknown array element type 99");
  EXPECT_CONTAINS(ParseError(Raw().Header(3, 0, 1).Str("k.b").U32(7).U8(2).bytes), "neither 0 nor 1");
  EXPECT_CONTAINS(ParseError(Raw().Header(3, 0, 2).KvU32("k.x", 1).KvU32("k.x", 2).bytes),
                  "duplicate metadata key 'k.x'");
  // Arrays nested 1000 deep must not recurse without bound.
  Raw deep;
  deep.Header(3, 0, 1).Str("k.deep").U32(9);
  for (int d = 0; d < 1000; ++d) deep.U32(9).U64(1);
  deep.U32(0).U64(0);
  EXPECT_CONTAINS(ParseError(deep.bytes), "nested");
}

TEST(GgufCorruptTest, Alignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    EXPECT_CONTAINS(ParseError(Raw().Header(3, 0, 1).KvU32("general.alignment", a).bytes),
                    "nonzero power of two")
        << a;
  }
  EXPECT_CONTAINS(ParseError(Raw().Header(3, 0, 1).Str("general.alignment").U32(8).Str("32").bytes),
                  "expected u32");
}

TEST(GgufCorruptTest, Tensors) {
  // The good case first, so that each failure below is caused by the one thing changed.
  EXPECT_EQ(ParseError(OneTensorFile({32, 2}, 0, 0, 256)), "");
  EXPECT_EQ(ParseError(OneTensorFile({32, 2}, 8, 0, 68)), "");

  std::string msg = ParseError(OneTensorFile({32, 2}, 0, 1024, 256));
  EXPECT_CONTAINS(msg, "'w'");
  EXPECT_CONTAINS(msg, "past the end");
  EXPECT_CONTAINS(ParseError(OneTensorFile({32, 2}, 0, 0, 255)), "past the end");
  EXPECT_CONTAINS(ParseError(OneTensorFile({32, 2}, 0, 4, 512)), "not a multiple of the alignment 32");
  EXPECT_CONTAINS(ParseError(OneTensorFile({32, 2}, 0, ~uint64_t{0} << 5, 256)), "past the end");
  EXPECT_EQ(ParseError(OneTensorFile({256, 2}, 12, 0, 4096)),
            "test.gguf: tensor 'w' has type q4_K, which strata does not support "
            "(supported: f32, f16, bf16, q8_0)");
  EXPECT_CONTAINS(ParseError(OneTensorFile({4}, 77, 0, 64)), "type 77");
  EXPECT_CONTAINS(ParseError(OneTensorFile({}, 0, 0, 64)), "has 0 dimensions");
  EXPECT_CONTAINS(ParseError(OneTensorFile({1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 0, 64)), "has 9 dimensions");
  EXPECT_CONTAINS(ParseError(OneTensorFile({32, 0}, 0, 0, 64)), "must be positive");
  EXPECT_CONTAINS(ParseError(OneTensorFile({32, ~uint64_t{0}}, 0, 0, 64)), "must be positive");
  msg = ParseError(OneTensorFile({33, 2}, 8, 0, 128));
  EXPECT_CONTAINS(msg, "33 columns");
  EXPECT_CONTAINS(msg, "q8_0 block size 32");
  EXPECT_CONTAINS(ParseError(OneTensorFile({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 64)), "too large");

  Raw dup;
  dup.Header(3, 2, 0).Tensor("w", {8}, 0, 0).Tensor("w", {8}, 0, 32).Pad(32).Zeros(64);
  EXPECT_CONTAINS(ParseError(dup.bytes), "duplicate tensor name 'w'");
  // A tensor count of 2^62 with some bytes after it still fails fast.
  EXPECT_CONTAINS(ParseError(Raw().Header(3, uint64_t{1} << 62, 0).Zeros(4096).bytes), "too large");
  // A hostile name is escaped and shortened in the message.
  msg = ParseError(Raw().Header(3, 1, 0).Tensor(std::string(500, '\n'), {8}, 0, 0).bytes);
  EXPECT_CONTAINS(msg, "\\n\\n");
  EXPECT_LT(msg.size(), 400u);
}

// ---------------------------------------------------------------- size and real files

TEST(GgufTest, LargeVocabParsesQuickly) {
  GgufWriter w;
  std::vector<std::string> tokens(32000);
  std::vector<float> scores(32000);
  std::vector<int32_t> types(32000, 1);
  for (size_t k = 0; k < tokens.size(); ++k) {
    tokens[k] = "tok" + std::to_string(k);
    scores[k] = -static_cast<float>(k);
  }
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetF32Array("tokenizer.ggml.scores", scores);
  w.SetI32Array("tokenizer.ggml.token_type", types);
  auto bytes = w.WriteToBuffer(nullptr);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const auto start = std::chrono::steady_clock::now();
  auto f = ParseBytes(*bytes);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->GetStringArray("tokenizer.ggml.tokens")->at(31999), "tok31999");
  EXPECT_LT(ms, 2000.0);  // milliseconds in practice; generous for sanitizers and shared machines
  RecordProperty("parse_ms", std::to_string(ms));
}

std::string ModelsDir() {
  for (const char* env : {"STRATA_MODELS_DIR", "STRATA_SHARED_MODELS_DIR"}) {
    const char* dir = std::getenv(env);
    if (dir != nullptr && *dir != '\0') return dir;
  }
  return STRATA_SOURCE_DIR "/../shared/models";
}

TEST(GgufTest, Stories260K) {
  const std::string path = ModelsDir() + "/stories260K.gguf";
  if (::access(path.c_str(), R_OK) != 0) GTEST_SKIP() << path << " not found (set STRATA_MODELS_DIR)";
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.tensors().size(), 48u);
  EXPECT_EQ(g.metadata().size(), 19u);
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetInt("llama.block_count"), 5);
  auto tokens = g.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  auto emb = g.GetTensor("token_embd.weight", {64, 512});
  ASSERT_TRUE(emb.ok()) << emb.status();
  EXPECT_EQ((*emb)->type, DType::kF32);
  EXPECT_EQ((*emb)->AsTensor().rows, 512);
}

}  // namespace
}  // namespace strata
