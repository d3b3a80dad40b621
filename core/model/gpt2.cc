// GPT-2 forward pass: learned positions, pre-LayerNorm blocks, fused QKV with biases, GELU MLP,
// tied output. Tensor names follow GGUF's gpt2 convention.
//
// Sharded like llama.cc: this rank's heads of Q, K and V (rows of each third of the fused QKV),
// its MLP columns, the output projection's vocabulary slice; biases of the input-split layers
// (attention output, MLP down) are added once, after the all-reduce.
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

// Local sizes: h = this rank's heads * head_dim, ff = its MLP columns.
struct Gpt2Layer {
  const float *attn_norm_w, *attn_norm_b;  // [n_embd]
  Tensor wq, wk, wv;                        // [h, n_embd] each, rows of attn_qkv [3 * n_embd, n_embd]
  const float *bq, *bk, *bv;                // [h] each, from attn_qkv.bias [3 * n_embd]
  Tensor wo;                                // [n_embd, h]
  const float* bo;                          // [n_embd]
  const float *ffn_norm_w, *ffn_norm_b;     // [n_embd]
  Tensor w_up;                              // [ff, n_embd]
  const float* b_up;                        // [ff]
  Tensor w_down;                            // [n_embd, ff]
  const float* b_down;                      // [n_embd]
};

class Gpt2 final : public Model {
 public:
  Gpt2(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config, ShardSpec shard, Backend* backend,
       ModelOptions options)
      : Model(std::move(config), options, shard, backend), loader_(*file, backend) {
    file_ = std::move(file);
  }

