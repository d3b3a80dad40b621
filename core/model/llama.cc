// Llama-family forward pass (Llama 2/3, TinyLlama, Mistral, Qwen2): RMSNorm, RoPE, grouped-query
// attention, SwiGLU MLP, tied or untied output. Tensor names follow GGUF's llama convention.
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

struct LlamaLayer {
  const float* attn_norm;       // [n_embd]
  Tensor wq, wk, wv;            // [q_dim, n_embd], [kv_dim, n_embd], [kv_dim, n_embd]
  const float *bq, *bk, *bv;    // optional biases (Qwen2), else nullptr
  Tensor wo;                    // [n_embd, q_dim]
  const float* ffn_norm;        // [n_embd]
  Tensor w_gate, w_up;          // [n_ff, n_embd]
  Tensor w_down;                // [n_embd, n_ff]
};

class Llama final : public Model {
 public:
  Llama(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config, Backend* backend, ModelOptions options)
      : Model(std::move(config), options, backend), loader_(*file, backend) {
    file_ = std::move(file);
  }

  absl::Status Load() {
    const ModelConfig& c = config_;
    STRATA_ASSIGN_OR_RETURN(tok_embd_, loader_.Matrix("token_embd.weight", c.n_vocab, c.n_embd));
    STRATA_ASSIGN_OR_RETURN(output_norm_, loader_.Vector("output_norm.weight", c.n_embd));
    if (loader_.Has("output.weight")) {
      STRATA_ASSIGN_OR_RETURN(output_, loader_.Matrix("output.weight", c.n_vocab, c.n_embd));
    } else {
      output_ = tok_embd_;  // tied embeddings
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string p = absl::StrCat("blk.", l, ".");
      LlamaLayer L;
      STRATA_ASSIGN_OR_RETURN(L.attn_norm, loader_.Vector(p + "attn_norm.weight", c.n_embd));
      STRATA_ASSIGN_OR_RETURN(L.wq, loader_.Matrix(p + "attn_q.weight", c.q_dim(), c.n_embd));
      STRATA_ASSIGN_OR_RETURN(L.wk, loader_.Matrix(p + "attn_k.weight", c.kv_dim(), c.n_embd));
      STRATA_ASSIGN_OR_RETURN(L.wv, loader_.Matrix(p + "attn_v.weight", c.kv_dim(), c.n_embd));
      STRATA_ASSIGN_OR_RETURN(L.bq, loader_.OptionalVector(p + "attn_q.bias", c.q_dim()));
      STRATA_ASSIGN_OR_RETURN(L.bk, loader_.OptionalVector(p + "attn_k.bias", c.kv_dim()));
      STRATA_ASSIGN_OR_RETURN(L.bv, loader_.OptionalVector(p + "attn_v.bias", c.kv_dim()));
      STRATA_ASSIGN_OR_RETURN(L.wo, loader_.Matrix(p + "attn_output.weight", c.n_embd, c.q_dim()));
      STRATA_ASSIGN_OR_RETURN(L.ffn_norm, loader_.Vector(p + "ffn_norm.weight", c.n_embd));
      STRATA_ASSIGN_OR_RETURN(L.w_gate, loader_.Matrix(p + "ffn_gate.weight", c.n_ff, c.n_embd));
      STRATA_ASSIGN_OR_RETURN(L.w_up, loader_.Matrix(p + "ffn_up.weight", c.n_ff, c.n_embd));
      STRATA_ASSIGN_OR_RETURN(L.w_down, loader_.Matrix(p + "ffn_down.weight", c.n_embd, c.n_ff));
      layers_.push_back(L);
    }
    const int64_t T = options_.max_batch_tokens, R = options_.max_logit_rows;
    STRATA_ASSIGN_OR_RETURN(x_, Workspace(T * c.n_embd));
    STRATA_ASSIGN_OR_RETURN(xb_, Workspace(T * c.n_embd));
    STRATA_ASSIGN_OR_RETURN(q_, Workspace(T * c.q_dim()));
    STRATA_ASSIGN_OR_RETURN(k_, Workspace(T * c.kv_dim()));
    STRATA_ASSIGN_OR_RETURN(v_, Workspace(T * c.kv_dim()));
    STRATA_ASSIGN_OR_RETURN(att_, Workspace(T * c.q_dim()));
    STRATA_ASSIGN_OR_RETURN(hb_, Workspace(T * c.n_ff));
    STRATA_ASSIGN_OR_RETURN(hb2_, Workspace(T * c.n_ff));
    STRATA_ASSIGN_OR_RETURN(xl_, Workspace(R * c.n_embd));
    STRATA_ASSIGN_OR_RETURN(logits_, Workspace(R * c.n_vocab));
    return absl::OkStatus();
  }

