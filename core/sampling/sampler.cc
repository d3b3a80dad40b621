#include "core/sampling/sampler.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

namespace strata {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Total order "a ranks before b": higher logit first, lower id on ties. Being total (logits are
// NaN-free by then) makes every truncation and the draw order independent of the STL's algorithm.
template <typename T>
bool RanksBefore(const T& a, const T& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

uint64_t DrawSeed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (index + 1);  // splitmix64 finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void Sampler::Reset(const SamplingParams& params, uint64_t seed) {
  params_ = params;
  rng_.seed(seed);
  chosen_ = -1;
  lse_valid_ = false;
}

void Sampler::EnsureCapacity(int32_t n_vocab) {
  const size_t n = static_cast<size_t>(n_vocab);
  if (penalized_.size() >= n) return;
  penalized_.resize(n);
  cand_.resize(n);
  counts_.resize(n, 0);
  bucket_.resize(n);
  touched_.reserve(n);  // at most one entry per distinct id
}

double Sampler::Uniform01() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::Sample(const float* logits, int32_t n_vocab, const std::vector<int32_t>& history,
                        size_t generated_begin) {
  chosen_ = -1;
  lse_valid_ = false;
  n_vocab_ = std::max<int32_t>(n_vocab, 0);
  if (n_vocab <= 0) return -1;
  EnsureCapacity(n_vocab);
  std::copy(logits, logits + n_vocab, penalized_.begin());
  ApplyPenalties(history, generated_begin);

  // NaN -> -inf and +inf -> FLT_MAX so that max-subtraction below never yields NaN.
  int32_t best = 0;
  float max_logit = kNegInf;
  for (int32_t i = 0; i < n_vocab; ++i) {
    float v = penalized_[i];
    if (std::isnan(v)) v = kNegInf;
    if (v > FLT_MAX) v = FLT_MAX;
    penalized_[i] = v;
    if (v > max_logit) {
      max_logit = v;
      best = i;
    }
  }
  // Greedy; also when every token is masked (-inf), where there is nothing to draw from.
  if (!(params_.temperature > 0.0f) || max_logit == kNegInf) return chosen_ = best;

  // From here on cand_[0, n) holds the surviving tokens once `materialized`; until then the
  // survivors are all of penalized_ in id order, which saves a copy when little is truncated.
  int32_t n = n_vocab;
  bool materialized = false;
  bool sorted = false;  // cand_[0, n) in RanksBefore order; otherwise in id order
  if (params_.top_k > 0 && params_.top_k < n_vocab) {
    n = SelectTopK(params_.top_k);
    materialized = sorted = true;
  }
  // Each step keeps the top token, so max_logit stays the maximum of what is left.
  if (params_.top_p < 1.0f) {
    n = materialized ? TopPSorted(n, max_logit) : TopPFromVocab(max_logit);
    materialized = true;
  }
  if (params_.min_p > 0.0f) {
    n = MinP(n, max_logit, !materialized, sorted);
    materialized = true;
  }
  if (!materialized) {
    for (int32_t i = 0; i < n_vocab; ++i) cand_[i] = {i, penalized_[i], 0.0f};
  }
  return chosen_ = Draw(n, max_logit);
}

void Sampler::ApplyPenalties(const std::vector<int32_t>& history, size_t generated_begin) {
  const SamplingParams& p = params_;
  const bool repetition = p.repetition_penalty > 0.0f && p.repetition_penalty != 1.0f;
  if (p.penalty_last_n == 0) return;
  if (!repetition && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) return;

  const size_t size = history.size();
  const size_t window = p.penalty_last_n < 0 ? size : static_cast<size_t>(p.penalty_last_n);
  const size_t start = window >= size ? 0 : size - window;
  for (size_t i = start; i < size; ++i) {
    const int32_t t = history[i];
    if (t < 0 || t >= n_vocab_) continue;
    if (counts_[t] == 0) {
      counts_[t] = 1;
      touched_.push_back(t);
    }
    if (i >= generated_begin) ++counts_[t];
  }
  for (int32_t t : touched_) {
    float l = penalized_[t];
    if (repetition) l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    const int32_t in_output = counts_[t] - 1;
    if (in_output > 0) l -= p.frequency_penalty * static_cast<float>(in_output) + p.presence_penalty;
    penalized_[t] = l;
    counts_[t] = 0;  // leave counts_ all-zero for the next call
  }
  touched_.clear();
}

int32_t Sampler::SelectTopK(int32_t k) {
  const auto first = cand_.begin();
  if (k > kHeapTopK) {
    for (int32_t i = 0; i < n_vocab_; ++i) cand_[i] = {i, penalized_[i], 0.0f};
    std::nth_element(first, first + (k - 1), first + n_vocab_, RanksBefore<Candidate>);
    std::sort(first, first + k, RanksBefore<Candidate>);
    return k;
  }
  // Bounded heap whose front is the worst of the best k so far; most tokens fail the first compare.
  int32_t size = 0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const Candidate c{i, penalized_[i], 0.0f};
    if (size < k) {
      cand_[size++] = c;
      std::push_heap(first, first + size, RanksBefore<Candidate>);
    } else if (c.logit >= cand_[0].logit && RanksBefore(c, cand_[0])) {
      std::pop_heap(first, first + k, RanksBefore<Candidate>);
      cand_[k - 1] = c;
      std::push_heap(first, first + k, RanksBefore<Candidate>);
    }
  }
  std::sort_heap(first, first + k, RanksBefore<Candidate>);
  return k;
}

int32_t Sampler::TopPSorted(int32_t n, float max_logit) {
  double total = 0.0;
  for (int32_t i = 0; i < n; ++i) total += std::exp(cand_[i].logit - max_logit);
  const double target = static_cast<double>(params_.top_p) * total;
  double cum = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    cum += std::exp(cand_[i].logit - max_logit);
    if (cum >= target) return i + 1;
  }
  return n;  // rounding kept cum just below target: keep everything
}

