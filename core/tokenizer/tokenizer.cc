#include "core/tokenizer/tokenizer.h"

#include <array>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/tokenizer/unicode_tables.h"
#include "core/util/status.h"

namespace strata {
namespace {

constexpr absl::string_view kSpmSpace = "\xE2\x96\x81";    // U+2581 '▁', SentencePiece's space
constexpr absl::string_view kSpmUnknown = "\xE2\x96\x85";  // U+2585 '▅', how llama.cpp prints <unk>

// Token texts that end generation when the vocab has them as special tokens.
constexpr absl::string_view kEogTexts[] = {"<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|im_end|>",
                                           "<|end|>", "<end_of_turn>"};

std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

bool IsTextType(TokenType t) { return t == TokenType::kNormal || t == TokenType::kUserDefined; }

// The byte a SentencePiece byte token "<0xXX>" (upper-case hex) stands for, or -1.
int ParseByteToken(absl::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    if (c >= '0' && c <= '9') {
      value = value * 16 + (c - '0');
    } else if (c >= 'A' && c <= 'F') {
      value = value * 16 + (c - 'A' + 10);
    } else {
      return -1;
    }
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------
// The merge loop both BPE flavours share: adjacent symbols are merged best-pair-first, ties going to the
// leftmost pair, with a priority queue of candidate pairs that goes stale lazily (llama.cpp's scheme,
// O(n log n) even for long words).

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t start;  // byte range in the text being tokenized
  uint32_t len;    // 0 once merged into its left neighbour
  int32_t id;      // the token this symbol is, or -1 (llama: a character that is not a token)
};

struct MergeCandidate {
  bool ok = false;
  double priority = 0;  // higher merges first
  int32_t id = -1;      // the token the merged pair becomes
};

struct QueuedPair {
  double priority;
  int32_t left;
  int32_t right;
  uint32_t len;  // left.len + right.len when queued: a mismatch later means the entry is stale
  int32_t id;
  bool operator<(const QueuedPair& o) const {  // std::priority_queue pops the largest
    if (priority != o.priority) return priority < o.priority;
    return left > o.left;
  }
};

// `lookup(const Symbol& left, const Symbol& right)` returns the MergeCandidate for an adjacent pair.
template <typename Lookup>
void MergeSymbols(std::vector<Symbol>* symbols, const Lookup& lookup) {
  std::vector<Symbol>& sym = *symbols;
  std::priority_queue<QueuedPair> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    MergeCandidate c = lookup(sym[left], sym[right]);
    if (c.ok) queue.push({c.priority, left, right, sym[left].len + sym[right].len, c.id});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const QueuedPair top = queue.top();
    queue.pop();
    Symbol& left = sym[top.left];
    Symbol& right = sym[top.right];
    if (left.len == 0 || right.len == 0 || left.next != top.right || left.len + right.len != top.len) {
      continue;
    }
    left.len += right.len;
    left.id = top.id;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.left;
    try_add(left.prev, top.left);
    try_add(top.left, left.next);
  }
}

// ---------------------------------------------------------------------------------------------------

// llama.cpp's llm_tokenizer_spm: SentencePiece BPE driven by token scores, with byte fallback.
class SpmTokenizer : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {}

