// Stop strings over streamed text. Text arrives in pieces (one per decoded token); the matcher
// releases it as early as possible but holds back any tail that could still grow into a stop
// string, so a stop string never reaches the client, even when it spans several pieces.
//
// When several stop strings could match, the one that completes first in the stream wins (on a tie,
// the one that starts earlier), so the output never depends on how the text was split into pieces.
// Matching is bytewise; for valid UTF-8 text and stop strings, held-back tails start at character
// boundaries, so emitted text never ends in half a character.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace strata {

class StopMatcher {
 public:
  // Empty stop strings are ignored; with none left the matcher passes text straight through.
  explicit StopMatcher(std::vector<std::string> stops);

  struct Result {
    std::string emit;  // text safe to send now
    bool stopped;      // a stop string completed: emit holds the text before it; stop generating
  };
  // After a stop, every later Push returns {"", true}.
  Result Push(absl::string_view text);
  // End of stream without a stop: returns the held-back tail (nothing after a stop).
  std::string Flush();

  bool stopped() const { return stopped_; }
  // The stop string that ended the stream; empty if none did.
  const std::string& matched() const { return matched_; }

 private:
  // Length of the longest suffix of held_ that is a proper prefix of some stop string.
  size_t HoldLength() const;

  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;  // text received but not yet emitted; never contains a whole stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace strata
