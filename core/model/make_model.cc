#include "core/model/make_model.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/gguf_writer.h"
#include "core/tokenizer/gguf_vocab.h"
#include "core/tokenizer/vocab_builder.h"
#include "core/util/status.h"

namespace strata {
namespace {

// splitmix64: a fast, well-mixed generator; one stream per tensor so a tensor's values do not
// depend on the order tensors are written in.
struct SplitMix64 {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Symmetric() { return static_cast<float>(static_cast<int64_t>(Next() >> 11) * 0x1.0p-52 - 1.0); }
};

uint64_t HashName(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// How a tensor is initialised.
enum class Init { kWeight, kOnes, kBias };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order
  DType type;
  Init init;
};

std::vector<TensorSpec> LlamaTensors(const ModelPreset& p, DType t) {
  const int64_t d = p.n_embd, hd = p.n_embd / p.n_heads, kv = hd * p.n_kv_heads;
  std::vector<TensorSpec> specs = {{"token_embd.weight", {d, p.n_vocab}, t, Init::kWeight},
                                   {"output_norm.weight", {d}, DType::kF32, Init::kOnes}};
  if (!p.tied_output) specs.push_back({"output.weight", {d, p.n_vocab}, t, Init::kWeight});
  for (int l = 0; l < p.n_layers; ++l) {
    const std::string b = absl::StrCat("blk.", l, ".");
    specs.push_back({b + "attn_norm.weight", {d}, DType::kF32, Init::kOnes});
    specs.push_back({b + "attn_q.weight", {d, d}, t, Init::kWeight});
    specs.push_back({b + "attn_k.weight", {d, kv}, t, Init::kWeight});
    specs.push_back({b + "attn_v.weight", {d, kv}, t, Init::kWeight});
    specs.push_back({b + "attn_output.weight", {d, d}, t, Init::kWeight});
    specs.push_back({b + "ffn_norm.weight", {d}, DType::kF32, Init::kOnes});
    specs.push_back({b + "ffn_gate.weight", {d, p.n_ff}, t, Init::kWeight});
    specs.push_back({b + "ffn_up.weight", {d, p.n_ff}, t, Init::kWeight});
    specs.push_back({b + "ffn_down.weight", {p.n_ff, d}, t, Init::kWeight});
  }
  return specs;
}

std::vector<TensorSpec> Gpt2Tensors(const ModelPreset& p, DType t) {
  const int64_t d = p.n_embd;
  std::vector<TensorSpec> specs = {{"token_embd.weight", {d, p.n_vocab}, t, Init::kWeight},
                                   {"position_embd.weight", {d, p.n_ctx}, t, Init::kWeight},
                                   {"output_norm.weight", {d}, DType::kF32, Init::kOnes},
                                   {"output_norm.bias", {d}, DType::kF32, Init::kBias}};
  for (int l = 0; l < p.n_layers; ++l) {
    const std::string b = absl::StrCat("blk.", l, ".");
    specs.push_back({b + "attn_norm.weight", {d}, DType::kF32, Init::kOnes});
    specs.push_back({b + "attn_norm.bias", {d}, DType::kF32, Init::kBias});
    specs.push_back({b + "attn_qkv.weight", {d, 3 * d}, t, Init::kWeight});
    specs.push_back({b + "attn_qkv.bias", {3 * d}, DType::kF32, Init::kBias});
    specs.push_back({b + "attn_output.weight", {d, d}, t, Init::kWeight});
    specs.push_back({b + "attn_output.bias", {d}, DType::kF32, Init::kBias});
    specs.push_back({b + "ffn_norm.weight", {d}, DType::kF32, Init::kOnes});
    specs.push_back({b + "ffn_norm.bias", {d}, DType::kF32, Init::kBias});
    specs.push_back({b + "ffn_up.weight", {d, p.n_ff}, t, Init::kWeight});
    specs.push_back({b + "ffn_up.bias", {p.n_ff}, DType::kF32, Init::kBias});
    specs.push_back({b + "ffn_down.weight", {p.n_ff, d}, t, Init::kWeight});
    specs.push_back({b + "ffn_down.bias", {d}, DType::kF32, Init::kBias});
  }
  return specs;
}

// GGUF general.file_type (llama.cpp's LLAMA_FTYPE values) for a model whose matrices are `t`.
uint32_t FileType(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ8_0: return 7;
    case DType::kBF16: return 32;
  }
  return 0;
}

}  // namespace