  absl::Status Init() {
    const Vocab& v = vocab();
    for (int32_t id = 0; id < n_vocab(); ++id) {
      if (IsTextType(token_type(id))) piece_to_id_.emplace(Std(v.tokens[id]), id);  // first one wins
    }
    std::unordered_map<std::string_view, int32_t> by_text;
    for (int32_t id = 0; id < n_vocab(); ++id) by_text.emplace(Std(v.tokens[id]), id);
    for (int b = 0; b < 256; ++b) {
      const std::string text = absl::StrFormat("<0x%02X>", b);
      auto it = by_text.find(text);
      if (it == by_text.end()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "llama vocab has no byte token %s: every byte must be representable (byte fallback)", text));
      }
      if (token_type(it->second) != TokenType::kByte) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "llama vocab token %d '%s' must have token_type %d (byte)", it->second, text,
            static_cast<int>(TokenType::kByte)));
      }
      byte_ids_[b] = it->second;
    }
    token_bytes_.resize(n_vocab());
    for (int32_t id = 0; id < n_vocab(); ++id) token_bytes_[id] = ComputeBytes(id);
    return absl::OkStatus();
  }

  std::vector<int32_t> Encode(absl::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    if (add_bos && bos_id() >= 0) out.push_back(bos_id());
    if (text.empty()) return out;

    std::string escaped;
    escaped.reserve(text.size() + 8);
    if (vocab().add_space_prefix) escaped.append(kSpmSpace.data(), kSpmSpace.size());
    for (char c : text) {
      if (c == ' ') {
        escaped.append(kSpmSpace.data(), kSpmSpace.size());
      } else {
        escaped.push_back(c);
      }
    }

    std::vector<Symbol> symbols;
    for (size_t pos = 0; pos < escaped.size();) {
      const Utf8Char ch = DecodeUtf8Char(absl::string_view(escaped).substr(pos));
      // Invalid and truncated sequences become one symbol per byte; byte fallback then keeps them exact.
      const uint32_t len = ch.status == Utf8Status::kComplete ? ch.length : 1;
      const int32_t index = static_cast<int32_t>(symbols.size());
      symbols.push_back({index - 1, index + 1, static_cast<uint32_t>(pos), len,
                         Lookup(std::string_view(escaped).substr(pos, len))});
      pos += len;
    }
    symbols.back().next = -1;

    MergeSymbols(&symbols, [&](const Symbol& left, const Symbol& right) {
      MergeCandidate c;
      c.id = Lookup(std::string_view(escaped).substr(left.start, left.len + right.len));
      if (c.id >= 0) {
        c.ok = true;
        c.priority = vocab().scores.empty() ? 0.0 : vocab().scores[c.id];
      }
      return c;
    });

    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      const Symbol& s = symbols[i];
      if (s.id >= 0) {
        out.push_back(s.id);
        continue;
      }
      for (uint32_t k = 0; k < s.len; ++k) {
        out.push_back(byte_ids_[static_cast<uint8_t>(escaped[s.start + k])]);
      }
    }
    return out;
  }

  std::string TokenBytes(int32_t id) const override {
    if (id < 0 || id >= n_vocab()) return "";
    return token_bytes_[id];
  }

 private:
  int32_t Lookup(std::string_view piece) const {
    auto it = piece_to_id_.find(piece);
    return it == piece_to_id_.end() ? -1 : it->second;
  }

  std::string ComputeBytes(int32_t id) const {
    const std::string& text = TokenText(id);
    switch (token_type(id)) {
      case TokenType::kNormal:
      case TokenType::kUserDefined: {
        std::string out;
        for (size_t pos = 0; pos < text.size();) {
          if (absl::string_view(text).substr(pos, kSpmSpace.size()) == kSpmSpace) {
            out.push_back(' ');
            pos += kSpmSpace.size();
          } else {
            out.push_back(text[pos++]);
          }
        }
        return out;
      }
      case TokenType::kByte: {
        const int b = ParseByteToken(text);
        return b >= 0 ? std::string(1, static_cast<char>(b)) : "";
      }
      case TokenType::kUnknown:
        return std::string(kSpmUnknown);
      default:
        return "";
    }
  }

  std::unordered_map<std::string_view, int32_t> piece_to_id_;  // normal and user-defined tokens only
  std::array<int32_t, 256> byte_ids_{};
  std::vector<std::string> token_bytes_;
};

// ---------------------------------------------------------------------------------------------------

// The inverse of Gpt2ByteToCodepoint: code points 0..323 -> byte, -1 if not in the alphabet.
const std::array<int16_t, 324>& Gpt2CodepointToByte() {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[Gpt2ByteToCodepoint(static_cast<uint8_t>(b))] = static_cast<int16_t>(b);
    return t;
  }();
  return table;
}

// GPT-2 byte-level BPE: text is pre-tokenized, each piece's bytes become the 256 base tokens, which are
// merged by rank (lowest first).
class Gpt2Tokenizer : public Tokenizer {
 public:
  explicit Gpt2Tokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {}

