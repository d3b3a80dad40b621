#include "core/tokenizer/stream_decoder.h"

#include <utility>

#include "core/tokenizer/unicode_tables.h"

namespace strata {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool strip_leading_space)
    : tokenizer_(tokenizer), strip_(strip_leading_space && tokenizer.strips_leading_space()) {}

std::string StreamDecoder::Push(int32_t id) {
  std::string bytes = tokenizer_.TokenBytes(id);
  // Mirrors Tokenizer::Decode: the first token with bytes loses its space if only control tokens came
  // before it.
  if (strip_ && !bytes.empty()) {
    if (bytes[0] == ' ') bytes.erase(0, 1);
    strip_ = false;
  }
  if (!tokenizer_.IsControl(id)) strip_ = false;

  held_ += bytes;
  // Everything up to the last incomplete-but-valid prefix can go out; since the held bytes were an
  // incomplete prefix themselves, the only place one can remain is at the very end.
  const absl::string_view pending(held_);
  size_t pos = 0;
  while (pos < pending.size()) {
    const Utf8Char ch = DecodeUtf8Char(pending.substr(pos));
    if (ch.status == Utf8Status::kIncomplete) break;
    pos += ch.length;  // complete characters and lone invalid bytes alike
  }
  std::string out = held_.substr(0, pos);
  held_.erase(0, pos);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace strata
