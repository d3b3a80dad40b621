#include "core/engine/json_lines.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid.
size_t Utf8Length(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) n = 2, cp = c & 0x1f;
  else if ((c & 0xf0) == 0xe0) n = 3, cp = c & 0x0f;
  else if ((c & 0xf8) == 0xf0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;  // overlong, range, surrogate
  return n;
}

}  // namespace

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      char buf[8];
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: std::snprintf(buf, sizeof(buf), "\\u%04x", c); out += buf;
      }
      ++i;
    } else if (const size_t n = Utf8Length(s, i); n > 0) {
      out.append(s, i, n);
      i += n;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD for a byte that is not valid UTF-8
      ++i;
    }
  }
  return out + "\"";
}

std::string TokenJsonLine(const GeneratedToken& t) {
  const std::string lp = std::isfinite(t.logprob) ? absl::StrCat(t.logprob) : "null";
  return absl::StrCat("{\"id\":", t.id, ",\"text\":", JsonString(t.text), ",\"logprob\":", lp, "}");
}

std::string FinishJsonLine(const GenerationResult& r, uint64_t seed) {
  return absl::StrCat("{\"finish_reason\":\"", FinishReasonName(r.finish), "\",\"usage\":{\"prompt_tokens\":",
                      r.prompt_tokens, ",\"completion_tokens\":", r.completion_tokens, "},\"seed\":", seed, "}");
}

}  // namespace strata