  absl::Status Load() {
    const ModelConfig& c = config_;
    const ShardSpec& s = shard_;
    const int64_t d = c.n_embd, h = s.n_heads * c.head_dim, h_off = s.head_offset * c.head_dim;
    if (s.has_embedding) {
      STRATA_ASSIGN_OR_RETURN(tok_embd_, loader_.Table("token_embd.weight", c.n_vocab, d));
      STRATA_ASSIGN_OR_RETURN(pos_embd_, loader_.Table("position_embd.weight", c.n_ctx, d));
    }
    if (s.has_output) {
      STRATA_ASSIGN_OR_RETURN(output_norm_w_, loader_.Vector("output_norm.weight", d));
      STRATA_ASSIGN_OR_RETURN(output_norm_b_, loader_.Vector("output_norm.bias", d));
      // GPT-2 ties the output projection to the token embedding unless output.weight exists.
      const std::string out = loader_.Has("output.weight") ? "output.weight" : "token_embd.weight";
      STRATA_ASSIGN_OR_RETURN(output_, loader_.RowShard(out, c.n_vocab, d, s.vocab_offset, s.n_vocab));
    }
    for (int l = s.first_layer; l < s.end_layer; ++l) {
      const std::string p = absl::StrCat("blk.", l, ".");
      Gpt2Layer L;
      STRATA_ASSIGN_OR_RETURN(L.attn_norm_w, loader_.Vector(p + "attn_norm.weight", d));
      STRATA_ASSIGN_OR_RETURN(L.attn_norm_b, loader_.Vector(p + "attn_norm.bias", d));
      // The fused projection's rows are [q; k; v]: this rank's heads of each third, no copy.
      STRATA_ASSIGN_OR_RETURN(L.wq, loader_.RowShard(p + "attn_qkv.weight", 3 * d, d, h_off, h));
      STRATA_ASSIGN_OR_RETURN(L.wk, loader_.RowShard(p + "attn_qkv.weight", 3 * d, d, d + h_off, h));
      STRATA_ASSIGN_OR_RETURN(L.wv, loader_.RowShard(p + "attn_qkv.weight", 3 * d, d, 2 * d + h_off, h));
      STRATA_ASSIGN_OR_RETURN(L.bq, loader_.Vector(p + "attn_qkv.bias", 3 * d, h_off, h));
      STRATA_ASSIGN_OR_RETURN(L.bk, loader_.Vector(p + "attn_qkv.bias", 3 * d, d + h_off, h));
      STRATA_ASSIGN_OR_RETURN(L.bv, loader_.Vector(p + "attn_qkv.bias", 3 * d, 2 * d + h_off, h));
      STRATA_ASSIGN_OR_RETURN(L.wo, loader_.ColumnShard(p + "attn_output.weight", d, d, h_off, h));
      STRATA_ASSIGN_OR_RETURN(L.bo, loader_.Vector(p + "attn_output.bias", d));
      STRATA_ASSIGN_OR_RETURN(L.ffn_norm_w, loader_.Vector(p + "ffn_norm.weight", d));
      STRATA_ASSIGN_OR_RETURN(L.ffn_norm_b, loader_.Vector(p + "ffn_norm.bias", d));
      STRATA_ASSIGN_OR_RETURN(L.w_up, loader_.RowShard(p + "ffn_up.weight", c.n_ff, d, s.ff_offset, s.n_ff));
      STRATA_ASSIGN_OR_RETURN(L.b_up, loader_.Vector(p + "ffn_up.bias", c.n_ff, s.ff_offset, s.n_ff));
      STRATA_ASSIGN_OR_RETURN(L.w_down, loader_.ColumnShard(p + "ffn_down.weight", d, c.n_ff, s.ff_offset, s.n_ff));
      STRATA_ASSIGN_OR_RETURN(L.b_down, loader_.Vector(p + "ffn_down.bias", d));
      layers_.push_back(L);
    }
    const int64_t T = options_.max_batch_tokens, R = options_.max_logit_rows;
    STRATA_ASSIGN_OR_RETURN(x_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(xb_, Workspace(T * d));
    STRATA_ASSIGN_OR_RETURN(q_, Workspace(T * h));
    STRATA_ASSIGN_OR_RETURN(k_, Workspace(T * h));
    STRATA_ASSIGN_OR_RETURN(v_, Workspace(T * h));
    STRATA_ASSIGN_OR_RETURN(att_, Workspace(T * h));
    STRATA_ASSIGN_OR_RETURN(hb_, Workspace(T * s.n_ff));
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
    const int d = c.n_embd, h = s.n_heads * c.head_dim;
    const int64_t nd = static_cast<int64_t>(n) * d;
    AttentionShape shape{s.n_heads, s.n_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};

    if (s.has_embedding) {  // x = wte[token] + wpe[position]: [n, d]
      be.Embed(x_, tok_embd_, batch.tokens.data(), n);
      be.Embed(xb_, pos_embd_, batch.positions.data(), n);
      be.Add(x_, xb_, nd);
    }
    for (int l = 0; l < s.n_layers(); ++l) {
      const Gpt2Layer& L = layers_[l];
      // x += c_proj(attn(c_attn(ln_1(x))))
      be.LayerNorm(xb_, x_, L.attn_norm_w, L.attn_norm_b, n, d, c.norm_eps);
      const Backend::MatMulTarget qkv[] = {{q_, &L.wq}, {k_, &L.wk}, {v_, &L.wv}};
      be.MatMuls(qkv, 3, xb_, n);  // [n, h] each
      be.AddBias(q_, L.bq, n, h);
      be.AddBias(k_, L.bk, n, h);
      be.AddBias(v_, L.bv, n, h);
      const KvLayerView cache = kv->layer(l);
      be.StoreKv(cache, k_, v_, batch.slots.data(), n);
      be.Attention(att_, q_, cache, batch, shape);
      be.MatMul(xb_, att_, L.wo, n);
      AllReduce(xb_, nd);
      be.AddBias(xb_, L.bo, n, d);
      be.Add(x_, xb_, nd);
      // x += c_proj(gelu(c_fc(ln_2(x))))
      be.LayerNorm(xb_, x_, L.ffn_norm_w, L.ffn_norm_b, n, d, c.norm_eps);
      be.MatMul(hb_, xb_, L.w_up, n);  // [n, ff]
      be.AddBias(hb_, L.b_up, n, s.n_ff);
      be.Gelu(hb_, static_cast<int64_t>(n) * s.n_ff);
      be.MatMul(xb_, hb_, L.w_down, n);
      AllReduce(xb_, nd);
      be.AddBias(xb_, L.b_down, n, d);
      be.Add(x_, xb_, nd);
    }
    const int R = static_cast<int>(batch.logit_rows.size());
    if (!s.has_output || R == 0) return;
    be.GatherRows(xb_, x_, batch.logit_rows.data(), R, d);
    be.LayerNorm(xl_, xb_, output_norm_w_, output_norm_b_, R, d, c.norm_eps);
    be.MatMul(logits_, xl_, output_, R);  // [R, vocab slice]
    be.CopyToHost(logits, logits_, static_cast<size_t>(R) * s.n_vocab * sizeof(float));
  }

 private:
  WeightLoader loader_;
  Tensor tok_embd_;  // [n_vocab, n_embd] (stage 0)
  Tensor pos_embd_;  // [n_ctx, n_embd] (stage 0)
  const float *output_norm_w_{}, *output_norm_b_{};
  Tensor output_;    // [vocab slice, n_embd] (last stage)
  std::vector<Gpt2Layer> layers_;
  float* xb_{};      // [T, n_embd]
  float *q_{}, *k_{}, *v_{};  // [T, h] each
  float* att_{};     // [T, h]
  float* hb_{};      // [T, ff]
  float* xl_{};      // [R, n_embd]
  float* logits_{};  // [R, vocab slice]
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadGpt2(std::shared_ptr<const gguf::GgufFile> file, ModelConfig config,
                                                ShardSpec shard, Backend* backend, const ModelOptions& options) {
  if (config.n_kv_heads != config.n_heads) {
    return absl::InvalidArgumentError("gpt2 models have as many KV heads as query heads");
  }
  auto model = std::make_unique<Gpt2>(std::move(file), std::move(config), shard, backend, options);
  STRATA_RETURN_IF_ERROR(model->Load());
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace strata
