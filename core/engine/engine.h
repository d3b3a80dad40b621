// In-process generation: runs several requests together over one model with a paged KV cache.
// Each step packs every active sequence into one batch (decode tokens plus prefill chunks up to
// the token budget), so sequences join and leave the batch at every step. This is what
// `strata run` and the engine tests use; the coordinator's scheduler drives workers the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/executor.h"
#include "core/kv/block_allocator.h"
#include "core/model/model.h"
#include "core/sampling/sampling_params.h"
#include "core/tokenizer/tokenizer.h"

namespace strata {

struct GenerationRequest {
  std::vector<int32_t> prompt;     // token ids, BOS included if the model wants one
  SamplingParams sampling;
  int32_t max_tokens = 128;        // new tokens; generation also stops at the context length
  std::vector<std::string> stop;   // stop strings (not included in the output text)
  bool ignore_eos = false;
};

enum class FinishReason { kLength, kEos, kStop };
const char* FinishReasonName(FinishReason r);  // "length", "eos", "stop"

struct GeneratedToken {
  int32_t id = 0;
  std::string text;     // the text this token released (may be empty: held back for UTF-8 or a stop string)
  float logprob = 0.0f; // log-probability of the token under the sampling distribution's logits
};

struct GenerationResult {
  std::vector<int32_t> ids;  // generated tokens (an EOS that ended generation is not included)
  std::string text;          // generated text, stop string removed
  FinishReason finish = FinishReason::kLength;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
};

struct EngineOptions {
  int32_t block_size = 16;       // tokens per KV block
  int32_t n_blocks = 0;          // 0: enough for max_seqs sequences of the full context
  int32_t max_seqs = 8;          // sequences in flight at once
};

class Engine {
 public:
  // Runs `model` in this process (a LocalExecutor with its own KV cache). `model` and
  // `tokenizer` must outlive the engine.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(Model* model, const Tokenizer* tokenizer, Backend* backend,
                                                        const EngineOptions& options);
  // Runs steps through `executor` (which owns the KV cache; options.block_size and n_blocks are
  // taken from it). Every process of a distributed group runs the same engine in lockstep.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(StepExecutor* executor, const Tokenizer* tokenizer,
                                                        const EngineOptions& options);

  // Checks a request against the model (prompt length vs context, max_tokens, sampling ranges).
  absl::Status Validate(const GenerationRequest& request) const;

  // Generates every request (all validated first) with continuous batching; calls on_token(request
  // index, token) for each token as it is produced. Requests are independent: each gets exactly
  // the tokens it would get alone.
  using TokenCallback = std::function<void(size_t, const GeneratedToken&)>;
  absl::StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests,
                                                         const TokenCallback& on_token = nullptr);

  const BlockAllocator& allocator() const { return allocator_; }
  StepExecutor* executor() { return executor_; }

 private:
  Engine(StepExecutor* executor, std::unique_ptr<StepExecutor> owned, const Tokenizer* tokenizer,
         const EngineOptions& options);

  StepExecutor* executor_;
  std::unique_ptr<StepExecutor> owned_executor_;
  const Tokenizer* tokenizer_;
  BlockAllocator allocator_;
  EngineOptions options_;
  Batch batch_;                         // reused every step
  std::vector<SampleRequest> rows_;     // reused every step
  std::vector<SampledToken> sampled_;   // reused every step
};

}  // namespace strata
