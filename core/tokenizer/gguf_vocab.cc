#include "core/tokenizer/gguf_vocab.h"

#include "absl/strings/str_cat.h"
#include "core/model/gguf.h"
#include "core/model/gguf_writer.h"
#include "core/util/status.h"

namespace strata {
namespace {

// Special ids are stored as u32; 0xFFFFFFFF (or absent) means "none".
absl::StatusOr<int32_t> SpecialId(const gguf::GgufFile& f, const std::string& key, int32_t n_vocab) {
  STRATA_ASSIGN_OR_RETURN(int64_t id, f.GetIntOr(key, -1));
  if (id == 0xFFFFFFFFLL || id < 0) return -1;
  if (id >= n_vocab) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": metadata key '", key, "' is ", id,
                                                   ", outside the vocabulary of ", n_vocab, " tokens"));
  }
  return static_cast<int32_t>(id);
}

}  // namespace

absl::StatusOr<Vocab> ReadGgufVocab(const gguf::GgufFile& f) {
  Vocab v;
  STRATA_ASSIGN_OR_RETURN(v.model, f.GetString("tokenizer.ggml.model"));
  if (v.model != "llama" && v.model != "gpt2") {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": tokenizer.ggml.model '", v.model,
                                                   "' is not supported (supported: llama, gpt2)"));
  }
  STRATA_ASSIGN_OR_RETURN(v.tokens, f.GetStringArray("tokenizer.ggml.tokens"));
  const auto n = static_cast<int32_t>(v.tokens.size());
  if (f.Has("tokenizer.ggml.scores")) {
    STRATA_ASSIGN_OR_RETURN(v.scores, f.GetFloatArray("tokenizer.ggml.scores"));
  }
  if (f.Has("tokenizer.ggml.token_type")) {
    STRATA_ASSIGN_OR_RETURN(std::vector<int64_t> types, f.GetIntArray("tokenizer.ggml.token_type"));
    v.types.assign(types.begin(), types.end());
  }
  if (f.Has("tokenizer.ggml.merges")) {
    STRATA_ASSIGN_OR_RETURN(v.merges, f.GetStringArray("tokenizer.ggml.merges"));
  }
  if (!v.scores.empty() && static_cast<int32_t>(v.scores.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": tokenizer.ggml.scores has ", v.scores.size(),
                                                   " entries for ", n, " tokens"));
  }
  if (!v.types.empty() && static_cast<int32_t>(v.types.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(f.name(), ": tokenizer.ggml.token_type has ", v.types.size(),
                                                   " entries for ", n, " tokens"));
  }
  STRATA_ASSIGN_OR_RETURN(v.bos_id, SpecialId(f, "tokenizer.ggml.bos_token_id", n));
  STRATA_ASSIGN_OR_RETURN(v.eos_id, SpecialId(f, "tokenizer.ggml.eos_token_id", n));
  STRATA_ASSIGN_OR_RETURN(v.unk_id, SpecialId(f, "tokenizer.ggml.unknown_token_id", n));
  STRATA_ASSIGN_OR_RETURN(v.pad_id, SpecialId(f, "tokenizer.ggml.padding_token_id", n));
  // llama.cpp's defaults: SentencePiece models add BOS, byte-level BPE models do not.
  STRATA_ASSIGN_OR_RETURN(v.add_bos, f.GetBoolOr("tokenizer.ggml.add_bos_token", v.model == "llama"));
  STRATA_ASSIGN_OR_RETURN(v.add_space_prefix, f.GetBoolOr("tokenizer.ggml.add_space_prefix", v.model == "llama"));
  return v;
}

void WriteGgufVocab(const Vocab& v, GgufWriter* w) {
  w->SetString("tokenizer.ggml.model", v.model);
  if (v.model == "gpt2") w->SetString("tokenizer.ggml.pre", "gpt-2");
  w->SetStringArray("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) w->SetF32Array("tokenizer.ggml.scores", v.scores);
  if (!v.types.empty()) w->SetI32Array("tokenizer.ggml.token_type", v.types);
  if (!v.merges.empty()) w->SetStringArray("tokenizer.ggml.merges", v.merges);
  if (v.bos_id >= 0) w->SetU32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id));
  if (v.eos_id >= 0) w->SetU32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id));
  if (v.unk_id >= 0) w->SetU32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
  if (v.pad_id >= 0) w->SetU32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(v.pad_id));
  w->SetBool("tokenizer.ggml.add_bos_token", v.add_bos);
  w->SetBool("tokenizer.ggml.add_eos_token", false);
  if (v.model == "llama") w->SetBool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

}  // namespace strata
