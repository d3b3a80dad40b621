#include "core/engine/json_lines.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "core/util/utf8.h"

namespace strata {

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
    } else if (const size_t n = ValidUtf8Length(s, i); n > 0) {
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