std::vector<ModelPreset> ModelPresets() {
  // arch, name, vocab, embd, layers, heads, kv heads, ff, ctx, tied output
  return {
      {"llama", "tiny", 512, 64, 4, 8, 2, 192, 512, false},  // 2 KV heads: replicated at tp=4
      {"llama", "tinyllama-1.1b", 32000, 2048, 22, 32, 4, 5632, 2048, false},
      {"gpt2", "tiny", 512, 64, 4, 4, 4, 256, 512, true},
      {"gpt2", "gpt2-124m", 50257, 768, 12, 12, 12, 3072, 1024, true},
  };
}

absl::StatusOr<ModelPreset> FindModelPreset(const std::string& arch, const std::string& name) {
  std::vector<std::string> names;
  for (const ModelPreset& p : ModelPresets()) {
    if (p.arch != arch) continue;
    if (p.name == name) return p;
    names.push_back(p.name);
  }
  if (names.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown architecture '", arch, "' (known: llama, gpt2)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown preset '", name, "' for ", arch, " (known: ",
                                                 absl::StrJoin(names, ", "), ")"));
}

absl::Status MakeModel(const MakeModelOptions& o, const std::function<void(uint64_t, uint64_t)>& progress) {
  const ModelPreset& p = o.preset;
  const bool llama = p.arch == "llama";
  if (p.n_embd % p.n_heads != 0 || p.n_heads % p.n_kv_heads != 0) {
    return absl::InvalidArgumentError("preset has inconsistent head counts");
  }
  GgufWriter w;
  const std::string a = p.arch + ".";
  w.SetString("general.architecture", p.arch);
  w.SetString("general.name", absl::StrCat("strata-", p.arch, "-", p.name));
  w.SetU32("general.file_type", FileType(o.dtype));
  if (o.dtype == DType::kQ8_0) w.SetU32("general.quantization_version", 2);
  w.SetU32(a + "context_length", p.n_ctx);
  w.SetU32(a + "embedding_length", p.n_embd);
  w.SetU32(a + "block_count", p.n_layers);
  w.SetU32(a + "feed_forward_length", p.n_ff);
  w.SetU32(a + "attention.head_count", p.n_heads);
  if (llama) {
    w.SetU32(a + "attention.head_count_kv", p.n_kv_heads);
    w.SetU32(a + "rope.dimension_count", p.n_embd / p.n_heads);
    w.SetF32(a + "rope.freq_base", p.rope_base);
    w.SetF32(a + "attention.layer_norm_rms_epsilon", p.norm_eps);
    w.SetU32(a + "vocab_size", p.n_vocab);
  } else {
    w.SetF32(a + "attention.layer_norm_epsilon", p.norm_eps);
  }
  WriteGgufVocab(llama ? BuildLlamaVocab(p.n_vocab) : BuildGpt2Vocab(p.n_vocab), &w);

  const std::vector<TensorSpec> specs = llama ? LlamaTensors(p, o.dtype) : Gpt2Tensors(p, o.dtype);
  for (const TensorSpec& s : specs) {
    if (s.dims[0] % DTypeBlockSize(s.type) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", s.name, " has ", s.dims[0],
                                                     " columns, not a multiple of the ", DTypeName(uint32_t(s.type)),
                                                     " block size"));
    }
    w.AddTensor(s.name, s.dims, s.type);
  }
  // GPT-2-style init: N(0, 0.02) approximated by a uniform of the same spread.
  const float amplitude = 0.02f * std::sqrt(3.0f);
  std::vector<float> row;
  auto fill = [&](size_t index, std::vector<uint8_t>& buf) -> absl::Status {
    const TensorSpec& s = specs[index];
    const int64_t cols = s.dims[0];
    const int64_t rows = s.dims.size() > 1 ? s.dims[1] : 1;
    SplitMix64 rng{o.seed ^ HashName(s.name)};
    row.resize(cols);
    const int64_t row_bytes = RowBytes(s.type, cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        switch (s.init) {
          case Init::kWeight: row[c] = amplitude * rng.Symmetric(); break;
          case Init::kOnes: row[c] = 1.0f + 0.1f * rng.Symmetric(); break;
          case Init::kBias: row[c] = 0.01f * rng.Symmetric(); break;
        }
      }
      QuantizeRow(s.type, row.data(), buf.data() + r * row_bytes, cols);
    }
    return absl::OkStatus();
  };
  return w.Write(o.out, fill, progress);
}

}  // namespace strata