int32_t Sampler::TopPFromVocab(float max_logit) {
  // Sorting the vocabulary to find the nucleus costs O(V log V); instead bucket every token by its
  // distance from the top logit (bucket order agrees with rank order), find the bucket where the
  // cumulative mass crosses top_p, and sort only that bucket. The nucleus comes out in id order.
  constexpr float kScale = kTopPBuckets / kTopPRange;
  bucket_mass_.fill(0.0);
  double total = 0.0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const float d = max_logit - penalized_[i];  // >= 0, +inf for masked tokens
    const float w = std::exp(-d);
    const float scaled = d * kScale;
    const int b = scaled < static_cast<float>(kTopPBuckets - 1) ? static_cast<int>(scaled) : kTopPBuckets - 1;
    bucket_[i] = static_cast<uint16_t>(b);
    bucket_mass_[b] += w;
    total += w;
  }
  const double target = static_cast<double>(params_.top_p) * total;
  int cut = 0;  // the bucket where the cumulative mass reaches target
  double before = 0.0;
  for (; cut < kTopPBuckets - 1; ++cut) {
    if (before + bucket_mass_[cut] >= target) break;
    before += bucket_mass_[cut];
  }
  int32_t m = 0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    if (bucket_[i] == cut) cand_[m++] = {i, penalized_[i], std::exp(-(max_logit - penalized_[i]))};
  }
  std::sort(cand_.begin(), cand_.begin() + m, RanksBefore<Candidate>);
  int32_t keep_in_cut = m;  // all of it if rounding never lets cum reach target
  double cum = before;
  for (int32_t j = 0; j < m; ++j) {
    cum += cand_[j].weight;
    if (cum >= target) {
      keep_in_cut = j + 1;
      break;
    }
  }
  // Keep buckets before `cut`, and in `cut` the tokens ranking no lower than the last one needed.
  const bool has_last = keep_in_cut > 0;
  const Candidate last = has_last ? cand_[keep_in_cut - 1] : Candidate{0, 0.0f, 0.0f};
  int32_t n = 0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const Candidate c{i, penalized_[i], 0.0f};
    if (bucket_[i] < cut || (bucket_[i] == cut && has_last && !RanksBefore(last, c))) cand_[n++] = c;
  }
  return n;
}

