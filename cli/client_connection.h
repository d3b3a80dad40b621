// How a strata client (generate, bench, serve's own health probe) reaches a server: the address,
// TLS (a CA to trust, an optional client certificate) and an API key. Shared so every client takes
// the same flags: --server, --tls-ca, --tls-cert, --tls-key, --tls-server-name, --api-key,
// --api-key-file (or STRATA_API_KEY in the environment).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cli/flags.h"

namespace strata::cli {

struct ClientConnection {
  std::string server;                  // HOST:PORT
  std::string tls_ca;                  // PEM file of the CA that signed the server's certificate; TLS when set
  std::string tls_cert, tls_key;       // optional client certificate for servers that require one
  std::string tls_server_name;         // name to verify in the server's certificate (default: the host)
  std::string api_key, api_key_file;   // sent as `authorization: Bearer KEY`

  // Declares the flags above (with `server` named `server_flag`, "server" for most commands).
  void Register(FlagSet* flags, const std::string& server_flag = "server");

  // Reads the files, checks the combination and makes the channel. Errors name the flag or file.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect();

  // Adds the API key (when there is one) to a call's metadata. Call after Connect().
  void Authorize(grpc::ClientContext* context) const;

 private:
  std::string resolved_key_;
};

}  // namespace strata::cli
