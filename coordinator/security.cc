#include "coordinator/security.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/util/read_file.h"

namespace strata::coordinator {
namespace {

// The same error, its message prefixed with the flag the file came from.
absl::Status FromFlag(const std::string& flag, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(flag, ": ", s.message()));
}

// Compares every byte whatever the first difference, so timing does not reveal a prefix.
bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

// The token of `authorization: Bearer TOKEN`, or nullopt.
std::optional<std::string_view> BearerToken(const grpc::ServerContext& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return std::nullopt;
  std::string_view v(it->second.data(), it->second.size());
  constexpr std::string_view kPrefix = "Bearer ";
  if (v.size() < kPrefix.size()) return std::nullopt;
  for (size_t i = 0; i < kPrefix.size(); ++i) {  // the scheme is case-insensitive (RFC 7235)
    if (absl::ascii_tolower(static_cast<unsigned char>(v[i])) != absl::ascii_tolower(static_cast<unsigned char>(kPrefix[i]))) {
      return std::nullopt;
    }
  }
  return v.substr(kPrefix.size());
}

}  // namespace

bool HasBearer(const grpc::ServerContext& context, const std::string& expected) {
  const std::optional<std::string_view> token = BearerToken(context);
  return token.has_value() && ConstantTimeEqual(*token, expected);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsServerFiles& files) {
  if (files.cert.empty() && files.key.empty()) {
    if (!files.client_ca.empty()) return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    return grpc::InsecureServerCredentials();
  }
  if (files.cert.empty() || files.key.empty()) return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  grpc::SslServerCredentialsOptions opts(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert = ReadPemCertificate(files.cert);
  if (!cert.ok()) return FromFlag("--tls-cert", cert.status());
  absl::StatusOr<std::string> key = ReadFileToString(files.key);
  if (!key.ok()) return FromFlag("--tls-key", key.status());
  if (key->find("PRIVATE KEY-----") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", files.key, " holds no PEM private key"));
  }
  pair.cert_chain = *cert;
  pair.private_key = *key;
  opts.pem_key_cert_pairs.push_back(pair);
  if (!files.client_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPemCertificate(files.client_ca);
    if (!ca.ok()) return FromFlag("--tls-client-ca", ca.status());
    opts.pem_root_certs = *ca;
    opts.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return FromFlag("--api-keys", text.status());
  ApiKeys keys;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    for (char c : line) {
      if (c < 0x21 || c > 0x7e) {
        return absl::InvalidArgumentError(
            absl::StrCat("--api-keys: ", path, " line ", line_no, ": a key must be printable ASCII without spaces"));
      }
    }
    keys.keys_.emplace_back(line);
  }
  if (keys.keys_.empty()) return absl::InvalidArgumentError(absl::StrCat("--api-keys: ", path, " holds no key"));
  return keys;
}

grpc::Status ApiKeys::Check(const grpc::ServerContext& context) const {
  if (keys_.empty()) return grpc::Status::OK;
  const std::optional<std::string_view> token = BearerToken(context);
  if (!token) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing API key: send the metadata 'authorization: Bearer <key>'");
  }
  bool match = false;
  for (const std::string& k : keys_) match |= ConstantTimeEqual(*token, k);  // no early exit
  if (!match) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid API key");
  return grpc::Status::OK;
}

}  // namespace strata::coordinator
