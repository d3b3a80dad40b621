#include "core/model/config.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "core/model/gguf.h"
#include "core/util/status.h"

namespace strata {
namespace {

absl::StatusOr<int32_t> PositiveInt(const gguf::GgufFile& f, const std::string& key) {
  STRATA_ASSIGN_OR_RETURN(int64_t v, f.GetInt(key));
  if (v <= 0 || v > (1LL << 30)) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": metadata key '", key, "' is ", v,
                                                   ", expected a positive number"));
  }
  return static_cast<int32_t>(v);
}

}  // namespace

absl::StatusOr<ModelConfig> ReadModelConfig(const gguf::GgufFile& f) {
  ModelConfig c;
  STRATA_ASSIGN_OR_RETURN(c.arch_name, f.GetString("general.architecture"));
  if (c.arch_name == "llama" || c.arch_name == "qwen2" || c.arch_name == "mistral") {
    c.arch = Arch::kLlama;
  } else if (c.arch_name == "gpt2") {
    c.arch = Arch::kGpt2;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": architecture '", c.arch_name,
                                                   "' is not supported (supported: llama, qwen2, mistral, gpt2)"));
  }
  if (const gguf::Value* v = f.Find("general.name"); v != nullptr && v->type == gguf::ValueType::kString) {
    c.name = v->str;
  }
  const std::string a = c.arch_name + ".";
  STRATA_ASSIGN_OR_RETURN(c.n_embd, PositiveInt(f, a + "embedding_length"));
  STRATA_ASSIGN_OR_RETURN(c.n_layers, PositiveInt(f, a + "block_count"));
  // Every layer has weights, so a larger count is corrupt; unchecked, a tiny file could claim a
  // billion layers and make the layer partition (quadratic in the count) hang or exhaust memory.
  if (static_cast<size_t>(c.n_layers) > f.tensors().size()) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": block_count ", c.n_layers, " is more than the ",
                                                   f.tensors().size(), " tensors in the file"));
  }
  STRATA_ASSIGN_OR_RETURN(c.n_heads, PositiveInt(f, a + "attention.head_count"));
  STRATA_ASSIGN_OR_RETURN(c.n_ff, PositiveInt(f, a + "feed_forward_length"));
  STRATA_ASSIGN_OR_RETURN(c.n_ctx, PositiveInt(f, a + "context_length"));
  STRATA_ASSIGN_OR_RETURN(int64_t n_kv, f.GetIntOr(a + "attention.head_count_kv", c.n_heads));
  // Range-checked before narrowing: 2^32 + 2 must not pass as 2.
  if (n_kv <= 0 || n_kv > c.n_heads) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": head_count_kv ", n_kv, " must be in [1, head_count ",
                                                   c.n_heads, "]"));
  }
  c.n_kv_heads = static_cast<int32_t>(n_kv);
  if (c.n_embd % c.n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": embedding_length ", c.n_embd,
                                                   " is not divisible by head_count ", c.n_heads));
  }
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": head_count ", c.n_heads,
                                                   " is not a multiple of head_count_kv ", c.n_kv_heads));
  }
  c.head_dim = c.n_embd / c.n_heads;

  if (c.arch == Arch::kLlama) {
    STRATA_ASSIGN_OR_RETURN(double eps, f.GetFloatOr(a + "attention.layer_norm_rms_epsilon", 1e-5));
    c.norm_eps = static_cast<float>(eps);
    STRATA_ASSIGN_OR_RETURN(int64_t rope_dim, f.GetIntOr(a + "rope.dimension_count", c.head_dim));
    if (rope_dim <= 0 || rope_dim > c.head_dim || rope_dim % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(f.name(), ": rope.dimension_count ", rope_dim,
                                                     " must be even and at most the head size ", c.head_dim));
    }
    c.rope_dim = static_cast<int32_t>(rope_dim);
    STRATA_ASSIGN_OR_RETURN(double base, f.GetFloatOr(a + "rope.freq_base", 10000.0));
    c.rope_base = static_cast<float>(base);
    std::string scaling = "none";
    if (f.Has(a + "rope.scaling.type")) {
      STRATA_ASSIGN_OR_RETURN(scaling, f.GetString(a + "rope.scaling.type"));
    }
    STRATA_ASSIGN_OR_RETURN(double factor, f.GetFloatOr(a + "rope.scaling.factor", 0.0));
    if (scaling == "linear" && factor > 0) {
      c.rope_freq_scale = static_cast<float>(1.0 / factor);
    } else if (scaling != "none" && scaling != "linear") {
      return absl::InvalidArgumentError(absl::StrCat(f.name(), ": rope.scaling.type '", scaling,
                                                     "' is not supported (supported: none, linear)"));
    }
    c.rope_neox = c.arch_name == "qwen2";
  } else {
    STRATA_ASSIGN_OR_RETURN(double eps, f.GetFloatOr(a + "attention.layer_norm_epsilon", 1e-5));
    c.norm_eps = static_cast<float>(eps);
  }

  const gguf::TensorInfo* emb = f.FindTensor("token_embd.weight");
  if (emb == nullptr) return absl::InvalidArgumentError(absl::StrCat(f.name(), ": tensor 'token_embd.weight' is missing"));
  if (emb->dims.size() != 2 || emb->dims[0] != c.n_embd) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": tensor 'token_embd.weight' must be [", c.n_embd,
                                                   ", n_vocab]"));
  }
  if (emb->dims[1] <= 0 || emb->dims[1] > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": tensor 'token_embd.weight' has ", emb->dims[1],
                                                   " rows; the vocabulary must have 1 to 2^31 - 1 tokens"));
  }
  c.n_vocab = static_cast<int32_t>(emb->dims[1]);
  return c;
}

}  // namespace strata
