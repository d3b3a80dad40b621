// strata.v1.Generation: validates requests, tokenizes, hands them to the serving loop and
// streams the tokens back. Every bad field gets INVALID_ARGUMENT naming the field and the limit.
#pragma once

#include <atomic>
#include <string>

#include "coordinator/serving_loop.h"
#include "core/model/config.h"
#include "core/tokenizer/tokenizer.h"
#include "strata/v1/generation.grpc.pb.h"

namespace strata::coordinator {

struct RequestLimits {
  int32_t max_prompt_tokens = 0;  // 0: context length - 1
  int32_t max_new_tokens = 0;     // 0: context length - 1
  int32_t max_total_tokens = 0;   // 0: context length
  int32_t max_stop_strings = 16;
  int32_t max_stop_length = 256;  // bytes per stop string
  int32_t max_prompt_bytes = 1 << 20;
};

class GenerationService final : public strata::v1::Generation::Service {
 public:
  GenerationService(const ModelConfig& config, const std::string& model_path, int tp, int pp,
                    const Tokenizer* tokenizer, const RequestLimits& limits, ServingLoop* loop, WorkerPool* workers);

  grpc::Status Generate(grpc::ServerContext* context, const strata::v1::GenerateRequest* request,
                        grpc::ServerWriter<strata::v1::GenerateResponse>* writer) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const strata::v1::TokenizeRequest* request,
                        strata::v1::TokenizeResponse* response) override;
  grpc::Status GetModelInfo(grpc::ServerContext* context, const strata::v1::GetModelInfoRequest* request,
                            strata::v1::ModelInfo* response) override;
  grpc::Status GetClusterStatus(grpc::ServerContext* context, const strata::v1::GetClusterStatusRequest* request,
                                strata::v1::ClusterStatus* response) override;

  const RequestLimits& limits() const { return limits_; }

 private:
  // Turns the request into what the loop runs, or the INVALID_ARGUMENT status naming the field.
  grpc::Status Validate(const strata::v1::GenerateRequest& request, SubmitRequest* out);

  const ModelConfig config_;
  const std::string model_path_;
  const int tp_, pp_;
  const Tokenizer* tokenizer_;
  RequestLimits limits_;
  ServingLoop* loop_;
  WorkerPool* workers_;
  std::atomic<uint64_t> request_counter_{0};
};

// absl::Status -> grpc::Status with the same code and message.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace strata::coordinator
