// Validation of strata.v1.GenerateRequest: every field a client sends is checked against the model
// and the operator's limits before anything is queued. A free function (no service, no loop) so the
// fuzz target fuzz/request_fuzz.cc can drive it with arbitrary bytes.
#pragma once

#include <cstdint>

#include "coordinator/serving_loop.h"
#include "core/model/config.h"
#include "core/tokenizer/tokenizer.h"
#include "grpcpp/support/status.h"
#include "strata/v1/generation.pb.h"

namespace strata::coordinator {

struct RequestLimits {
  int32_t max_prompt_tokens = 0;  // 0: context length - 1
  int32_t max_new_tokens = 0;     // 0: context length - 1
  int32_t max_total_tokens = 0;   // 0: context length
  int32_t max_stop_strings = 16;
  int32_t max_stop_length = 256;  // bytes per stop string
  int32_t max_prompt_bytes = 1 << 20;
};

// `limits` with the token limits that are 0 or beyond the context length `n_ctx` replaced by
// what the context allows (see the field comments).
RequestLimits ResolveRequestLimits(RequestLimits limits, int32_t n_ctx);

// Turns `request` into what the serving loop runs, or the INVALID_ARGUMENT status naming the
// field. `limits` must come from ResolveRequestLimits. The request id: a non-empty
// request.request_id() is copied to out->request_id; an empty one leaves out->request_id as the
// caller set it (the service numbers anonymous requests). `out` may be partly filled on error.
grpc::Status ValidateGenerateRequest(const ModelConfig& config, const Tokenizer& tokenizer,
                                     const RequestLimits& limits, const strata::v1::GenerateRequest& request,
                                     SubmitRequest* out);

}  // namespace strata::coordinator
