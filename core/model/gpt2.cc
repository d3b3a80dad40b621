// GPT-2 forward pass: learned positions, pre-LayerNorm blocks, fused QKV with biases, GELU MLP,
// tied output. Tensor names follow GGUF's gpt2 convention.
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

struct Gpt2Layer {
  const float *attn_norm_w, *attn_norm_b;  // [n_embd]
  Tensor wq, wk, wv;                        // row slices of attn_qkv [3 * n_embd, n_embd]
  const float *bq, *bk, *bv;                // slices of attn_qkv.bias [3 * n_embd]
  Tensor wo;                                // [n_embd, n_embd]
  const float* bo;                          // [n_embd]
  const float *ffn_norm_w, *ffn_norm_b;     // [n_embd]
  Tensor w_up;                              // [n_ff, n_embd]
  const float* b_up;                        // [n_ff]
  Tensor w_down;                            // [n_embd, n_ff]
  const float* b_down;                      // [n_embd]
};

class Gpt2 final : public Model {
 public:
  Gpt2(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config, Backend* backend, ModelOptions options)
      : Model(std::move(config), options, backend), loader_(*file, backend) {
    file_ = std::move(file);
  }

  absl::Status Load() {
    const ModelConfig& c = config_;
    const int64_t d = c.n_embd;
    STRATA_ASSIGN_OR_RETURN(tok_embd_, loader_.Matrix("token_embd.weight", c.n_vocab, d));
    STRATA_ASSIGN_OR_RETURN(pos_embd_, loader_.Matrix("position_embd.weight", c.n_ctx, d));
    STRATA_ASSIGN_OR_RETURN(output_norm_w_, loader_.Vector("output_norm.weight", d));
    STRATA_ASSIGN_OR_RETURN(output_norm_b_, loader_.Vector("output_norm.bias", d));
    if (loader_.Has("output.weight")) {
      STRATA_ASSIGN_OR_RETURN(output_, loader_.Matrix("output.weight", c.n_vocab, d));
    } else {
      output_ = tok_embd_;  // GPT-2 ties the output projection to the token embedding
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string p = absl::StrCat("blk.", l, ".");
      Gpt2Layer L;
      STRATA_ASSIGN_OR_RETURN(L.attn_norm_w, loader_.Vector(p + "attn_norm.weight", d));
      STRATA_ASSIGN_OR_RETURN(L.attn_norm_b, loader_.Vector(p + "attn_norm.bias", d));
      STRATA_ASSIGN_OR_RETURN(Tensor qkv, loader_.Matrix(p + "attn_qkv.weight", 3 * d, d));
      STRATA_ASSIGN_OR_RETURN(const float* qkv_b, loader_.Vector(p + "attn_qkv.bias", 3 * d));
      // The fused projection's rows are [q; k; v]: slicing by rows needs no copy.
      L.wq = qkv.RowSlice(0, d);
      L.wk = qkv.RowSlice(d, d);
      L.wv = qkv.RowSlice(2 * d, d);
      L.bq = qkv_b;
      L.bk = qkv_b + d;
      L.bv = qkv_b + 2 * d;
      STRATA_ASSIGN_OR_RETURN(L.wo, loader_.Matrix(p + "attn_output.weight", d, d));
      STRATA_ASSIGN_OR_RETURN(L.bo, loader_.Vector(p + "attn_output.bias", d));
      STRATA_ASSIGN_OR_RETURN(L.ffn_norm_w, loader_.Vector(p + "ffn_norm.weight", d));
      STRATA_ASSIGN_OR_RETURN(L.ffn_norm_b, loader_.Vector(p + "ffn_norm.bias", d));
      STRATA_ASSIGN_OR_RETURN(L.w_up, loader_.Matrix(p + "ffn_up.weight", c.n_ff, d));
      STRATA_ASSIGN_OR_RETURN(L.b_up, loader_.Vector(p + "ffn_up.bias", c.n_ff));
      STRATA_ASSIGN_OR_RETURN(L.w_down, loader_.Matrix(p + "ffn_down.weight", d, c.n_ff));
      STRATA_ASSIGN_OR_RETURN(L.b_down, loader_.Vector(p + "ffn_down.bias", d));
      layers_.push_back(L);
    }
    const int64_t T = options_.max_batch_tokens, R = options_.max_logit_rows;
    STRATA_ASSIGN_OR_RETURN(x_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(xb_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(q_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(k_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(v_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(att_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(hb_, Workspace(T * c.n_ff));
    STRATA_ASSIGN_OR_RETURN(xl_, Workspace(R * d));
    STRATA_ASSIGN_OR_RETURN(logits_, Workspace(R * c.n_vocab));
    return absl::OkStatus();
  }

 protected:
  void Run(const Batch& batch, KvCache* kv, float* logits) override {
    const ModelConfig& c = config_;
    Backend& be = *backend_;
    const int n = batch.n_tokens();
    const int d = c.n_embd;
    const int64_t nd = static_cast<int64_t>(n) * d;
    const AttentionShape shape{c.n_heads, c.n_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};

    // x = wte[token] + wpe[position]: [n, d]
    be.Embed(x_, tok_embd_, batch.tokens.data(), n);
    be.Embed(xb_, pos_embd_, batch.positions.data(), n);
    be.Add(x_, xb_, nd);
    for (int l = 0; l < c.n_layers; ++l) {
      const Gpt2Layer& L = layers_[l];
      // x += c_proj(attn(c_attn(ln_1(x))))
      be.LayerNorm(xb_, x_, L.attn_norm_w, L.attn_norm_b, n, d, c.norm_eps);
      be.MatMul(q_, xb_, L.wq, n);
      be.MatMul(k_, xb_, L.wk, n);
      be.MatMul(v_, xb_, L.wv, n);
      be.AddBias(q_, L.bq, n, d);
      be.AddBias(k_, L.bk, n, d);
      be.AddBias(v_, L.bv, n, d);
      const KvLayerView cache = kv->layer(l);
      be.StoreKv(cache, k_, v_, batch.slots.data(), n);
      be.Attention(att_, q_, cache, batch, shape);
      be.MatMul(xb_, att_, L.wo, n);
      be.AddBias(xb_, L.bo, n, d);
      be.Add(x_, xb_, nd);
      // x += c_proj(gelu(c_fc(ln_2(x))))
      be.LayerNorm(xb_, x_, L.ffn_norm_w, L.ffn_norm_b, n, d, c.norm_eps);
      be.MatMul(hb_, xb_, L.w_up, n);  // [n, n_ff]
      be.AddBias(hb_, L.b_up, n, c.n_ff);
      be.Gelu(hb_, static_cast<int64_t>(n) * c.n_ff);
      be.MatMul(xb_, hb_, L.w_down, n);
      be.AddBias(xb_, L.b_down, n, d);
      be.Add(x_, xb_, nd);
    }
    const int R = static_cast<int>(batch.logit_rows.size());
    if (R == 0) return;
    be.GatherRows(xb_, x_, batch.logit_rows.data(), R, d);
    be.LayerNorm(xl_, xb_, output_norm_w_, output_norm_b_, R, d, c.norm_eps);
    be.MatMul(logits_, xl_, output_, R);  // [R, n_vocab]
    be.CopyToHost(logits, logits_, static_cast<size_t>(R) * c.n_vocab * sizeof(float));
  }

 private:
  WeightLoader loader_;
  Tensor tok_embd_;  // [n_vocab, n_embd]
  Tensor pos_embd_;  // [n_ctx, n_embd]
  const float *output_norm_w_{}, *output_norm_b_{};
  Tensor output_;    // [n_vocab, n_embd]
  std::vector<Gpt2Layer> layers_;
  float* x_{};       // [T, n_embd] residual stream
  float* xb_{};      // [T, n_embd]
  float *q_{}, *k_{}, *v_{};  // [T, n_embd] each
  float* att_{};     // [T, n_embd]
  float* hb_{};      // [T, n_ff]
  float* xl_{};      // [R, n_embd]
  float* logits_{};  // [R, n_vocab]
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadGpt2(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                Backend* backend, const ModelOptions& options) {
  if (config.n_kv_heads != config.n_heads) {
    return absl::InvalidArgumentError("gpt2 models have as many KV heads as query heads");
  }
  auto model = std::make_unique<Gpt2>(std::move(file), std::move(config), backend, options);
  STRATA_RETURN_IF_ERROR(model->Load());
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace strata
