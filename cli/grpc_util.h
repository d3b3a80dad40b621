// Small gRPC helpers for the strata commands and tests: status code names and the standard
// grpc.health.v1.Health/Check call, made without generated code (its two messages are tiny and
// encoded here by hand, so no health.proto is needed at build time).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

namespace strata::cli {

// "OK", "CANCELLED", "INVALID_ARGUMENT", ... as in the gRPC specification.
const char* StatusCodeName(grpc::StatusCode code);

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum class HealthStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
const char* HealthStatusName(HealthStatus status);

// Calls grpc.health.v1.Health/Check for `service` ("" is the server as a whole). On an OK status
// *out holds the server's answer.
grpc::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                         std::chrono::system_clock::time_point deadline, HealthStatus* out);

}  // namespace strata::cli