  absl::Status Init() {
    const Vocab& v = vocab();
    std::unordered_map<std::string_view, int32_t> piece_to_id;
    for (int32_t id = 0; id < n_vocab(); ++id) {
      if (IsTextType(token_type(id))) piece_to_id.emplace(Std(v.tokens[id]), id);
    }
    for (int b = 0; b < 256; ++b) {
      std::string text;
      AppendUtf8(Gpt2ByteToCodepoint(static_cast<uint8_t>(b)), &text);
      auto it = piece_to_id.find(text);
      if (it == piece_to_id.end()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "gpt2 vocab has no normal token '%s' for byte 0x%02X: every byte must be representable", text,
            b));
      }
      byte_ids_[b] = it->second;
    }
    for (size_t rank = 0; rank < v.merges.size(); ++rank) {
      const std::string& merge = v.merges[rank];
      // The separator is the first space after the first character (as llama.cpp splits them).
      const size_t sep = merge.find(' ', 1);
      if (sep == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrFormat("gpt2 merge %d '%s' is not of the form \"a b\"", rank, merge));
      }
      const std::string_view left = std::string_view(merge).substr(0, sep);
      const std::string_view right = std::string_view(merge).substr(sep + 1);
      const std::string joined = std::string(left) + std::string(right);
      auto l = piece_to_id.find(left), r = piece_to_id.find(right), j = piece_to_id.find(joined);
      if (l == piece_to_id.end() || r == piece_to_id.end() || j == piece_to_id.end()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "gpt2 merge %d '%s': its parts and their concatenation must all be normal tokens", rank, merge));
      }
      merges_.emplace(PairKey(l->second, r->second), std::make_pair(static_cast<int32_t>(rank), j->second));
    }
    token_bytes_.resize(n_vocab());
    for (int32_t id = 0; id < n_vocab(); ++id) token_bytes_[id] = ComputeBytes(id);
    return absl::OkStatus();
  }

  std::vector<int32_t> Encode(absl::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    if (add_bos && bos_id() >= 0) out.push_back(bos_id());
    std::vector<Symbol> symbols;
    for (absl::string_view word : Gpt2PreTokenize(text)) {
      symbols.clear();
      for (size_t i = 0; i < word.size(); ++i) {
        const int32_t index = static_cast<int32_t>(i);
        symbols.push_back({index - 1, index + 1, static_cast<uint32_t>(i), 1,
                           byte_ids_[static_cast<uint8_t>(word[i])]});
      }
      symbols.back().next = -1;
      MergeSymbols(&symbols, [this](const Symbol& left, const Symbol& right) {
        MergeCandidate c;
        auto it = merges_.find(PairKey(left.id, right.id));
        if (it != merges_.end()) {
          c.ok = true;
          c.priority = -static_cast<double>(it->second.first);
          c.id = it->second.second;
        }
        return c;
      });
      for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
    }
    return out;
  }

  std::string TokenBytes(int32_t id) const override {
    if (id < 0 || id >= n_vocab()) return "";
    return token_bytes_[id];
  }

 private:
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  std::string ComputeBytes(int32_t id) const {
    const std::string& text = TokenText(id);
    switch (token_type(id)) {
      case TokenType::kNormal: {
        // Map the byte-level alphabet back to bytes; anything outside it is kept as written.
        std::string out;
        for (size_t pos = 0; pos < text.size();) {
          const Utf8Char ch = DecodeUtf8Char(absl::string_view(text).substr(pos));
          const int len = ch.status == Utf8Status::kComplete ? ch.length : 1;
          const auto& table = Gpt2CodepointToByte();
          if (ch.status == Utf8Status::kComplete && ch.codepoint < table.size() && table[ch.codepoint] >= 0) {
            out.push_back(static_cast<char>(table[ch.codepoint]));
          } else {
            out.append(text, pos, len);
          }
          pos += len;
        }
        return out;
      }
      case TokenType::kUserDefined:  // added tokens are stored as plain text, not byte-level encoded
      case TokenType::kByte:
        return text;
      default:
        return "";
    }
  }

  std::array<int32_t, 256> byte_ids_{};
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) -> (rank, result)
  std::vector<std::string> token_bytes_;
};

// ---------------------------------------------------------------------------------------------------

