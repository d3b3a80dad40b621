// strata.v1.Generation: validates requests, tokenizes, hands them to the serving loop and
// streams the tokens back. Every bad field gets INVALID_ARGUMENT naming the field and the limit.
#pragma once

#include <atomic>
#include <string>

#include "coordinator/request_validation.h"
#include "coordinator/metrics.h"
#include "coordinator/security.h"
#include "coordinator/serving_loop.h"
#include "core/model/config.h"
#include "core/tokenizer/tokenizer.h"
#include "strata/v1/generation.grpc.pb.h"

namespace strata::coordinator {

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
  // Every call but health must then carry one of the keys; null (the default) lets all in.
  void set_api_keys(const ApiKeys* keys) { api_keys_ = keys; }
  // Counts every Generate call's outcome (optional).
  void set_metrics(Metrics* metrics) { metrics_ = metrics; }

 private:
  grpc::Status Authorize(const grpc::ServerContext& context) const;
  grpc::Status Stream(grpc::ServerContext* context, const strata::v1::GenerateRequest* request,
                      grpc::ServerWriter<strata::v1::GenerateResponse>* writer);

  const ModelConfig config_;
  const std::string model_path_;
  const int tp_, pp_;
  const Tokenizer* tokenizer_;
  RequestLimits limits_;
  ServingLoop* loop_;
  WorkerPool* workers_;
  std::atomic<uint64_t> request_counter_{0};
  const ApiKeys* api_keys_ = nullptr;
  Metrics* metrics_ = nullptr;
};

// absl::Status -> grpc::Status with the same code and message.
grpc::Status ToGrpc(const absl::Status& s);
// "INVALID_ARGUMENT", ... (gRPC and absl share the codes and their names).
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace strata::coordinator
