#include "core/engine/executor.h"

#include <limits>

namespace strata {

void StepExecutor::SampleRows(Backend* backend, const float* logits, int32_t n_vocab,
                              const std::vector<SampleRequest>& rows, std::vector<SampledToken>* out) {
  out->resize(rows.size());
  top_.resize(rows.size());
  backend->HostParallelFor(static_cast<int64_t>(rows.size()), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const SampleRequest& q = rows[r];
      (*out)[r].id = q.sampler->Sample(logits + r * static_cast<size_t>(n_vocab), n_vocab, *q.history,
                                       q.generated_begin);
      (*out)[r].logprob = q.logprob ? q.sampler->ChosenLogprob() : std::numeric_limits<float>::quiet_NaN();
      if (q.top_logprobs > 0) top_[r] = q.sampler->TopLogprobs(q.top_logprobs);
      else top_[r].clear();
    }
  });
}

}  // namespace strata
