// One forward step over several sequences at once: prefill chunks and single decode tokens mixed.
// Tokens of a sequence are contiguous in `tokens`; each token knows its position and the KV-cache
// slot it writes to, and each sequence carries its block table so attention can read its past.
#pragma once

#include <cstdint>
#include <vector>

namespace strata {

struct SeqStep {
  int32_t first_token = 0;  // index of its first token in Batch::tokens
  int32_t n_tokens = 0;     // tokens of this sequence in this step (1 for decode)
  int32_t start_pos = 0;    // tokens of this sequence already in the KV cache
  const int32_t* block_table = nullptr;  // physical block of each logical block (host memory)
  int32_t n_blocks = 0;
  bool want_logits = false;  // compute logits for its last token in this step

  int32_t end_pos() const { return start_pos + n_tokens; }  // context length after this step
};

struct Batch {
  std::vector<int32_t> tokens;     // [T] token ids
  std::vector<int32_t> positions;  // [T] position of each token in its sequence
  std::vector<int32_t> slots;      // [T] KV slot = block * block_size + offset
  std::vector<SeqStep> seqs;       // in token order
  std::vector<int32_t> logit_rows; // [R] token rows whose logits are computed, in seqs order

  void Clear() {
    tokens.clear();
    positions.clear();
    slots.clear();
    seqs.clear();
    logit_rows.clear();
  }
  int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }

  // Appends `n` tokens of one sequence that already has `start_pos` tokens cached. The block table
  // must already cover start_pos + n tokens; it is referenced, not copied, so it must outlive the step.
  void AddSequence(const int32_t* ids, int32_t n, int32_t start_pos, const std::vector<int32_t>& block_table,
                   int32_t block_size, bool want_logits) {
    SeqStep s;
    s.first_token = n_tokens();
    s.n_tokens = n;
    s.start_pos = start_pos;
    s.block_table = block_table.data();
    s.n_blocks = static_cast<int32_t>(block_table.size());
    s.want_logits = want_logits;
    for (int32_t i = 0; i < n; ++i) {
      const int32_t pos = start_pos + i;
      tokens.push_back(ids[i]);
      positions.push_back(pos);
      slots.push_back(block_table[pos / block_size] * block_size + pos % block_size);
    }
    if (want_logits) logit_rows.push_back(s.first_token + n - 1);
    seqs.push_back(s);
  }
};

}  // namespace strata
