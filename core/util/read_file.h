// Small files read whole: certificates, keys, tokens, prompt lists. Errors name the file; callers
// prefix the flag it came from.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace strata {

// The file's bytes; NOT_FOUND "cannot read PATH: reason" when it cannot be opened or read.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// The file's contents without surrounding whitespace (a secret: a key, a token);
// INVALID_ARGUMENT "PATH is empty" when nothing is left.
absl::StatusOr<std::string> ReadTrimmedFile(const std::string& path);

// A certificate in PEM form: the file's bytes, or INVALID_ARGUMENT "PATH holds no PEM certificate".
absl::StatusOr<std::string> ReadPemCertificate(const std::string& path);

}  // namespace strata
