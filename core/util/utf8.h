// UTF-8 validity, for text that leaves the process in formats that require it (JSON, proto3
// strings): model output can contain any bytes (byte-fallback tokens), which are kept exact in
// token ids and replaced by U+FFFD in text.
#pragma once

#include <cstddef>
#include <string>

namespace strata {

// Length of the valid UTF-8 sequence starting at s[i] (1-4), or 0 if none starts there
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
size_t ValidUtf8Length(const std::string& s, size_t i);
// `s` with every byte that does not start a valid sequence replaced by U+FFFD.
std::string SanitizeUtf8(const std::string& s);

}  // namespace strata
