// Writes the seed corpus in fuzz/corpus/ (committed; rerun after changing a format):
//   build-sanitize/bin/fuzz_make_seeds fuzz/corpus
// gguf_fuzz: small but complete models (the same writer and tensor layout as `strata make-model`,
// in a shape far smaller than the tiny presets, so each file stays well under 100 KB), a file with
// every metadata type, nested arrays and a non-default alignment, and a bare header.
// tokenizer_fuzz: text in several scripts, emoji, combining marks, invalid UTF-8.
// request_fuzz: serialized GenerateRequests, valid and not.
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/gguf_writer.h"
#include "core/model/make_model.h"
#include "core/tokenizer/gguf_vocab.h"
#include "core/tokenizer/vocab_builder.h"
#include "strata/v1/generation.pb.h"

namespace strata {
namespace {

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

bool ReadFile(const std::string& path, std::string* bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

bool MakeDir(const std::string& path) { return mkdir(path.c_str(), 0755) == 0 || errno == EEXIST; }

bool GgufSeeds(const std::string& dir) {
  struct Model {
    const char* file;
    ModelPreset preset;
    DType dtype;
  };
  // arch, name, vocab, embd, layers, heads, kv heads, ff, ctx, tied output. n_embd 32: one Q8_0 block.
  const ModelPreset llama{"llama", "seed", kMinLlamaVocabSize, 32, 1, 4, 2, 32, 64, true};
  const ModelPreset llama_untied{"llama", "seed", kMinLlamaVocabSize, 32, 2, 2, 1, 32, 32, false};
  const ModelPreset gpt2{"gpt2", "seed", 300, 32, 1, 2, 2, 32, 16, true};
  const Model models[] = {
      {"llama-q8_0", llama, DType::kQ8_0},
      {"llama-untied-2layers-q8_0", llama_untied, DType::kQ8_0},
      {"llama-f16", llama, DType::kF16},
      {"gpt2-bf16", gpt2, DType::kBF16},
      {"gpt2-q8_0", gpt2, DType::kQ8_0},
  };
  for (const Model& m : models) {
    MakeModelOptions o;
    o.preset = m.preset;
    o.dtype = m.dtype;
    o.seed = 7;
    o.out = dir + "/" + m.file;
    if (absl::Status s = MakeModel(o); !s.ok()) {
      std::fprintf(stderr, "%s: %s\n", m.file, s.ToString().c_str());
      return false;
    }
  }

  // Every value type, nested arrays, alignment 64, a small vocab and two tensors.
  GgufWriter w(64);
  w.SetString("general.architecture", "llama");
  w.SetU32("llama.context_length", 16);
  w.SetU32("llama.embedding_length", 32);
  w.SetU32("llama.block_count", 1);
  w.SetU32("llama.feed_forward_length", 32);
  w.SetU32("llama.attention.head_count", 2);
  w.SetU64("llama.attention.head_count_kv", 1);
  w.SetString("llama.rope.scaling.type", "linear");
  w.SetF32("llama.rope.scaling.factor", 2.0f);
  w.SetI32("test.i32", -5);
  w.SetBool("test.bool", true);
  gguf::Value f64;
  f64.type = gguf::ValueType::kFloat64;
  f64.f = 0.5;
  w.SetValue("test.f64", f64);
  gguf::Value nested;  // [[1, 2], [3]] as arrays of i16
  nested.type = gguf::ValueType::kArray;
  nested.array_type = gguf::ValueType::kArray;
  for (int n : {2, 1}) {
    gguf::Value inner;
    inner.type = gguf::ValueType::kArray;
    inner.array_type = gguf::ValueType::kInt16;
    for (int k = 0; k < n; ++k) {
      gguf::Value e;
      e.type = gguf::ValueType::kInt16;
      e.i = k + 1;
      inner.array.push_back(e);
    }
    nested.array.push_back(inner);
  }
  w.SetValue("test.nested", nested);
  WriteGgufVocab(BuildLlamaVocab(kMinLlamaVocabSize), &w);
  w.AddTensor("token_embd.weight", {32, kMinLlamaVocabSize}, DType::kQ8_0);
  w.AddTensor("output_norm.weight", {32}, DType::kF32);
  auto bytes = w.WriteToBuffer([](size_t, std::vector<uint8_t>&) { return absl::OkStatus(); });
  if (!bytes.ok()) {
    std::fprintf(stderr, "metadata seed: %s\n", bytes.status().ToString().c_str());
    return false;
  }
  if (!WriteFile(dir + "/every-type-align64", std::string(bytes->begin(), bytes->end()))) return false;

  // The smallest valid files: a v3 and a v2 header with nothing after it.
  std::string header("GGUF\x03\0\0\0", 8);
  header.append(16, '\0');
  if (!WriteFile(dir + "/empty-v3", header)) return false;
  header[4] = 2;
  return WriteFile(dir + "/empty-v2", header);
}

bool TokenizerSeeds(const std::string& dir) {
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"english", "Once upon a time, there was a little girl named Lily. She didn't like rain!"},
      {"code", "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * 3.14159;\n}\r\n"},
      {"chinese", "\xE4\xB8\xAD\xE6\x96\x87\xE6\x96\x87\xE6\x9C\xAC\xEF\xBC\x8C\xE4\xBD\xA0\xE5\xA5\xBD"
                  "\xE4\xB8\x96\xE7\x95\x8C"},  // 中文文本，你好世界
      {"japanese", "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF\xE3\x80\x81"
                   "\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81 \xE3\x82\xAB\xE3\x82\xBF\xE3\x82\xAB\xE3\x83\x8A"},
      {"russian", "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xBC\xD0\xB8\xD1\x80 123"},
      {"arabic", "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84\xD9\x85"
                 " \xD9\xA1\xD9\xA2\xD9\xA3"},
      {"hindi", "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87 \xE0\xA5\xA7\xE0\xA5\xA8"},
      {"emoji", "emoji \xF0\x9F\xA6\x99\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7"
                " \xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 \xE2\x9D\xA4\xEF\xB8\x8F family"},
      {"combining", "e\xCC\x81 a\xCC\x8A\xCC\x81 Z\xCD\x91\xCD\x97\xCD\x82"},
      {"whitespace", "  runs \t\ttabs  \n  \n\xC2\xA0nbsp\xE3\x80\x80ideographic   "},
      {"contractions", "don't won't I'm we'll they've you're she'd it's O'Neil 'S"},
      {"specials", "<s> </s> <unk> <|endoftext|> <0x41> <|im_end|>"},
      {"spm-space", "\xE2\x96\x81\xE2\x96\x81x \xE2\x96\x81"},
      {"invalid-bytes", "invalid \xff\xfe bytes \x80\xbf lone"},
      {"truncated", "truncated \xE2\x82 euro and \xF0\x9F\xA6"},
      {"overlong-surrogate", "overlong \xC0\xAF \xE0\x80\xAF and surrogate \xED\xA0\x80 \xF4\x90\x80\x80"},
      {"nul", std::string("nul\0byte\0", 9)},
  };
  for (const auto& [name, text] : texts) {
    if (!WriteFile(dir + "/" + name, text)) return false;
  }
  return true;
}

bool RequestSeeds(const std::string& dir) {
  std::vector<std::pair<std::string, strata::v1::GenerateRequest>> requests;
  {
    strata::v1::GenerateRequest r;
    r.set_text("Once upon a time");
    requests.emplace_back("text", r);
  }
  {
    strata::v1::GenerateRequest r;
    r.set_request_id("client-42");
    r.set_text("The quick brown fox \xF0\x9F\xA6\x8A");
    r.set_max_new_tokens(20);
    auto* s = r.mutable_sampling();
    s->set_temperature(0.7f);
    s->set_top_k(40);
    s->set_top_p(0.9f);
    s->set_min_p(0.05f);
    s->set_repetition_penalty(1.1f);
    s->set_frequency_penalty(0.5f);
    s->set_presence_penalty(-0.5f);
    s->set_seed(1234);
    r.add_stop("\n\n");
    r.add_stop("The end");
    r.set_logprobs(true);
    r.set_top_logprobs(5);
    requests.emplace_back("text-all-fields", r);
  }
  {
    strata::v1::GenerateRequest r;
    for (int id : {1, 403, 407, 261, 378}) r.mutable_token_ids()->add_ids(id);
    r.set_max_new_tokens(1);
    r.mutable_sampling()->set_temperature(0);
    r.set_ignore_eos(true);
    requests.emplace_back("token-ids", r);
  }
  {
    strata::v1::GenerateRequest r;  // refused: id outside the vocabulary, negative max_new_tokens
    for (int id : {5, -1, 100000}) r.mutable_token_ids()->add_ids(id);
    r.set_max_new_tokens(-3);
    requests.emplace_back("token-ids-bad", r);
  }
  {
    strata::v1::GenerateRequest r;  // refused: NaN temperature, top_logprobs too large, empty stop
    r.set_text("x");
    r.mutable_sampling()->set_temperature(std::nanf(""));
    r.mutable_sampling()->set_top_p(1.5f);
    r.set_top_logprobs(21);
    r.add_stop("");
    requests.emplace_back("sampling-bad", r);
  }
  {
    strata::v1::GenerateRequest r;  // no prompt at all
    r.set_request_id(std::string(300, 'r'));
    requests.emplace_back("no-prompt", r);
  }
  for (const auto& [name, r] : requests) {
    std::string bytes;
    if (!r.SerializeToString(&bytes) || !WriteFile(dir + "/" + name, bytes)) return false;
    strata::v1::GenerateRequest back;
    std::string again;
    if (!ReadFile(dir + "/" + name, &again) || !back.ParseFromString(again)) return false;
  }
  return true;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (e.g. fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  bool ok = strata::MakeDir(root);
  for (const char* target : {"gguf_fuzz", "tokenizer_fuzz", "request_fuzz"}) {
    ok = ok && strata::MakeDir(root + "/" + target);
  }
  ok = ok && strata::GgufSeeds(root + "/gguf_fuzz") && strata::TokenizerSeeds(root + "/tokenizer_fuzz") &&
       strata::RequestSeeds(root + "/request_fuzz");
  return ok ? 0 : 1;
}
