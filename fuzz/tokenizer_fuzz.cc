// Fuzzes the tokenizers with fixed vocabularies built once at start-up (SentencePiece BPE with and
// without the space prefix and scores, byte-level BPE; the first byte picks one). Each input is used
// twice:
//   - as text: Encode (with and without BOS), which must give in-range, non-control ids that Decode
//     and the StreamDecoder turn back into the text (the round trip tests/core/tokenizer_test.cc
//     states for any bytes; llama reads a literal U+2581 as a space);
//   - as a sequence of token ids (2 bytes each, including negative and out-of-range ids): Decode
//     must equal the streamed text, and the stream must never emit half a character.
// Also checks that the GPT-2 pre-tokenizer's pieces are non-empty and concatenate to the text.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/tokenizer/stream_decoder.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/unicode_tables.h"
#include "core/tokenizer/vocab_builder.h"
#include "fuzz/fuzz_check.h"

namespace strata {
namespace {

struct Case {
  std::string name;
  std::unique_ptr<Tokenizer> tok;
};

const std::vector<Case>& Tokenizers() {
  static const std::vector<Case>* cases = [] {
    auto* v = new std::vector<Case>;
    const auto add = [v](const std::string& name, Vocab vocab) {
      auto t = Tokenizer::Create(std::move(vocab));
      FUZZ_CHECK(t.ok(), "%s: %s", name.c_str(), t.status().ToString().c_str());
      v->push_back({name, std::move(*t)});
    };
    add("llama", BuildLlamaVocab(1000));
    Vocab no_prefix = BuildLlamaVocab(1000);
    no_prefix.add_space_prefix = false;
    add("llama-no-space-prefix", std::move(no_prefix));
    Vocab no_scores = BuildLlamaVocab(600);
    no_scores.scores.clear();  // every merge ties: leftmost first
    add("llama-no-scores", std::move(no_scores));
    add("gpt2", BuildGpt2Vocab(1000));
    return v;
  }();
  return *cases;
}

// What Decode(Encode(text)) gives: llama reads a literal U+2581 as the space it escapes to.
std::string Expected(absl::string_view text, bool spm) {
  if (!spm) return std::string(text);
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    if (text.substr(pos, 3) == "\xE2\x96\x81") {
      out.push_back(' ');
      pos += 3;
    } else {
      out.push_back(text[pos++]);
    }
  }
  return out;
}

std::string Printable(absl::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200)) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), (c >= 0x20 && c < 0x7f && c != '\\') ? "%c" : "\\x%02x", c);
    out += buf;
  }
  return out;
}

// Streams `ids` and checks that no piece ends inside a character: every boundary between pieces must
// be a boundary of the whole text's split into characters and invalid bytes. (A piece may end with
// what looks like a prefix on its own, e.g. "\xD6" when the next byte cannot continue it.)
std::string StreamAll(const Tokenizer& tok, const std::vector<int32_t>& ids, bool strip) {
  StreamDecoder decoder(tok, strip);
  std::string out;
  std::vector<size_t> cuts;
  for (int32_t id : ids) {
    out += decoder.Push(id);
    cuts.push_back(out.size());
  }
  out += decoder.Flush();
  FUZZ_CHECK(decoder.Flush().empty(), "a second Flush returned text");
  std::vector<bool> boundary(out.size() + 1, false);
  boundary[out.size()] = true;
  for (size_t pos = 0; pos < out.size();) {
    boundary[pos] = true;
    const Utf8Char ch = DecodeUtf8Char(absl::string_view(out).substr(pos));
    pos += ch.status == Utf8Status::kIncomplete ? out.size() - pos : ch.length;
  }
  for (size_t k = 0; k < cuts.size(); ++k) {
    FUZZ_CHECK(boundary[cuts[k]], "stream emitted half a character after id %d at byte %zu of '%s'", ids[k],
               cuts[k], Printable(out).c_str());
  }
  return out;
}

void CheckText(const Case& c, absl::string_view text) {
  const Tokenizer& tok = *c.tok;
  const bool spm = c.name.rfind("llama", 0) == 0;
  const std::string expected = Expected(text, spm);
  for (bool bos : {false, true}) {
    const std::vector<int32_t> ids = tok.Encode(text, bos);
    size_t first = 0;
    if (bos && tok.bos_id() >= 0) {
      FUZZ_CHECK(!ids.empty() && ids[0] == tok.bos_id(), "%s: BOS missing", c.name.c_str());
      first = 1;
    }
    FUZZ_CHECK(text.empty() == (ids.size() == first), "%s: %zu ids for %zu bytes", c.name.c_str(), ids.size(),
               text.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      FUZZ_CHECK(ids[i] >= 0 && ids[i] < tok.n_vocab(), "%s: id %d out of range", c.name.c_str(), ids[i]);
      if (i >= first) FUZZ_CHECK(!tok.IsControl(ids[i]), "%s: text became control token %d", c.name.c_str(), ids[i]);
    }
    const std::string decoded = tok.Decode(ids);
    FUZZ_CHECK(decoded == expected, "%s: round trip of '%s' gave '%s'", c.name.c_str(), Printable(text).c_str(),
               Printable(decoded).c_str());
    const std::string streamed = StreamAll(tok, ids, /*strip=*/true);
    FUZZ_CHECK(streamed == expected, "%s: stream of '%s' gave '%s'", c.name.c_str(), Printable(text).c_str(),
               Printable(streamed).c_str());
  }
}

void CheckIds(const Case& c, const std::vector<int32_t>& ids) {
  const Tokenizer& tok = *c.tok;
  const std::string decoded = tok.Decode(ids);
  FUZZ_CHECK(StreamAll(tok, ids, /*strip=*/true) == decoded, "%s: stream != Decode", c.name.c_str());
  std::string pieces;
  for (int32_t id : ids) pieces += tok.TokenBytes(id);
  FUZZ_CHECK(StreamAll(tok, ids, /*strip=*/false) == pieces, "%s: stream != pieces", c.name.c_str());
  // Text made of vocabulary pieces reaches merges that random bytes rarely do.
  CheckText(c, decoded);
}

void CheckPreTokenize(absl::string_view text) {
  std::string joined;
  for (absl::string_view piece : Gpt2PreTokenize(text)) {
    FUZZ_CHECK(!piece.empty(), "empty pre-token in '%s'", Printable(text).c_str());
    joined.append(piece.data(), piece.size());
  }
  FUZZ_CHECK(joined == text, "pre-tokens of '%s' do not concatenate to it", Printable(text).c_str());
}

}  // namespace
}  // namespace strata

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  CheckPreTokenize(text);
  if (size == 0) {
    for (const Case& c : Tokenizers()) CheckText(c, text);
    return 0;
  }
  // The first byte also picks the tokenizer: running all of them on every input would cost 4x the
  // executions for coverage the fuzzer reaches anyway.
  const std::vector<Case>& cases = Tokenizers();
  const Case& c = cases[data[0] % cases.size()];
  CheckText(c, text);
  // Two bytes per id, spread over [-8, n_vocab + 8) so invalid ids come up often enough.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) {
    const uint32_t v = data[i] | (uint32_t{data[i + 1]} << 8);
    ids.push_back(static_cast<int32_t>(v % static_cast<uint32_t>(c.tok->n_vocab() + 16)) - 8);
  }
  CheckIds(c, ids);
  return 0;
}
