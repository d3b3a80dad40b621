#include "core/sampling/stop_strings.h"

#include <algorithm>
#include <utility>

namespace strata {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

StopMatcher::Result StopMatcher::Push(absl::string_view text) {
  if (stopped_) return {"", true};
  held_.append(text.data(), text.size());

  // held_ had no whole stop string before this piece, so any match ends inside the new text. For a
  // given stop, find() returns its earliest occurrence, which is also its earliest end.
  size_t best_begin = std::string::npos, best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& s : stops_) {
    const size_t pos = held_.find(s);
    if (pos == std::string::npos) continue;
    const size_t end = pos + s.size();
    if (best == nullptr || end < best_end || (end == best_end && pos < best_begin)) {
      best_begin = pos;
      best_end = end;
      best = &s;
    }
  }
  if (best != nullptr) {
    Result r{held_.substr(0, best_begin), true};
    matched_ = *best;
    stopped_ = true;
    held_.clear();
    return r;
  }

  const size_t hold = HoldLength();
  Result r{held_.substr(0, held_.size() - hold), false};
  held_.erase(0, held_.size() - hold);
  return r;
}

std::string StopMatcher::Flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

size_t StopMatcher::HoldLength() const {
  if (max_len_ == 0) return 0;
  const absl::string_view held(held_);
  // Longest first: the first hit is the answer. Proper prefixes only, since a whole stop string
  // would already have been matched.
  for (size_t k = std::min(held.size(), max_len_ - 1); k > 0; --k) {
    const absl::string_view tail = held.substr(held.size() - k);
    for (const std::string& s : stops_) {
      if (s.size() > k && absl::string_view(s).substr(0, k) == tail) return k;
    }
  }
  return 0;
}

}  // namespace strata
