#include "core/parallel/pipeline_executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/sampling/penalties.h"
#include "core/util/status.h"

namespace strata {
namespace {

constexpr int kTagHidden = 1;
// Candidates each rank contributes per row: the global top-k of any k up to this is exact, so
// greedy and top-k <= 64 sample exactly as a single process; beyond it the distribution is
// truncated to the tp * kCandidates most likely tokens.
constexpr int kCandidates = 64;

// Per rank and row: log-sum-exp of the slice, then kCandidates (logit, id), padded with -inf.
constexpr size_t kRowBytes = sizeof(float) + kCandidates * 8;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename C>
bool Better(const C& a, const C& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

PipelineExecutor::PipelineExecutor(Model* model, const ParallelLayout& layout, const PipelineGroups& groups,
                                   std::unique_ptr<KvCache> kv)
    : model_(model), layout_(layout), groups_(groups), kv_(std::move(kv)) {
  const ShardSpec& s = model_->shard();
  const int R = model_->options().max_logit_rows;
  if (s.has_output) {
    logits_.resize(static_cast<size_t>(R) * s.n_vocab);
    scratch_.resize(s.n_vocab);
    local_.resize(s.n_vocab);
    dense_.assign(model_->config().n_vocab, -std::numeric_limits<float>::infinity());
    send_.resize(R * kRowBytes);
    recv_.resize(static_cast<size_t>(R) * kRowBytes * layout_.tp);
  }
}

absl::StatusOr<std::unique_ptr<PipelineExecutor>> PipelineExecutor::Create(Model* model, Backend* backend,
                                                                           const ParallelLayout& layout,
                                                                           const PipelineGroups& groups,
                                                                           int32_t block_size, int32_t n_blocks) {
  if (groups.world == nullptr || groups.tp == nullptr || groups.pp == nullptr) {
    return absl::InvalidArgumentError("pipeline executor needs world, tp and pp communicators");
  }
  if (groups.world->size() != layout.world() || groups.tp->size() != layout.tp || groups.pp->size() != layout.pp ||
      groups.world->rank() != layout.rank || groups.tp->rank() != layout.tensor_rank() ||
      groups.pp->rank() != layout.stage()) {
    return absl::InvalidArgumentError(absl::StrCat("communicators do not match the layout ", layout.ToString()));
  }
  STRATA_ASSIGN_OR_RETURN(auto kv, KvCache::Create(backend, model->KvConfig(block_size, n_blocks)));
  return std::unique_ptr<PipelineExecutor>(new PipelineExecutor(model, layout, groups, std::move(kv)));
}

absl::Status PipelineExecutor::Step(const Batch& batch, const std::vector<SampleRequest>& rows,
                                    std::vector<SampledToken>* out) {
  const double t0 = Now();
  const int64_t hidden_bytes = static_cast<int64_t>(batch.n_tokens()) * model_->config().n_embd * sizeof(float);
  double comm = 0;
  if (!layout_.first_stage()) {
    const double c0 = Now();
    STRATA_RETURN_IF_ERROR(groups_.pp->Recv(model_->hidden(), hidden_bytes, layout_.stage() - 1, kTagHidden));
    comm += Now() - c0;
  }
  STRATA_RETURN_IF_ERROR(model_->Forward(batch, kv_.get(), logits_.data()));
  const double c1 = Now();
  if (!layout_.last_stage()) {
    STRATA_RETURN_IF_ERROR(groups_.pp->Send(model_->hidden(), hidden_bytes, layout_.stage() + 1, kTagHidden));
  }
  comm += Now() - c1;
  // Sampling is compute (it was timed as communication: 7 ms of a 32-row decode step).
  out->resize(rows.size());
  if (layout_.last_stage() && !rows.empty()) STRATA_RETURN_IF_ERROR(SampleLastStage(rows, out));
  // The last stage's tensor rank 0 tells everyone which tokens came out.
  if (broadcast_results_ && !rows.empty()) {
    const double c2 = Now();
    STRATA_RETURN_IF_ERROR(groups_.world->Broadcast(out->data(), static_cast<int64_t>(rows.size() * sizeof(SampledToken)),
                                                    layout_.RankOf(layout_.pp - 1, 0)));
    comm += Now() - c2;
  }
  comm_seconds_ += comm;
  step_seconds_ += Now() - t0;
  return absl::OkStatus();
}

absl::Status PipelineExecutor::SampleLastStage(const std::vector<SampleRequest>& rows, std::vector<SampledToken>* out) {
  const ShardSpec& s = model_->shard();
  const int32_t n_vocab = model_->config().n_vocab;
  if (observer_) STRATA_RETURN_IF_ERROR(ObserveFullLogits(logits_.data()));
  top_.resize(rows.size());
  if (layout_.tp == 1) {  // the whole vocabulary is here: sample exactly as a single process
    SampleRows(model_->backend(), logits_.data(), n_vocab, rows, out);
    return absl::OkStatus();
  }
  // Each rank: penalize its slice, keep its top candidates and its log-sum-exp.
  const int keep = std::min(kCandidates, s.n_vocab);
  std::vector<Candidate>& local = local_;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SampleRequest& q = rows[r];
    std::copy_n(logits_.data() + r * s.n_vocab, s.n_vocab, scratch_.data());
    ApplyPenalties(q.sampler->params(), scratch_.data(), s.vocab_offset, s.n_vocab, *q.history, q.generated_begin,
                   &penalty_scratch_);
    float mx = -std::numeric_limits<float>::infinity();
    for (int32_t i = 0; i < s.n_vocab; ++i) {
      local[i] = {std::isnan(scratch_[i]) ? -std::numeric_limits<float>::infinity() : scratch_[i], s.vocab_offset + i};
      mx = std::max(mx, local[i].logit);
    }
    double sum = 0;
    for (int32_t i = 0; i < s.n_vocab; ++i) sum += std::exp(static_cast<double>(local[i].logit) - mx);
    const float lse = static_cast<float>(mx + std::log(sum));
    std::partial_sort(local.begin(), local.begin() + keep, local.end(), Better<Candidate>);
    char* row = send_.data() + r * kRowBytes;
    std::memcpy(row, &lse, sizeof(float));
    Candidate* cands = reinterpret_cast<Candidate*>(row + sizeof(float));
    for (int i = 0; i < kCandidates; ++i) {
      cands[i] = i < keep ? local[i] : Candidate{-std::numeric_limits<float>::infinity(), -1};
    }
  }
  const int64_t bytes = static_cast<int64_t>(rows.size() * kRowBytes);
  // The gathered layout is [rank][row]: each rank's block is its `bytes`.
  const double c0 = Now();
  STRATA_RETURN_IF_ERROR(groups_.tp->AllGather(send_.data(), recv_.data(), bytes));
  comm_seconds_ += Now() - c0;  // the rest of sampling is compute
  static const std::vector<int32_t> kNoHistory;  // penalties were applied per slice
  for (size_t r = 0; r < rows.size(); ++r) {
    double mx = -std::numeric_limits<double>::infinity(), sum = 0;
    for (int t = 0; t < layout_.tp; ++t) {
      float lse;
      std::memcpy(&lse, recv_.data() + t * bytes + r * kRowBytes, sizeof(float));
      mx = std::max<double>(mx, lse);
    }
    for (int t = 0; t < layout_.tp; ++t) {
      const char* row = recv_.data() + t * bytes + r * kRowBytes;
      float lse;
      std::memcpy(&lse, row, sizeof(float));
      sum += std::exp(lse - mx);
      const Candidate* cands = reinterpret_cast<const Candidate*>(row + sizeof(float));
      for (int i = 0; i < kCandidates; ++i) {
        if (cands[i].id >= 0) dense_[cands[i].id] = cands[i].logit;
      }
    }
    const double global_lse = mx + std::log(sum);
    const SampleRequest& q = rows[r];
    const int32_t id = q.sampler->Sample(dense_.data(), n_vocab, kNoHistory, 0);
    (*out)[r].id = id;
    (*out)[r].logprob = static_cast<float>(dense_[id] - global_lse);
    // Alternatives from the gathered candidates: exact for up to kCandidates of them.
    top_[r].clear();
    if (q.top_logprobs > 0) {
      for (int t = 0; t < layout_.tp; ++t) {
        const Candidate* cands =
            reinterpret_cast<const Candidate*>(recv_.data() + t * bytes + r * kRowBytes + sizeof(float));
        for (int i = 0; i < kCandidates; ++i) {
          if (cands[i].id >= 0) top_[r].push_back({cands[i].id, static_cast<float>(cands[i].logit - global_lse)});
        }
      }
      const size_t n = std::min<size_t>(top_[r].size(), std::min(q.top_logprobs, kCandidates));
      std::partial_sort(top_[r].begin(), top_[r].begin() + n, top_[r].end(), [](const auto& a, const auto& b) {
        return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
      });
      top_[r].resize(n);
    }
    for (int t = 0; t < layout_.tp; ++t) {  // back to all -inf for the next row
      const Candidate* cands = reinterpret_cast<const Candidate*>(recv_.data() + t * bytes + r * kRowBytes + sizeof(float));
      for (int i = 0; i < kCandidates; ++i) {
        if (cands[i].id >= 0) dense_[cands[i].id] = -std::numeric_limits<float>::infinity();
      }
    }
  }
  return absl::OkStatus();
}

absl::Status PipelineExecutor::ObserveFullLogits(const float* local_row) {
  // Gather row 0 of every vocabulary slice (padded to the largest slice) onto tensor rank 0.
  const ShardSpec& s = model_->shard();
  const int32_t n_vocab = model_->config().n_vocab;
  const int32_t width = (n_vocab + layout_.tp - 1) / layout_.tp;
  std::vector<float> mine(width, 0.0f), all(static_cast<size_t>(width) * layout_.tp);
  std::copy_n(local_row, s.n_vocab, mine.data());
  STRATA_RETURN_IF_ERROR(groups_.tp->AllGather(mine.data(), all.data(), width * sizeof(float)));
  if (layout_.tensor_rank() != 0) return absl::OkStatus();
  std::vector<float> full(n_vocab);
  for (int t = 0, off = 0; t < layout_.tp; ++t) {
    const int n = n_vocab / layout_.tp + (t < n_vocab % layout_.tp ? 1 : 0);  // as SplitEven
    std::copy_n(all.data() + static_cast<size_t>(t) * width, n, full.data() + off);
    off += n;
  }
  observer_(full.data(), n_vocab);
  return absl::OkStatus();
}

}  // namespace strata
