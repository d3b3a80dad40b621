// Where a rank sits in a TP × PP job, and what it holds of the model.
//
// MPI rank r is pipeline stage r / tp and tensor rank r % tp. For tp = 2, pp = 2 on 4 ranks:
//   stage 0: ranks 0, 1 (tensor ranks 0, 1) — token embedding, layers [0, L/2)
//   stage 1: ranks 2, 3 (tensor ranks 0, 1) — layers [L/2, L), final norm, output projection
//   TP groups (all-reduce after attention and after the MLP): {0, 1}, {2, 3}
//   PP groups (hidden states from stage s to s + 1, same tensor rank): {0, 2}, {1, 3}
// Within a TP group each rank holds 1/tp of the heads, of the MLP width and of the vocabulary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/config.h"

namespace strata {

struct ParallelLayout {
  int tp = 1;
  int pp = 1;
  int rank = 0;

  int world() const { return tp * pp; }
  int stage() const { return rank / tp; }
  int tensor_rank() const { return rank % tp; }
  bool first_stage() const { return stage() == 0; }
  bool last_stage() const { return stage() == pp - 1; }
  int RankOf(int stage, int tensor_rank) const { return stage * tp + tensor_rank; }
  std::string ToString() const;  // "tp=2 pp=2 rank=3 (stage 1, tensor rank 1)"
};

// What one rank holds. For a single process: everything.
struct ShardSpec {
  int tp_rank = 0, tp_size = 1;
  int first_layer = 0, end_layer = 0;   // layers [first_layer, end_layer)
  bool has_embedding = true;            // stage 0: token (and position) embedding
  bool has_output = true;               // last stage: final norm and output projection
  int n_heads = 0, head_offset = 0;     // query heads [head_offset, head_offset + n_heads)
  int n_kv_heads = 0, kv_head_offset = 0;  // KV heads this rank computes and caches
  bool kv_replicated = false;           // KV heads not divisible by tp: ranks share KV heads
  int n_ff = 0, ff_offset = 0;          // MLP columns
  int n_vocab = 0, vocab_offset = 0;    // output-projection rows (vocabulary slice)

  int n_layers() const { return end_layer - first_layer; }
};

// Checks a layout against a model, with messages naming the numbers (heads not divisible by tp,
// more stages than layers, ...).
absl::Status ValidateLayout(const ModelConfig& config, const ParallelLayout& layout);

// First layer of each stage (size pp + 1, last entry = n_layers): contiguous ranges balanced by
// cost, counting the output projection as extra work on the last stage.
std::vector<int> PartitionLayers(const ModelConfig& config, int pp);

// The shard of `layout.rank`. Validates the layout first.
absl::StatusOr<ShardSpec> MakeShardSpec(const ModelConfig& config, const ParallelLayout& layout);

}  // namespace strata
