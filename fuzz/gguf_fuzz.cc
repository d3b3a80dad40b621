// Fuzzes everything a model file reaches before any weight is used: the GGUF parser (from memory,
// with GgufFile::Parse; libFuzzer's buffer is exactly the input, so ASan sees any read past it),
// every typed metadata getter, the model config, the parallel layout derived from it, the
// tokenizer vocabulary and Tokenizer::Create, and the tokenizer such a file produces.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "core/model/config.h"
#include "core/model/gguf.h"
#include "core/parallel/layout.h"
#include "core/tensor/dtype.h"
#include "core/tokenizer/gguf_vocab.h"
#include "core/tokenizer/stream_decoder.h"
#include "core/tokenizer/tokenizer.h"
#include "fuzz/fuzz_check.h"

namespace strata {
namespace {

constexpr const char* kName = "fuzz.gguf";

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(!s.ok(), "expected an error");
  FUZZ_CHECK(absl::StartsWith(s.message(), kName), "error does not name the file: %s", s.ToString().c_str());
}

void CheckTensors(const gguf::GgufFile& f, const uint8_t* data, size_t size) {
  volatile uint8_t sink = 0;
  for (const gguf::TensorInfo& t : f.tensors()) {
    FUZZ_CHECK(t.dims.size() >= 1 && t.dims.size() <= 4, "tensor with %zu dims", t.dims.size());
    FUZZ_CHECK(t.nbytes > 0, "empty tensor");
    FUZZ_CHECK(t.data >= data && t.nbytes <= size && t.data - data <= static_cast<ptrdiff_t>(size - t.nbytes),
               "tensor data outside the buffer");
    FUZZ_CHECK(t.nbytes == static_cast<uint64_t>(RowBytes(t.type, t.cols())) * static_cast<uint64_t>(t.rows()),
               "nbytes %llu does not match the dims", static_cast<unsigned long long>(t.nbytes));
    FUZZ_CHECK(f.FindTensor(t.name) == &t, "FindTensor does not find its own tensor");
    // Reading both ends puts ASan on any placement error.
    sink = sink + t.data[0] + t.data[t.nbytes - 1];
    const Tensor view = t.AsTensor();
    FUZZ_CHECK(view.rows == t.rows() && view.cols == t.cols(), "AsTensor changed the shape");
  }
}

// Every getter on every key: each must either succeed or fail cleanly, whatever the value's type.
void CheckGetters(const gguf::GgufFile& f) {
  for (const auto& [key, value] : f.metadata()) {
    FUZZ_CHECK(f.Find(key) != nullptr, "Find misses key");
    (void)f.GetInt(key);
    (void)f.GetFloat(key);
    (void)f.GetBool(key);
    (void)f.GetString(key);
    (void)f.GetStringArray(key);
    (void)f.GetFloatArray(key);
    (void)f.GetIntArray(key);
  }
}

void CheckConfig(const gguf::GgufFile& f) {
  absl::StatusOr<ModelConfig> c = ReadModelConfig(f);
  if (!c.ok()) {
    CheckError(c.status());
    return;
  }
  FUZZ_CHECK(c->n_embd > 0 && c->n_layers > 0 && c->n_heads > 0 && c->n_ff > 0 && c->n_ctx > 0 && c->n_vocab > 0,
             "non-positive size in an accepted config");
  FUZZ_CHECK(c->n_kv_heads > 0 && c->n_kv_heads <= c->n_heads && c->n_heads % c->n_kv_heads == 0,
             "bad KV heads %d for %d heads", c->n_kv_heads, c->n_heads);
  FUZZ_CHECK(c->head_dim * c->n_heads == c->n_embd, "head_dim * n_heads != n_embd");
  if (c->arch == Arch::kLlama) {
    FUZZ_CHECK(c->rope_dim > 0 && c->rope_dim <= c->head_dim && c->rope_dim % 2 == 0, "bad rope_dim %d",
               c->rope_dim);
  }
  // What loading does next: the shard of every rank of a few layouts.
  for (const auto& [tp, pp] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{1, 2}, std::pair{2, 2}}) {
    for (int rank = 0; rank < tp * pp; ++rank) {
      absl::StatusOr<ShardSpec> s = MakeShardSpec(*c, ParallelLayout{tp, pp, rank});
      if (!s.ok()) break;
      FUZZ_CHECK(s->first_layer >= 0 && s->first_layer < s->end_layer && s->end_layer <= c->n_layers,
                 "stage %d of %d holds layers [%d, %d) of %d", rank / tp, pp, s->first_layer, s->end_layer,
                 c->n_layers);
      FUZZ_CHECK(s->n_kv_heads > 0 && s->kv_head_offset >= 0 && s->kv_head_offset + s->n_kv_heads <= c->n_kv_heads,
                 "KV heads [%d, +%d) of %d", s->kv_head_offset, s->n_kv_heads, c->n_kv_heads);
      FUZZ_CHECK(s->vocab_offset >= 0 && s->n_vocab > 0 && s->vocab_offset + s->n_vocab <= c->n_vocab,
                 "vocab slice out of range");
    }
  }
}

void CheckTokenizer(const gguf::GgufFile& f) {
  absl::StatusOr<Vocab> vocab = ReadGgufVocab(f);
  if (!vocab.ok()) {
    CheckError(vocab.status());
    return;
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(vocab));
  if (!tok.ok()) return;  // messages from Create name the vocab, not the file (the loader adds the path)
  const Tokenizer& t = **tok;
  for (absl::string_view text : {absl::string_view("Hello world, once upon a time"),
                                 absl::string_view("  \xE2\x96\x81 \xF0\x9F\xA6\x99 \xff\xfe\x80 \xE4\xB8\xAD")}) {
    for (int32_t id : t.Encode(text, true)) {
      FUZZ_CHECK(id >= 0 && id < t.n_vocab(), "Encode gave id %d of %d", id, t.n_vocab());
    }
  }
  // Every token through Decode and the stream decoder (bounded: the vocab can be large).
  std::vector<int32_t> ids;
  for (int32_t id = -1; id <= t.n_vocab() && id < 4096; ++id) ids.push_back(id);
  const std::string decoded = t.Decode(ids);
  StreamDecoder stream(t, /*strip_leading_space=*/true);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.Push(id);
  streamed += stream.Flush();
  FUZZ_CHECK(streamed == decoded, "stream != Decode");
  for (int32_t id : ids) (void)t.IsEog(id), (void)t.TokenText(id);
}

}  // namespace
}  // namespace strata

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  absl::StatusOr<std::unique_ptr<gguf::GgufFile>> file = gguf::GgufFile::Parse(data, size, kName);
  if (!file.ok()) {
    FUZZ_CHECK(file.status().code() == absl::StatusCode::kInvalidArgument, "%s", file.status().ToString().c_str());
    CheckError(file.status());
    return 0;
  }
  CheckTensors(**file, data, size);
  CheckGetters(**file);
  CheckConfig(**file);
  CheckTokenizer(**file);
  return 0;
}
