// Incremental detokenization for streaming output: token pieces are cut at arbitrary byte boundaries (a
// multi-byte character may be split over byte-fallback tokens), so text is released only in whole UTF-8
// characters and a reader never sees half of one.
#pragma once

#include <cstdint>
#include <string>

#include "core/tokenizer/tokenizer.h"

namespace strata {

class StreamDecoder {
 public:
  // strip_leading_space: this stream starts a sequence, so drop the add_space_prefix space the way
  // Tokenizer::Decode does (only where tokenizer.strips_leading_space()). Leave it false when streaming a
  // continuation of text the reader already has. The tokenizer must outlive the decoder.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool strip_leading_space = false);

  // Adds one token and returns the text it completes: whole characters only. An incomplete trailing
  // sequence (a valid prefix of a multi-byte character) is held back; bytes that can never be part of
  // valid UTF-8 are passed through at once, so invalid input still round-trips. The concatenation of
  // every Push and the final Flush equals Tokenizer::Decode of the same ids.
  std::string Push(int32_t id);

  // Returns whatever is held back (an unfinished character) and resets the hold.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool strip_;         // the leading-space rule is still pending
  std::string held_;   // a valid but incomplete UTF-8 prefix
};

}  // namespace strata
