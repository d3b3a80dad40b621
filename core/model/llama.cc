// Llama-family forward pass (Llama 2/3, TinyLlama, Mistral, Qwen2): RMSNorm, RoPE, grouped-query
// attention, SwiGLU MLP, tied or untied output. Tensor names follow GGUF's llama convention.
//
// A rank holds a shard (core/parallel/layout.h): its layers, its query/KV heads and MLP columns
// (Q, K, V, gate, up split by output; O and down by input, each followed by one all-reduce), the
// embedding on stage 0 and its vocabulary slice of the output projection on the last stage.
#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/gguf.h"
#include "core/model/model.h"
#include "core/model/weight_loader.h"
#include "core/util/status.h"

namespace strata {
namespace {

// Shapes with local sizes: q = this rank's heads * head_dim, kv = its KV heads * head_dim,
// ff = its MLP columns.
struct LlamaLayer {
  const float* attn_norm;       // [n_embd]
  Tensor wq, wk, wv;            // [q, n_embd], [kv, n_embd], [kv, n_embd]
  const float *bq, *bk, *bv;    // optional biases (Qwen2), else nullptr
  Tensor wo;                    // [n_embd, q]
  const float* ffn_norm;        // [n_embd]
  Tensor w_gate, w_up;          // [ff, n_embd]
  Tensor w_down;                // [n_embd, ff]
};

class Llama final : public Model {
 public:
  Llama(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config, ShardSpec shard, Backend* backend,
        ModelOptions options)
      : Model(std::move(config), options, shard, backend), loader_(*file, backend) {
    file_ = std::move(file);
  }

