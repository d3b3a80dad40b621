// Turns one row of logits into a token id. The chain follows llama.cpp's default order:
//   penalties -> (greedy if temperature == 0) -> top-k -> top-p -> min-p -> temperature -> draw.
// Top-p and min-p look at the softmax of the penalized logits *without* temperature, as llama.cpp
// does, so temperature only reshapes the distribution over the tokens that survive truncation.
//
// Determinism: the draw walks the surviving tokens in a canonical order (by logit descending, id
// ascending after top-k; by id otherwise) and the RNG is std::mt19937_64, whose output is fixed by
// the standard, so the same seed, logits and history give the same tokens in every run and process.
//
// Cost is O(V) per call plus: top-k O(V log k) (bounded heap; nth_element for large k), top-p over
// the whole vocabulary O(V) plus sorting one logit bucket, no full sort of the vocabulary.
//
// One Sampler per sequence: it carries the RNG state. Not thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "core/sampling/sampling_params.h"

namespace strata {

// The seed of a sequence's draw number `index` (tokens generated before it). Seeding every draw
// from (seed, index) instead of carrying RNG state makes a sequence's tokens independent of where
// and when each draw runs: after preemption, on another worker, or after a restart.
uint64_t DrawSeed(uint64_t seed, uint64_t index);

class Sampler {
 public:
  // `params` should have passed ValidateSamplingParams; out-of-range values are treated as the
  // nearest meaningful setting (e.g. top_k < 0 as disabled) rather than crashing.
  explicit Sampler(const SamplingParams& params);

  // Samples one id from logits[0, n_vocab). `history` is prompt + generated tokens so far (used by
  // the penalties); history[generated_begin...] are the generated ones. Ids in history outside
  // [0, n_vocab) are ignored. NaN logits count as -inf. Returns -1 only if n_vocab <= 0.
  // Scratch buffers grow to the largest n_vocab seen and are reused: no allocation after the first
  // call with a given vocabulary size.
  int32_t Sample(const float* logits, int32_t n_vocab, const std::vector<int32_t>& history,
                 size_t generated_begin);

  struct TokenLogprob {
    int32_t id;
    float logprob;
  };
  // Log-probabilities (natural log) refer to the last Sample call's distribution *after penalties
  // but before temperature and top-k/top-p/min-p truncation*: that is the model's own view of the
  // token, comparable across requests with different sampling settings (OpenAI-style logprobs).
  // The min(n, n_vocab) most likely tokens, most likely first (ties -> lower id first).
  std::vector<TokenLogprob> TopLogprobs(int n) const;
  // Log-probability of the token returned by the last Sample call; -inf before any call.
  float ChosenLogprob() const;

  const SamplingParams& params() const { return params_; }
  // Starts over with `params` and an RNG seeded with `seed` (params.seed is not used), keeping
  // the scratch buffers: one Sampler can serve many sequences without allocating.
  void Reset(const SamplingParams& params, uint64_t seed);

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float weight;  // unnormalised probability, filled where needed
  };

  // Top-p over the whole vocabulary buckets tokens by logit distance from the top token (this many
  // buckets over this many nats) so that only the bucket holding the cutoff needs sorting.
  static constexpr int kTopPBuckets = 1024;
  static constexpr float kTopPRange = 32.0f;
  // Up to this k, top-k keeps a bounded heap while scanning instead of materialising all tokens.
  static constexpr int32_t kHeapTopK = 1024;

  void EnsureCapacity(int32_t n_vocab);
  void ApplyPenalties(const std::vector<int32_t>& history, size_t generated_begin);
  int32_t SelectTopK(int32_t k);
  int32_t TopPSorted(int32_t n, float max_logit);
  int32_t TopPFromVocab(float max_logit);
  int32_t MinP(int32_t n, float max_logit, bool from_vocab, bool sorted);
  int32_t Draw(int32_t n, float max_logit);
  double Uniform01();  // in [0, 1), 53 random bits
  double LogSumExp() const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  int32_t n_vocab_ = 0;  // of the last Sample call
  int32_t chosen_ = -1;
  std::vector<float> penalized_;  // logits after penalties and NaN/inf cleanup
  std::vector<Candidate> cand_;   // working set for truncation and the draw
  std::vector<int32_t> counts_;   // per id: 0 = not in window, else 1 + count in output
  std::vector<int32_t> touched_;  // ids with counts_ != 0, so resetting is O(window)
  std::vector<uint16_t> bucket_;  // per id, for TopPFromVocab
  std::array<double, kTopPBuckets> bucket_mass_{};
  mutable bool lse_valid_ = false;  // log-sum-exp over penalized_, computed on first logprob query
  mutable double lse_ = 0.0;
};

}  // namespace strata
