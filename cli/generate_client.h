// A client of strata.v1.Generation/Generate for the strata commands and tests. Responses are read
// as raw bytes and parsed here, so one that does not parse ends the call at once with a clear
// INTERNAL status (the typed synchronous reader stops reading such a stream but leaves the call
// open until its deadline).
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "strata/v1/generation.pb.h"

namespace strata::cli {

class GenerateCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Starts the call. `on_response` runs on a gRPC thread, once per response, in order; it may
  // call context->TryCancel(). `context` must outlive Await().
  GenerateCall(std::shared_ptr<grpc::Channel> channel, grpc::ClientContext* context, const v1::GenerateRequest& request,
               std::function<void(const v1::GenerateResponse&)> on_response);

  // Blocks until the call is over: its status, or INTERNAL when a response did not parse.
  grpc::Status Await();

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  grpc::GenericStub stub_;
  grpc::ClientContext* context_;
  std::function<void(const v1::GenerateResponse&)> on_response_;
  grpc::ByteBuffer request_, response_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  grpc::Status status_;
  std::string parse_error_;
};

}  // namespace strata::cli