int32_t Sampler::MinP(int32_t n, float max_logit, bool from_vocab, bool sorted) {
  // p >= min_p * p_max  <=>  exp(logit - max) >= min_p  <=>  logit >= max + log(min_p); no softmax
  // needed. The top token always passes since log(min_p) < 0.
  const double threshold = static_cast<double>(max_logit) + std::log(static_cast<double>(params_.min_p));
  auto keep = [threshold](float logit) { return static_cast<double>(logit) >= threshold; };
  int32_t kept = 0;
  if (from_vocab) {
    for (int32_t i = 0; i < n_vocab_; ++i) {
      if (keep(penalized_[i])) cand_[kept++] = {i, penalized_[i], 0.0f};
    }
    return kept;
  }
  if (sorted) {
    auto keep_c = [&keep](const Candidate& c) { return keep(c.logit); };
    return static_cast<int32_t>(std::partition_point(cand_.begin(), cand_.begin() + n, keep_c) -
                                cand_.begin());
  }
  for (int32_t i = 0; i < n; ++i) {  // stable, so the id order stays canonical for the draw
    if (keep(cand_[i].logit)) cand_[kept++] = cand_[i];
  }
  return kept;
}

int32_t Sampler::Draw(int32_t n, float max_logit) {
  // Divide rather than multiply by 1/t: for a tiny t, 1/t overflows and 0 * inf is NaN.
  const float t = params_.temperature;
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    cand_[i].weight = std::exp((cand_[i].logit - max_logit) / t);
    sum += cand_[i].weight;
  }
  // sum >= 1: the top token has weight exp(0).
  const double u = Uniform01() * sum;
  double acc = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    acc += cand_[i].weight;
    if (u < acc) return cand_[i].id;
  }
  // Only reachable through rounding in acc: take the last token that had any weight.
  for (int32_t i = n - 1; i > 0; --i) {
    if (cand_[i].weight > 0.0f) return cand_[i].id;
  }
  return cand_[0].id;
}

double Sampler::LogSumExp() const {
  if (!lse_valid_) {
    float max_logit = kNegInf;
    for (int32_t i = 0; i < n_vocab_; ++i) max_logit = std::max(max_logit, penalized_[i]);
    double sum = 0.0;
    if (max_logit != kNegInf) {
      for (int32_t i = 0; i < n_vocab_; ++i) sum += std::exp(penalized_[i] - max_logit);
    }
    lse_ = max_logit == kNegInf ? -HUGE_VAL : max_logit + std::log(sum);
    lse_valid_ = true;
  }
  return lse_;
}

float Sampler::ChosenLogprob() const {
  if (chosen_ < 0) return kNegInf;
  const double lse = LogSumExp();
  if (std::isinf(lse)) return kNegInf;  // every token was masked
  return static_cast<float>(penalized_[chosen_] - lse);
}

std::vector<Sampler::TokenLogprob> Sampler::TopLogprobs(int n) const {
  std::vector<TokenLogprob> out;
  if (chosen_ < 0 || n <= 0) return out;
  const size_t k = std::min<size_t>(static_cast<size_t>(n), static_cast<size_t>(n_vocab_));
  struct Entry {
    int32_t id;
    float logit;
  };
  // Bounded heap whose front is the worst of the best k seen so far: O(V log k).
  std::vector<Entry> heap;
  heap.reserve(k);
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const Entry e{i, penalized_[i]};
    if (heap.size() < k) {
      heap.push_back(e);
      std::push_heap(heap.begin(), heap.end(), RanksBefore<Entry>);
    } else if (RanksBefore(e, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), RanksBefore<Entry>);
      heap.back() = e;
      std::push_heap(heap.begin(), heap.end(), RanksBefore<Entry>);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), RanksBefore<Entry>);
  const double lse = LogSumExp();
  out.reserve(k);
  for (const Entry& e : heap) {
    out.push_back({e.id, std::isinf(lse) ? kNegInf : static_cast<float>(e.logit - lse)});
  }
  return out;
}

}  // namespace strata
