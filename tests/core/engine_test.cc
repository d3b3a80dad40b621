// The engine end to end in one process: real weights against an independent reference, batching
// that does not change results, determinism, stop strings and bad requests.
#include <fstream>

#include "core/backend/cpu/cpu_backend.h"
#include "core/engine/engine.h"
#include "core/engine/model_bundle.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/core/test_models.h"

namespace strata {
namespace {

struct Loaded {
  std::unique_ptr<CpuBackend> backend;
  ModelBundle bundle;
  std::unique_ptr<Engine> engine;
};

Loaded Load(const std::string& path, int max_seqs = 8, int max_batch_tokens = 512, int threads = 2) {
  Loaded l;
  l.backend = std::make_unique<CpuBackend>(CpuBackendOptions{threads});
  ModelOptions mo;
  mo.max_batch_tokens = max_batch_tokens;
  mo.max_logit_rows = max_seqs;
  auto bundle = LoadModelBundle(path, l.backend.get(), mo);
  EXPECT_TRUE(bundle.ok()) << bundle.status();
  l.bundle = std::move(*bundle);
  EngineOptions eo;
  eo.max_seqs = max_seqs;
  auto engine = Engine::Create(l.bundle.model.get(), l.bundle.tokenizer.get(), l.backend.get(), eo);
  EXPECT_TRUE(engine.ok()) << engine.status();
  l.engine = std::move(*engine);
  return l;
}

GenerationRequest Greedy(const Tokenizer& tok, const std::string& prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = tok.Encode(prompt, tok.add_bos());
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

GenerationResult GenerateOne(Engine& e, const GenerationRequest& r) {
  auto out = e.Generate({r});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? out->front() : GenerationResult{};
}

TEST(StoriesModel, GreedyMatchesIndependentReference) {
  STRATA_REQUIRE_STORIES(path);
  std::ifstream in(std::string(STRATA_SOURCE_DIR) + "/tests/data/stories260K_once_upon_a_time.json");
  ASSERT_TRUE(in) << "tests/data/stories260K_once_upon_a_time.json missing";
  const nlohmann::json want = nlohmann::json::parse(in);
  Loaded l = Load(path, 1);
  GenerationRequest r = Greedy(*l.bundle.tokenizer, "Once upon a time", 200);
  EXPECT_EQ(r.prompt, want["prompt_ids"].get<std::vector<int32_t>>());
  const GenerationResult got = GenerateOne(*l.engine, r);
  // Exact ids from tools/reference/ref_model.py (float64 numpy), which llama.cpp also reproduces.
  EXPECT_EQ(got.ids, want["ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(got.text, want["text"].get<std::string>());
  EXPECT_EQ(got.text.rfind(", there was a little girl named Lily.", 0), 0u) << got.text;
  EXPECT_EQ(got.finish, FinishReason::kLength);
}

TEST(StoriesModel, LogitsMatchReference) {
  STRATA_REQUIRE_STORIES(path);
  std::ifstream in(std::string(STRATA_SOURCE_DIR) + "/tests/data/stories260K_once_upon_a_time.json");
  ASSERT_TRUE(in);
  const nlohmann::json want = nlohmann::json::parse(in);
  Loaded l = Load(path, 1);
  const std::vector<int32_t> prompt = want["prompt_ids"].get<std::vector<int32_t>>();
  KvCacheConfig kc{l.bundle.model->config().n_layers, l.bundle.model->config().kv_dim(), 16, 4};
  auto kv = KvCache::Create(l.backend.get(), kc).value();
  std::vector<int32_t> blocks = {3, 1};
  Batch b;
  b.AddSequence(prompt.data(), static_cast<int32_t>(prompt.size()), 0, blocks, 16, true);
  std::vector<float> logits(l.bundle.model->config().n_vocab);
  ASSERT_TRUE(l.bundle.model->Forward(b, kv.get(), logits.data()).ok());
  const std::vector<double> ref = want["first_logits"].get<std::vector<double>>();
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(logits[i], ref[i], 1e-4) << "logit " << i;
}

// A batch of sequences of different lengths (prefill chunks and decodes mixed, a small token
// budget so long prompts are split) gives each sequence exactly what it gives alone.
void ExpectBatchEqualsSolo(const std::string& path) {
  Loaded l = Load(path, 4, /*max_batch_tokens=*/24);
  const Tokenizer& tok = *l.bundle.tokenizer;
  std::vector<GenerationRequest> reqs = {
      Greedy(tok, "Once upon a time", 30),
      Greedy(tok, "The little dog ran to the park and saw a big red ball. He wanted to play with it all day.", 12),
      Greedy(tok, "Hi", 25),
      Greedy(tok, "Tom and Lily were friends. They liked to share toys.", 5),
      Greedy(tok, "A", 40),
  };
  reqs[3].sampling.temperature = 0.9f;  // a seeded sampled request rides along
  reqs[3].sampling.seed = 42;
  std::vector<GenerationResult> solo;
  for (const auto& r : reqs) solo.push_back(GenerateOne(*l.engine, r));
  auto together = l.engine->Generate(reqs);
  ASSERT_TRUE(together.ok()) << together.status();
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ((*together)[i].ids, solo[i].ids) << "request " << i;
    EXPECT_EQ((*together)[i].ids.size(), static_cast<size_t>(reqs[i].max_tokens));
  }
  EXPECT_EQ(l.engine->allocator().n_free(), l.engine->allocator().n_blocks()) << "blocks leaked";
}

TEST(Engine, BatchEqualsSoloStories) {
  STRATA_REQUIRE_STORIES(path);
  ExpectBatchEqualsSolo(path);
}
TEST(Engine, BatchEqualsSoloLlama) { ExpectBatchEqualsSolo(testing::SyntheticModel("llama", "tiny", DType::kQ8_0)); }
TEST(Engine, BatchEqualsSoloGpt2) { ExpectBatchEqualsSolo(testing::SyntheticModel("gpt2", "tiny", DType::kF16)); }

TEST(Engine, EveryDTypeLoadsAndAgreesWithF32) {
  // The same random weights stored in each dtype: greedy output of the first steps should
  // mostly agree with f32 (quantization error is small), and every dtype must run.
  for (const char* arch : {"llama", "gpt2"}) {
    Loaded f32 = Load(testing::SyntheticModel(arch, "tiny", DType::kF32), 1);
    const GenerationResult want = GenerateOne(*f32.engine, Greedy(*f32.bundle.tokenizer, "Once upon a time", 8));
    for (DType t : {DType::kF16, DType::kBF16, DType::kQ8_0}) {
      Loaded l = Load(testing::SyntheticModel(arch, "tiny", t), 1);
      const GenerationResult got = GenerateOne(*l.engine, Greedy(*l.bundle.tokenizer, "Once upon a time", 8));
      ASSERT_EQ(got.ids.size(), 8u) << arch << " " << DTypeName(uint32_t(t));
      EXPECT_EQ(got.ids[0], want.ids[0]) << arch << " " << DTypeName(uint32_t(t));
    }
  }
}

TEST(Engine, SameSeedSameOutput) {
  Loaded l = Load(testing::SyntheticModel("llama", "tiny", DType::kF32));
  GenerationRequest r = Greedy(*l.bundle.tokenizer, "Once upon a time", 32);
  r.sampling.temperature = 1.0f;
  r.sampling.top_p = 0.95f;
  r.sampling.seed = 7;
  const GenerationResult a = GenerateOne(*l.engine, r), b = GenerateOne(*l.engine, r);
  EXPECT_EQ(a.ids, b.ids);
  r.sampling.seed = 8;
  EXPECT_NE(GenerateOne(*l.engine, r).ids, a.ids) << "different seeds should (almost surely) differ";
}

TEST(Engine, StopStringEndsGenerationAndIsNotEmitted) {
  STRATA_REQUIRE_STORIES(path);
  Loaded l = Load(path, 1);
  GenerationRequest r = Greedy(*l.bundle.tokenizer, "Once upon a time", 100);
  r.stop = {"Lily"};
  std::string streamed;
  auto out = l.engine->Generate({r}, [&](size_t, const GeneratedToken& t) { streamed += t.text; });
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->front().finish, FinishReason::kStop);
  EXPECT_EQ(out->front().text, ", there was a little girl named ");
  EXPECT_EQ(streamed, out->front().text);
}

TEST(Engine, StreamedTextEqualsDecodedText) {
  STRATA_REQUIRE_STORIES(path);
  Loaded l = Load(path, 1);
  std::string streamed;
  auto out = l.engine->Generate({Greedy(*l.bundle.tokenizer, "Once upon a time", 80)},
                                [&](size_t, const GeneratedToken& t) { streamed += t.text; });
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(streamed, l.bundle.tokenizer->Decode(out->front().ids));
}

TEST(Engine, EndsAtContextLength) {
  Loaded l = Load(testing::SyntheticModel("gpt2", "tiny", DType::kF32), 1);
  GenerationRequest r = Greedy(*l.bundle.tokenizer, "hello", 100000);
  const GenerationResult out = GenerateOne(*l.engine, r);
  EXPECT_EQ(out.finish, FinishReason::kLength);
  EXPECT_EQ(out.prompt_tokens + out.completion_tokens, l.bundle.model->config().n_ctx);
}

TEST(Engine, RejectsBadRequests) {
  Loaded l = Load(testing::SyntheticModel("llama", "tiny", DType::kF32), 1);
  const int n_ctx = l.bundle.model->config().n_ctx;
  auto expect_invalid = [&](GenerationRequest r, const std::string& needle) {
    const absl::Status s = l.engine->Validate(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  GenerationRequest ok = Greedy(*l.bundle.tokenizer, "hi", 4);
  EXPECT_TRUE(l.engine->Validate(ok).ok());
  GenerationRequest r = ok;
  r.prompt.clear();
  expect_invalid(r, "prompt is empty");
  r = ok;
  r.prompt.assign(n_ctx, 5);
  expect_invalid(r, "context length");
  r = ok;
  r.prompt.push_back(1 << 20);
  expect_invalid(r, "outside");
  r = ok;
  r.max_tokens = 0;
  expect_invalid(r, "max_tokens");
  r = ok;
  r.sampling.temperature = -1;
  expect_invalid(r, "temperature");
  r = ok;
  r.sampling.top_p = 0;
  expect_invalid(r, "top_p");
  r.sampling.top_p = 1.5f;
  expect_invalid(r, "top_p");
  // Generate refuses the whole set up front, naming the request.
  auto out = l.engine->Generate({ok, r});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("request 1"), std::string::npos);
}

}  // namespace
}  // namespace strata
