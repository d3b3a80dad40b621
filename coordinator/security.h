// Who may talk to the coordinator: TLS credentials for its two ports, API keys on the public
// API (`authorization: Bearer KEY`; health stays open) and the join token workers present on the
// cluster port. Secrets are compared in constant time and never logged.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace strata::coordinator {

// True when the call carries `authorization: Bearer <expected>`.
bool HasBearer(const grpc::ServerContext& context, const std::string& expected);

struct TlsServerFiles {
  std::string cert, key;  // PEM; both empty: plaintext
  std::string client_ca;  // PEM; when set, clients must present a certificate it signed
};

// Plaintext, or TLS from the files (errors name the file).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsServerFiles& files);

// API keys, one per line of a file ('#' starts a comment). An empty set lets every call in.
class ApiKeys {
 public:
  static absl::StatusOr<ApiKeys> Load(const std::string& path);
  bool enabled() const { return !keys_.empty(); }
  size_t size() const { return keys_.size(); }
  // OK, or UNAUTHENTICATED saying whether the key was missing or wrong (never echoing it).
  grpc::Status Check(const grpc::ServerContext& context) const;

 private:
  std::vector<std::string> keys_;
};

}  // namespace strata::coordinator