absl::Status ValidateAndFillTypes(Vocab* v) {
  const size_t n = v->tokens.size();
  if (n == 0) return absl::InvalidArgumentError("vocab has no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return absl::InvalidArgumentError("vocab too large");
  if (!v->scores.empty() && v->scores.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vocab has %d scores for %d tokens", v->scores.size(), n));
  }
  if (!v->types.empty() && v->types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vocab has %d token types for %d tokens", v->types.size(), n));
  }
  const std::pair<const char*, int32_t> ids[] = {
      {"bos", v->bos_id}, {"eos", v->eos_id}, {"unk", v->unk_id}, {"pad", v->pad_id}};
  for (const auto& [name, id] : ids) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("vocab %s_id %d out of range [-1, %d)", name, id, n));
    }
  }
  if (v->types.empty()) {
    v->types.assign(n, static_cast<int32_t>(TokenType::kNormal));
    if (v->model == "llama") {
      for (size_t id = 0; id < n; ++id) {
        if (ParseByteToken(v->tokens[id]) >= 0) v->types[id] = static_cast<int32_t>(TokenType::kByte);
      }
    }
    for (int32_t id : {v->bos_id, v->eos_id, v->pad_id}) {
      if (id >= 0) v->types[id] = static_cast<int32_t>(TokenType::kControl);
    }
    if (v->unk_id >= 0) v->types[v->unk_id] = static_cast<int32_t>(TokenType::kUnknown);
  }
  for (size_t id = 0; id < n; ++id) {
    if (v->types[id] < static_cast<int32_t>(TokenType::kNormal) ||
        v->types[id] > static_cast<int32_t>(TokenType::kByte)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token %d has invalid token_type %d", id, v->types[id]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  strips_leading_space_ = vocab_.model == "llama" && vocab_.add_space_prefix;
  is_eog_.assign(vocab_.tokens.size(), false);
  if (vocab_.eos_id >= 0) is_eog_[vocab_.eos_id] = true;
  for (int32_t id = 0; id < n_vocab(); ++id) {
    const TokenType type = token_type(id);
    const bool special = type == TokenType::kControl || type == TokenType::kUserDefined;
    for (absl::string_view text : kEogTexts) {
      // gpt2 vocabularies often list <|endoftext|> as a normal token; it still ends generation.
      if (vocab_.tokens[id] == text && (special || vocab_.model == "gpt2")) is_eog_[id] = true;
    }
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(Vocab vocab) {
  STRATA_RETURN_IF_ERROR(ValidateAndFillTypes(&vocab));
  if (vocab.model == "llama") {
    auto tokenizer = std::make_unique<SpmTokenizer>(std::move(vocab));
    STRATA_RETURN_IF_ERROR(tokenizer->Init());
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }
  if (vocab.model == "gpt2") {
    auto tokenizer = std::make_unique<Gpt2Tokenizer>(std::move(vocab));
    STRATA_RETURN_IF_ERROR(tokenizer->Init());
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unsupported tokenizer model '%s' (expected \"llama\" or \"gpt2\")", vocab.model));
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool strip = strips_leading_space_;
  for (int32_t id : ids) {
    std::string bytes = TokenBytes(id);
    if (strip && !bytes.empty()) {
      if (bytes[0] == ' ') bytes.erase(0, 1);
      strip = false;
    }
    if (!IsControl(id)) strip = false;  // only a leading BOS (or other control token) keeps the rule alive
    out += bytes;
  }
  return out;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return TokenType::kUnused;
  return static_cast<TokenType>(vocab_.types[id]);
}

const std::string& Tokenizer::TokenText(int32_t id) const {
  static const std::string* const kEmpty = new std::string();
  if (id < 0 || id >= n_vocab()) return *kEmpty;
  return vocab_.tokens[id];
}

bool Tokenizer::IsEog(int32_t id) const { return id >= 0 && id < n_vocab() && is_eog_[id]; }

uint32_t Gpt2ByteToCodepoint(uint8_t b) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (int c = 0; c < 256; ++c) {
      const bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
      t[c] = printable ? static_cast<uint32_t>(c) : next++;
    }
    return t;
  }();
  return table[b];
}

std::vector<absl::string_view> Gpt2PreTokenize(absl::string_view text) {
  // Decode once into characters; invalid bytes are single characters of class "other".
  struct Char {
    uint32_t start;
    uint32_t cp;  // 0xFFFFFFFF for an invalid byte
    CodepointClass cls;
  };
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char ch = DecodeUtf8Char(text.substr(pos));
    if (ch.status == Utf8Status::kComplete) {
      chars.push_back({static_cast<uint32_t>(pos), ch.codepoint, ClassifyCodepoint(ch.codepoint)});
      pos += ch.length;
    } else {
      chars.push_back({static_cast<uint32_t>(pos), 0xFFFFFFFFu, CodepointClass::kOther});
      pos += 1;
    }
  }
  const size_t n = chars.size();
  const auto cp = [&](size_t i) { return i < n ? chars[i].cp : 0xFFFFFFFFu; };
  const auto cls = [&](size_t i) { return chars[i].cls; };

  std::vector<absl::string_view> pieces;
  size_t i = 0;
  const auto emit = [&](size_t end) {
    const size_t from = chars[i].start;
    const size_t to = end < n ? chars[end].start : text.size();
    pieces.push_back(text.substr(from, to - from));
    i = end;
  };
  while (i < n) {
    // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2)
    if (cp(i) == '\'') {
      const uint32_t a = cp(i + 1), b = cp(i + 2);
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        emit(i + 2);
        continue;
      }
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
        emit(i + 3);
        continue;
      }
    }
    //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ : an optional U+0020 then a run of one class. A space is
    // whitespace, so without the optional space the run must start at i itself.
    const size_t k = (cp(i) == ' ' && i + 1 < n) ? i + 1 : i;
    if (cls(k) != CodepointClass::kWhitespace) {
      size_t end = k;
      while (end < n && cls(end) == cls(k)) ++end;
      emit(end);
      continue;
    }
    // \s+(?!\S) | \s+ : a whitespace run, leaving its last character to prefix a following non-space.
    size_t end = i;
    while (end < n && cls(end) == CodepointClass::kWhitespace) ++end;
    if (end < n && end - i >= 2) --end;
    emit(end);
  }
  return pieces;
}

}  // namespace strata