 protected:
  void Run(const Batch& batch, KvCache* kv, float* logits) override {
    const ModelConfig& c = config_;
    Backend& be = *backend_;
    const int n = batch.n_tokens();
    const RopeParams rope{c.rope_dim, c.rope_base, c.rope_freq_scale, c.rope_neox};
    const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};

    be.Embed(x_, tok_embd_, batch.tokens.data(), n);  // x: [n, n_embd]
    for (int l = 0; l < c.n_layers; ++l) {
      const LlamaLayer& L = layers_[l];
      // Attention: x += wo · attn(rope(wq·h), rope(wk·h), wv·h), h = rmsnorm(x)
      be.RmsNorm(xb_, x_, L.attn_norm, n, c.n_embd, c.norm_eps);
      be.MatMul(q_, xb_, L.wq, n);  // q: [n, q_dim]
      be.MatMul(k_, xb_, L.wk, n);  // k: [n, kv_dim]
      be.MatMul(v_, xb_, L.wv, n);  // v: [n, kv_dim]
      if (L.bq != nullptr) be.AddBias(q_, L.bq, n, c.q_dim());
      if (L.bk != nullptr) be.AddBias(k_, L.bk, n, c.kv_dim());
      if (L.bv != nullptr) be.AddBias(v_, L.bv, n, c.kv_dim());
      be.Rope(q_, batch.positions.data(), n, c.n_heads, c.head_dim, rope);
      be.Rope(k_, batch.positions.data(), n, c.n_kv_heads, c.head_dim, rope);
      const KvLayerView cache = kv->layer(l);
      be.StoreKv(cache, k_, v_, batch.slots.data(), n);
      be.Attention(att_, q_, cache, batch, shape);  // att: [n, q_dim]
      be.MatMul(xb_, att_, L.wo, n);
      be.Add(x_, xb_, static_cast<int64_t>(n) * c.n_embd);
      // MLP: x += w_down · (silu(w_gate·h) * (w_up·h)), h = rmsnorm(x)
      be.RmsNorm(xb_, x_, L.ffn_norm, n, c.n_embd, c.norm_eps);
      be.MatMul(hb_, xb_, L.w_gate, n);  // [n, n_ff]
      be.MatMul(hb2_, xb_, L.w_up, n);   // [n, n_ff]
      be.SwiGlu(hb_, hb_, hb2_, static_cast<int64_t>(n) * c.n_ff);
      be.MatMul(xb_, hb_, L.w_down, n);
      be.Add(x_, xb_, static_cast<int64_t>(n) * c.n_embd);
    }
    // Logits only for the rows that sample: [R, n_vocab] = output · rmsnorm(x[rows]).
    const int R = static_cast<int>(batch.logit_rows.size());
    if (R == 0) return;
    be.GatherRows(xb_, x_, batch.logit_rows.data(), R, c.n_embd);
    be.RmsNorm(xl_, xb_, output_norm_, R, c.n_embd, c.norm_eps);
    be.MatMul(logits_, xl_, output_, R);
    be.CopyToHost(logits, logits_, static_cast<size_t>(R) * c.n_vocab * sizeof(float));
  }

 private:
  WeightLoader loader_;
  Tensor tok_embd_;             // [n_vocab, n_embd]
  const float* output_norm_{};  // [n_embd]
  Tensor output_;               // [n_vocab, n_embd]
  std::vector<LlamaLayer> layers_;
  // Workspace, T = max_batch_tokens, R = max_logit_rows.
  float* x_{};       // [T, n_embd] residual stream
  float* xb_{};      // [T, n_embd]
  float* q_{};       // [T, q_dim]
  float* k_{};       // [T, kv_dim]
  float* v_{};       // [T, kv_dim]
  float* att_{};     // [T, q_dim]
  float* hb_{};      // [T, n_ff]
  float* hb2_{};     // [T, n_ff]
  float* xl_{};      // [R, n_embd]
  float* logits_{};  // [R, n_vocab]
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadLlama(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                 Backend* backend, const ModelOptions& options) {
  auto model = std::make_unique<Llama>(std::move(file), std::move(config), backend, options);
  STRATA_RETURN_IF_ERROR(model->Load());
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace strata
