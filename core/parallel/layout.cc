#include "core/parallel/layout.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/util/status.h"

namespace strata {
namespace {

// [offset, offset + count) of part `i` when n items are split into `parts` nearly equal parts.
void SplitEven(int n, int parts, int i, int* offset, int* count) {
  const int base = n / parts, extra = n % parts;
  *offset = i * base + std::min(i, extra);
  *count = base + (i < extra ? 1 : 0);
}

}  // namespace

std::string ParallelLayout::ToString() const {
  return absl::StrCat("tp=", tp, " pp=", pp, " rank=", rank, " (stage ", stage(), ", tensor rank ", tensor_rank(),
                      ")");
}

absl::Status ValidateLayout(const ModelConfig& c, const ParallelLayout& l) {
  if (l.tp < 1 || l.pp < 1) {
    return absl::InvalidArgumentError(absl::StrCat("tp and pp must be at least 1, got tp=", l.tp, " pp=", l.pp));
  }
  if (l.rank < 0 || l.rank >= l.world()) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", l.rank, " is outside a world of tp*pp = ", l.world()));
  }
  if (c.n_heads % l.tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the model has ", c.n_heads, " attention heads, which tp=", l.tp,
                                                   " does not divide"));
  }
  if (l.pp > c.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("pp=", l.pp, " stages is more than the model's ", c.n_layers, " layers"));
  }
  if (c.n_ff % l.tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the model's MLP width ", c.n_ff, " is not divisible by tp=", l.tp));
  }
  if (l.tp > c.n_vocab) return absl::InvalidArgumentError("tp is larger than the vocabulary");
  return absl::OkStatus();
}

std::vector<int> PartitionLayers(const ModelConfig& c, int pp) {
  const int L = c.n_layers;
  if (pp == 1) return {0, L};  // what the search below finds, without its O(L^2) time
  // Cost in units of one layer's weights; the output projection (n_vocab x n_embd) is read once
  // per step on the last stage.
  const double layer = 2.0 * c.n_embd * c.q_dim() + 2.0 * c.n_embd * c.kv_dim() + 3.0 * c.n_embd * c.n_ff;
  const double output = static_cast<double>(c.n_vocab) * c.n_embd / layer;
  // best[s][i]: minimal max-stage cost putting layers [0, i) on stages [0, s).
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(pp + 1, std::vector<double>(L + 1, inf));
  std::vector<std::vector<int>> cut(pp + 1, std::vector<int>(L + 1, 0));
  best[0][0] = 0;
  for (int s = 1; s <= pp; ++s) {
    for (int i = s; i <= L; ++i) {
      for (int j = s - 1; j < i; ++j) {  // stage s-1 holds layers [j, i)
        const double stage_cost = (i - j) + (s == pp ? output : 0.0);
        const double v = std::max(best[s - 1][j], stage_cost);
        if (v < best[s][i] - 1e-9) {
          best[s][i] = v;
          cut[s][i] = j;
        }
      }
    }
  }
  std::vector<int> first(pp + 1);
  first[pp] = L;
  for (int s = pp, i = L; s > 0; --s) {
    i = cut[s][i];
    first[s - 1] = i;
  }
  return first;
}

absl::StatusOr<ShardSpec> MakeShardSpec(const ModelConfig& c, const ParallelLayout& l) {
  STRATA_RETURN_IF_ERROR(ValidateLayout(c, l));
  ShardSpec s;
  s.tp_rank = l.tensor_rank();
  s.tp_size = l.tp;
  const std::vector<int> first = PartitionLayers(c, l.pp);
  s.first_layer = first[l.stage()];
  s.end_layer = first[l.stage() + 1];
  s.has_embedding = l.first_stage();
  s.has_output = l.last_stage();
  s.n_heads = c.n_heads / l.tp;
  s.head_offset = s.tp_rank * s.n_heads;
  const int group = c.n_heads / c.n_kv_heads;  // query heads per KV head
  if (c.n_kv_heads % l.tp == 0) {
    s.n_kv_heads = c.n_kv_heads / l.tp;
    s.kv_head_offset = s.tp_rank * s.n_kv_heads;
  } else {
    // Fewer KV heads than ranks (or not divisible): each rank computes the KV heads its query
    // heads read, a contiguous range, so some KV heads live on several ranks.
    s.kv_replicated = true;
    s.kv_head_offset = s.head_offset / group;
    s.n_kv_heads = (s.head_offset + s.n_heads - 1) / group - s.kv_head_offset + 1;
  }
  s.n_ff = c.n_ff / l.tp;
  s.ff_offset = s.tp_rank * s.n_ff;
  SplitEven(c.n_vocab, l.tp, s.tp_rank, &s.vocab_offset, &s.n_vocab);
  return s;
}

}  // namespace strata