  absl::Status Load() {
    const ModelConfig& c = config_;
    const ShardSpec& s = shard_;
    const int64_t hd = c.head_dim, d = c.n_embd;
    const int64_t q = s.n_heads * hd, q_off = s.head_offset * hd;
    const int64_t kv = s.n_kv_heads * hd, kv_off = s.kv_head_offset * hd;
    if (s.has_embedding) {
      STRATA_ASSIGN_OR_RETURN(tok_embd_, loader_.Table("token_embd.weight", c.n_vocab, d));
    }
    if (s.has_output) {
      STRATA_ASSIGN_OR_RETURN(output_norm_, loader_.Vector("output_norm.weight", d));
      // Untied models store output.weight; tied ones reuse the embedding.
      const std::string out = loader_.Has("output.weight") ? "output.weight" : "token_embd.weight";
      STRATA_ASSIGN_OR_RETURN(output_, loader_.RowShard(out, c.n_vocab, d, s.vocab_offset, s.n_vocab));
    }
    for (int l = s.first_layer; l < s.end_layer; ++l) {
      const std::string p = absl::StrCat("blk.", l, ".");
      LlamaLayer L;
      STRATA_ASSIGN_OR_RETURN(L.attn_norm, loader_.Vector(p + "attn_norm.weight", d));
      STRATA_ASSIGN_OR_RETURN(L.wq, loader_.RowShard(p + "attn_q.weight", c.q_dim(), d, q_off, q));
      STRATA_ASSIGN_OR_RETURN(L.wk, loader_.RowShard(p + "attn_k.weight", c.kv_dim(), d, kv_off, kv));
      STRATA_ASSIGN_OR_RETURN(L.wv, loader_.RowShard(p + "attn_v.weight", c.kv_dim(), d, kv_off, kv));
      STRATA_ASSIGN_OR_RETURN(L.bq, loader_.OptionalVector(p + "attn_q.bias", c.q_dim(), q_off, q));
      STRATA_ASSIGN_OR_RETURN(L.bk, loader_.OptionalVector(p + "attn_k.bias", c.kv_dim(), kv_off, kv));
      STRATA_ASSIGN_OR_RETURN(L.bv, loader_.OptionalVector(p + "attn_v.bias", c.kv_dim(), kv_off, kv));
      STRATA_ASSIGN_OR_RETURN(L.wo, loader_.ColumnShard(p + "attn_output.weight", d, c.q_dim(), q_off, q));
      STRATA_ASSIGN_OR_RETURN(L.ffn_norm, loader_.Vector(p + "ffn_norm.weight", d));
      STRATA_ASSIGN_OR_RETURN(L.w_gate, loader_.RowShard(p + "ffn_gate.weight", c.n_ff, d, s.ff_offset, s.n_ff));
      STRATA_ASSIGN_OR_RETURN(L.w_up, loader_.RowShard(p + "ffn_up.weight", c.n_ff, d, s.ff_offset, s.n_ff));
      STRATA_ASSIGN_OR_RETURN(L.w_down, loader_.ColumnShard(p + "ffn_down.weight", d, c.n_ff, s.ff_offset, s.n_ff));
      layers_.push_back(L);
    }
    const int64_t T = options_.max_batch_tokens, R = options_.max_logit_rows;
    STRATA_ASSIGN_OR_RETURN(x_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(xb_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(q_, Workspace(T * q));
    STRATA_ASSIGN_OR_RETURN(k_, Workspace(T * kv));
    STRATA_ASSIGN_OR_RETURN(v_, Workspace(T * kv));
    STRATA_ASSIGN_OR_RETURN(att_, Workspace(T * q));
    STRATA_ASSIGN_OR_RETURN(hb_, Workspace(T * s.n_ff));
    STRATA_ASSIGN_OR_RETURN(hb2_, Workspace(T * s.n_ff));
    if (s.has_output) {
      STRATA_ASSIGN_OR_RETURN(xl_, Workspace(R * d));
      STRATA_ASSIGN_OR_RETURN(logits_, Workspace(R * s.n_vocab));
    }
    return absl::OkStatus();
  }

 protected:
  void Run(const Batch& batch, KvCache* kv, float* logits) override {
    const ModelConfig& c = config_;
    const ShardSpec& s = shard_;
    Backend& be = *backend_;
    const int n = batch.n_tokens();
    const int d = c.n_embd, q = s.n_heads * c.head_dim, kvd = s.n_kv_heads * c.head_dim;
    const int64_t nd = static_cast<int64_t>(n) * d;
    const RopeParams rope{c.rope_dim, c.rope_base, c.rope_freq_scale, c.rope_neox};
    AttentionShape shape{s.n_heads, s.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
    shape.group = c.n_heads / c.n_kv_heads;
    shape.q_head_offset = s.head_offset;

    if (s.has_embedding) be.Embed(x_, tok_embd_, batch.tokens.data(), n);  // x: [n, d]
    for (int l = 0; l < s.n_layers(); ++l) {
      const LlamaLayer& L = layers_[l];
      // Attention: x += wo · attn(rope(wq·h), rope(wk·h), wv·h), h = rmsnorm(x)
      be.RmsNorm(xb_, x_, L.attn_norm, n, d, c.norm_eps);
      const Backend::MatMulTarget qkv[] = {{q_, &L.wq}, {k_, &L.wk}, {v_, &L.wv}};
      be.MatMuls(qkv, 3, xb_, n);  // q: [n, q], k and v: [n, kv]
      if (L.bq != nullptr) be.AddBias(q_, L.bq, n, q);
      if (L.bk != nullptr) be.AddBias(k_, L.bk, n, kvd);
      if (L.bv != nullptr) be.AddBias(v_, L.bv, n, kvd);
      be.Rope(q_, batch.positions.data(), n, s.n_heads, c.head_dim, rope);
      be.Rope(k_, batch.positions.data(), n, s.n_kv_heads, c.head_dim, rope);
      const KvLayerView cache = kv->layer(l);
      be.StoreKv(cache, k_, v_, batch.slots.data(), n);
      be.Attention(att_, q_, cache, batch, shape);  // att: [n, q]
      be.MatMul(xb_, att_, L.wo, n);                // partial sums over this rank's heads
      AllReduce(xb_, nd);
      be.Add(x_, xb_, nd);
      // MLP: x += w_down · (silu(w_gate·h) * (w_up·h)), h = rmsnorm(x)
      be.RmsNorm(xb_, x_, L.ffn_norm, n, d, c.norm_eps);
      const Backend::MatMulTarget gate_up[] = {{hb_, &L.w_gate}, {hb2_, &L.w_up}};
      be.MatMuls(gate_up, 2, xb_, n);  // [n, ff] each
      be.SwiGlu(hb_, hb_, hb2_, static_cast<int64_t>(n) * s.n_ff);
      be.MatMul(xb_, hb_, L.w_down, n);  // partial sums over this rank's columns
      AllReduce(xb_, nd);
      be.Add(x_, xb_, nd);
    }
    // Logits only on the last stage and only for the rows that sample:
    // [R, vocab slice] = output[slice] · rmsnorm(x[rows]).
    const int R = static_cast<int>(batch.logit_rows.size());
    if (!s.has_output || R == 0) return;
    be.GatherRows(xb_, x_, batch.logit_rows.data(), R, d);
    be.RmsNorm(xl_, xb_, output_norm_, R, d, c.norm_eps);
    be.MatMul(logits_, xl_, output_, R);
    be.CopyToHost(logits, logits_, static_cast<size_t>(R) * s.n_vocab * sizeof(float));
  }

 private:
  WeightLoader loader_;
  Tensor tok_embd_;             // [n_vocab, n_embd] (stage 0)
  const float* output_norm_{};  // [n_embd] (last stage)
  Tensor output_;               // [vocab slice, n_embd] (last stage)
  std::vector<LlamaLayer> layers_;
  // Workspace, T = max_batch_tokens, R = max_logit_rows; x_ (the residual stream) is in Model.
  float* xb_{};      // [T, n_embd]
  float* q_{};       // [T, q]
  float* k_{};       // [T, kv]
  float* v_{};       // [T, kv]
  float* att_{};     // [T, q]
  float* hb_{};      // [T, ff]
  float* hb2_{};     // [T, ff]
  float* xl_{};      // [R, n_embd]
  float* logits_{};  // [R, vocab slice]
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadLlama(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                 ShardSpec shard, Backend* backend, const ModelOptions& options) {
  auto model = std::make_unique<Llama>(std::move(file), std::move(config), shard, backend, options);
  STRATA_RETURN_IF_ERROR(model->Load());
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace strata
