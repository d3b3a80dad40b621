// Regression tests for bugs found by the fuzz targets in fuzz/ and the sanitizer build
// (tests/sanitize.sh): each test is the smallest input that used to go wrong.
#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/strings/match.h"
#include "core/model/config.h"
#include "core/model/gguf.h"
#include "core/model/gguf_writer.h"
#include "core/parallel/layout.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

// A llama header whose block_count claims `layers`, with only a token embedding: 1.5 KB.
std::vector<uint8_t> LlamaWithLayers(uint32_t layers, uint64_t kv_heads = 0) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetU32("llama.context_length", 64);
  w.SetU32("llama.embedding_length", 32);
  w.SetU32("llama.block_count", layers);
  w.SetU32("llama.feed_forward_length", 32);
  w.SetU32("llama.attention.head_count", 4);
  if (kv_heads != 0) w.SetU64("llama.attention.head_count_kv", kv_heads);
  w.AddTensor("token_embd.weight", {32, 8}, DType::kF32);
  auto bytes = w.WriteToBuffer([](size_t, std::vector<uint8_t>&) { return absl::OkStatus(); });
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::vector<uint8_t>();
}

// gguf_fuzz: a 23 KB model file with llama.block_count = 200000 hung the load in the layer
// partition (quadratic in the layer count); with 2^30 it would allocate 16 GB first.
TEST(HostileInputTest, BlockCountBeyondTheTensorsIsRejected) {
  const std::vector<uint8_t> bytes = LlamaWithLayers(200000);
  auto file = gguf::GgufFile::Parse(bytes.data(), bytes.size(), "layers.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  const absl::StatusOr<ModelConfig> config = ReadModelConfig(**file);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(config.status().message(), "block_count 200000 is more than the 1 tensors"))
      << config.status();

  // One layer per tensor is still accepted.
  const std::vector<uint8_t> ok_bytes = LlamaWithLayers(1);
  auto ok_file = gguf::GgufFile::Parse(ok_bytes.data(), ok_bytes.size(), "ok.gguf");
  ASSERT_TRUE(ok_file.ok()) << ok_file.status();
  EXPECT_TRUE(ReadModelConfig(**ok_file).ok());
}

// 64-bit values are range-checked before they are narrowed: head_count_kv = 2^32 + 2 used to
// pass as 2.
TEST(HostileInputTest, HeadCountKvIsRangeCheckedBeforeNarrowing) {
  for (uint64_t kv : {(uint64_t{1} << 32) + 2, uint64_t{8}}) {
    const std::vector<uint8_t> bytes = LlamaWithLayers(1, kv);
    auto file = gguf::GgufFile::Parse(bytes.data(), bytes.size(), "kv.gguf");
    ASSERT_TRUE(file.ok()) << file.status();
    const absl::StatusOr<ModelConfig> config = ReadModelConfig(**file);
    ASSERT_FALSE(config.ok()) << kv;
    EXPECT_TRUE(absl::StrContains(config.status().message(), "head_count_kv")) << config.status();
  }
  const std::vector<uint8_t> ok = LlamaWithLayers(1, 2);
  auto file = gguf::GgufFile::Parse(ok.data(), ok.size(), "kv.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  const absl::StatusOr<ModelConfig> config = ReadModelConfig(**file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->n_kv_heads, 2);
}

// A single stage takes every layer at once, however many there are (the search over partitions
// took seconds for 50000 layers; small enough here that a regression fails instead of hanging).
TEST(HostileInputTest, SingleStagePartitionIsImmediate) {
  ModelConfig c;
  c.n_layers = 50000;
  c.n_embd = c.n_heads = c.n_kv_heads = c.head_dim = c.n_ff = c.n_vocab = 1;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(PartitionLayers(c, 1), (std::vector<int>{0, 50000}));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  EXPECT_LT(ms.count(), 500);
  c.n_layers = 7;
  EXPECT_EQ(PartitionLayers(c, 1), (std::vector<int>{0, 7}));
}

}  // namespace
}  // namespace strata
