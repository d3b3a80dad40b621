#include "cli/client_connection.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "core/util/read_file.h"

namespace strata::cli {
namespace {

// A file named by a flag; errors start with the flag.
absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat("--", flag, ": ", text.status().message()));
  return text;
}

}  // namespace

void ClientConnection::Register(FlagSet* flags, const std::string& server_flag) {
  flags->String(server_flag, &server, "server address HOST:PORT");
  flags->String("tls-ca", &tls_ca, "PEM file of the CA to trust for the server's certificate; enables TLS");
  flags->String("tls-cert", &tls_cert, "client certificate (PEM) for servers that require one; needs --tls-ca");
  flags->String("tls-key", &tls_key, "private key (PEM) of --tls-cert");
  flags->String("tls-server-name", &tls_server_name, "name to verify in the server's certificate (default: the host)");
  flags->String("api-key", &api_key, "API key, sent as 'authorization: Bearer KEY' (default: $STRATA_API_KEY)");
  flags->String("api-key-file", &api_key_file, "file holding the API key");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ClientConnection::Connect() {
  if (server.empty()) return absl::InvalidArgumentError("--server is required (HOST:PORT)");
  if (!api_key.empty() && !api_key_file.empty()) {
    return absl::InvalidArgumentError("give --api-key or --api-key-file, not both");
  }
  resolved_key_ = api_key;
  if (!api_key_file.empty()) {
    absl::StatusOr<std::string> key = ReadTrimmedFile(api_key_file);
    if (!key.ok()) return absl::Status(key.status().code(), absl::StrCat("--api-key-file: ", key.status().message()));
    resolved_key_ = *key;
  }
  if (resolved_key_.empty()) {
    if (const char* env = std::getenv("STRATA_API_KEY"); env != nullptr) resolved_key_ = env;
  }
  for (char c : resolved_key_) {
    if (c < 0x20 || c > 0x7e) return absl::InvalidArgumentError("the API key must be printable ASCII");
  }
  grpc::ChannelArguments args;
  // Generous but bounded: a response carries one token and its logprobs.
  args.SetMaxReceiveMessageSize(16 << 20);
  if (tls_ca.empty()) {
    if (!tls_cert.empty() || !tls_key.empty() || !tls_server_name.empty()) {
      return absl::InvalidArgumentError("--tls-cert, --tls-key and --tls-server-name need --tls-ca");
    }
    return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  grpc::SslCredentialsOptions ssl;
  absl::StatusOr<std::string> ca = ReadFile("tls-ca", tls_ca);
  if (!ca.ok()) return ca.status();
  ssl.pem_root_certs = *ca;
  if (!tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile("tls-cert", tls_cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile("tls-key", tls_key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  if (!tls_server_name.empty()) args.SetSslTargetNameOverride(tls_server_name);
  return grpc::CreateCustomChannel(server, grpc::SslCredentials(ssl), args);
}

void ClientConnection::Authorize(grpc::ClientContext* context) const {
  if (!resolved_key_.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", resolved_key_));
}

}  // namespace strata::cli
