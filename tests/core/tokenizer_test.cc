// Tests for the llama (SentencePiece BPE) and gpt2 (byte-level BPE) tokenizers, the streaming decoder
// and the synthetic vocabulary builders; known encodings are checked against the real stories260K model.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/tokenizer/stream_decoder.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/unicode_tables.h"
#include "core/tokenizer/vocab.h"
#include "core/tokenizer/vocab_builder.h"
#include "gtest/gtest.h"

#ifndef STRATA_SOURCE_DIR
#define STRATA_SOURCE_DIR "."
#endif

namespace strata {
namespace {

// ---------------------------------------------------------------------------------------------------
// A minimal GGUF metadata reader, just enough for the tokenizer arrays, so this test does not depend on
// the model loader.

class GgufMetaReader {
 public:
  explicit GgufMetaReader(std::string data) : data_(std::move(data)) {}

  // Fills `vocab` from the tokenizer.ggml.* keys; false if the file is malformed.
  bool ReadVocab(Vocab* vocab) {
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (data_.compare(0, 4, "GGUF") != 0) return false;
    pos_ = 4;
    if (!Get(&version) || !Get(&n_tensors) || !Get(&n_kv)) return false;
    vocab->add_bos = true;  // llama's default when the key is absent
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key;
      uint32_t type;
      if (!GetString(&key) || !Get(&type)) return false;
      if (key == "tokenizer.ggml.model" && type == 8) {
        if (!GetString(&vocab->model)) return false;
      } else if (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.scores" ||
                 key == "tokenizer.ggml.token_type") {
        uint32_t elem;
        uint64_t count;
        if (type != 9 || !Get(&elem) || !Get(&count)) return false;
        for (uint64_t k = 0; k < count; ++k) {
          bool ok = true;
          if (elem == 8) {
            vocab->tokens.emplace_back();
            ok = GetString(&vocab->tokens.back());
          } else if (elem == 6) {
            vocab->scores.emplace_back();
            ok = Get(&vocab->scores.back());
          } else if (elem == 5) {
            vocab->types.emplace_back();
            ok = Get(&vocab->types.back());
          } else {
            return false;
          }
          if (!ok) return false;
        }
      } else if (!Skip(type)) {
        return false;
      }
    }
    return true;
  }

 private:
  template <typename T>
  bool Get(T* out) {
    if (pos_ + sizeof(T) > data_.size()) return false;
    std::memcpy(out, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool GetString(std::string* out) {
    uint64_t n;
    if (!Get(&n) || pos_ + n > data_.size()) return false;
    out->assign(data_, pos_, n);
    pos_ += n;
    return true;
  }
  bool Skip(uint32_t type) {
    static const size_t kSizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      std::string s;
      return GetString(&s);
    }
    if (type == 9) {
      uint32_t elem;
      uint64_t count;
      if (!Get(&elem) || !Get(&count)) return false;
      for (uint64_t k = 0; k < count; ++k) {
        if (!Skip(elem)) return false;
      }
      return true;
    }
    if (type > 12 || pos_ + kSizes[type] > data_.size()) return false;
    pos_ += kSizes[type];
    return true;
  }

  std::string data_;
  size_t pos_ = 0;
};

std::string ModelsDir() {
  const char* env = std::getenv("STRATA_MODELS_DIR");
  return env != nullptr ? std::string(env) : std::string(STRATA_SOURCE_DIR "/../shared/models");
}

// The stories260K vocabulary, or nullopt when the model file is not present.
std::optional<Vocab> LoadStoriesVocab() {
  std::ifstream in(ModelsDir() + "/stories260K.gguf", std::ios::binary);
  if (!in) return std::nullopt;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Vocab vocab;
  if (!GgufMetaReader(std::move(data)).ReadVocab(&vocab)) return std::nullopt;
  vocab.bos_id = 1;
  vocab.eos_id = 2;
  vocab.unk_id = 0;
  return vocab;
}

// ---------------------------------------------------------------------------------------------------

std::unique_ptr<Tokenizer> MustCreate(Vocab vocab) {
  auto t = Tokenizer::Create(std::move(vocab));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

const std::vector<std::string>& RoundTripTexts() {
  static const auto* texts = new std::vector<std::string>{
      "",
      "Hello world",
      "Once upon a time, there was a little girl named Lily.",
      " leading space",
      "trailing space ",
      "multi\nline\n\ntext\r\nwith CRLF\n",
      "whitespace   runs\t\ttabs  \n  \n",
      "   ",
      "\n",
      "中文文本，你好世界",
      "emoji 🦙👨‍👩‍👧 family",
      "combining e\xCC\x81 and a\xCC\x8A\xCC\x81",  // e + U+0301, a + two marks
      "invalid \xff\xfe bytes",
      "\xff",
      "lone continuation \x80\xbf bytes",
      "truncated \xE2\x82 euro and \xF0\x9F\xA6",  // cut-off 3- and 4-byte sequences
      "\xF0\x9F\xA6",                               // truncated at the very end
      "overlong \xC0\xAF and surrogate \xED\xA0\x80",
      "numbers 12345 and 3.14159, 1,000,000!",
      "don't won't I'm we'll they've you're she'd it's O'Neil",
      "<s> </s> <unk> <|endoftext|> <0x41>",
      "\xE2\x96\x81\xE2\x96\x81",  // literal '▁'s: SentencePiece reads them as spaces
      std::string("nul\0byte", 8),
  };
  return *texts;
}

// SentencePiece escapes ' ' as '▁', so literal '▁' in the input decodes to spaces: the one known lossy
// case of the llama tokenizer.
std::string SpmExpected(const std::string& text) {
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    if (text.compare(pos, 3, "\xE2\x96\x81") == 0) {
      out.push_back(' ');
      pos += 3;
    } else {
      out.push_back(text[pos++]);
    }
  }
  return out;
}

std::string StreamAll(const Tokenizer& tok, const std::vector<int32_t>& ids, bool strip) {
  StreamDecoder decoder(tok, strip);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = decoder.Push(id);
    // Every piece must be whole characters (or bytes that can never be valid): no valid prefix at the end.
    for (size_t pos = 0; pos < piece.size();) {
      const Utf8Char ch = DecodeUtf8Char(absl::string_view(piece).substr(pos));
      EXPECT_NE(ch.status, Utf8Status::kIncomplete) << "partial character emitted for id " << id;
      pos += ch.length;
    }
    out += piece;
  }
  return out + decoder.Flush();
}

// ---------------------------------------------------------------------------------------------------
// Unicode helpers

TEST(UnicodeTest, Classify) {
  EXPECT_EQ(ClassifyCodepoint('a'), CodepointClass::kLetter);
  EXPECT_EQ(ClassifyCodepoint('Z'), CodepointClass::kLetter);
  EXPECT_EQ(ClassifyCodepoint('7'), CodepointClass::kNumber);
  EXPECT_EQ(ClassifyCodepoint(' '), CodepointClass::kWhitespace);
  EXPECT_EQ(ClassifyCodepoint('\n'), CodepointClass::kWhitespace);
  EXPECT_EQ(ClassifyCodepoint('!'), CodepointClass::kOther);
  EXPECT_EQ(ClassifyCodepoint('_'), CodepointClass::kOther);
  EXPECT_EQ(ClassifyCodepoint(0x4E2D), CodepointClass::kLetter);      // 中
  EXPECT_EQ(ClassifyCodepoint(0x00E9), CodepointClass::kLetter);      // é
  EXPECT_EQ(ClassifyCodepoint(0x0301), CodepointClass::kOther);       // combining acute (Mn)
  EXPECT_EQ(ClassifyCodepoint(0x0663), CodepointClass::kNumber);      // Arabic-Indic three
  EXPECT_EQ(ClassifyCodepoint(0x00BD), CodepointClass::kNumber);      // ½ (No)
  EXPECT_EQ(ClassifyCodepoint(0x3000), CodepointClass::kWhitespace);  // ideographic space
  EXPECT_EQ(ClassifyCodepoint(0x00A0), CodepointClass::kWhitespace);  // no-break space
  EXPECT_EQ(ClassifyCodepoint(0x001C), CodepointClass::kOther);       // not White_Space
  EXPECT_EQ(ClassifyCodepoint(0x1F999), CodepointClass::kOther);      // 🦙
  EXPECT_EQ(ClassifyCodepoint(0x10FFFF), CodepointClass::kOther);
}

TEST(UnicodeTest, DecodeUtf8Char) {
  struct Case {
    std::string bytes;
    Utf8Status status;
    int length;
    uint32_t cp;
  };
  const Case cases[] = {
      {"A", Utf8Status::kComplete, 1, 'A'},
      {"\xC3\xA9x", Utf8Status::kComplete, 2, 0xE9},
      {"\xE2\x82\xAC", Utf8Status::kComplete, 3, 0x20AC},
      {"\xF0\x9F\xA6\x99", Utf8Status::kComplete, 4, 0x1F999},
      {"\xF4\x8F\xBF\xBF", Utf8Status::kComplete, 4, 0x10FFFF},
      {"\xE2\x82", Utf8Status::kIncomplete, 2, 0},
      {"\xF0", Utf8Status::kIncomplete, 1, 0},
      {"\x80", Utf8Status::kInvalid, 1, 0},
      {"\xFF", Utf8Status::kInvalid, 1, 0},
      {"\xC0\xAF", Utf8Status::kInvalid, 1, 0},          // overlong
      {"\xE0\x80\x80", Utf8Status::kInvalid, 1, 0},      // overlong
      {"\xED\xA0\x80", Utf8Status::kInvalid, 1, 0},      // surrogate
      {"\xF4\x90\x80\x80", Utf8Status::kInvalid, 1, 0},  // above U+10FFFF
      {"\xE2x", Utf8Status::kInvalid, 1, 0},
  };
  for (const Case& c : cases) {
    const Utf8Char ch = DecodeUtf8Char(c.bytes);
    EXPECT_EQ(ch.status, c.status) << c.bytes;
    EXPECT_EQ(ch.length, c.length) << c.bytes;
    if (c.status == Utf8Status::kComplete) {
      EXPECT_EQ(ch.codepoint, c.cp) << c.bytes;
      std::string encoded;
      AppendUtf8(c.cp, &encoded);
      EXPECT_EQ(encoded, c.bytes.substr(0, c.length));
    }
  }
}

TEST(Gpt2PreTokenizeTest, MatchesRegex) {
  // Expected splits produced with Python's `regex` module and GPT-2's pattern.
  const std::map<std::string, std::vector<std::string>> cases = {
      {"Hello world", {"Hello", " world"}},
      {"Hello  world", {"Hello", " ", " world"}},
      {"I'm fine, don't worry", {"I", "'m", " fine", ",", " don", "'t", " worry"}},
      {"they'll we've you're he'd", {"they", "'ll", " we", "'ve", " you", "'re", " he", "'d"}},
      {"'S 'x", {"'", "S", " '", "x"}},
      {"abc123def", {"abc", "123", "def"}},
      {"a\n\nb", {"a", "\n", "\n", "b"}},
      {"a \n b", {"a", " \n", " b"}},
      {"end   ", {"end", "   "}},
      {"  lead", {" ", " lead"}},
      {"x ?!  ...y", {"x", " ?!", " ", " ...", "y"}},
      {"3.14 + 2", {"3", ".", "14", " +", " 2"}},
      {"café naïve", {"café", " naïve"}},
      {"e\xCC\x81t\xC3\xA9", {"e", "\xCC\x81", "t\xC3\xA9"}},
      {"中文 text", {"中文", " text"}},
      {"🦙🦙 go", {"🦙🦙", " go"}},
      {"a\xff\xfe b", {"a", "\xff\xfe", " b"}},
      {"\t\tx", {"\t", "\t", "x"}},
      {"tab\tx", {"tab", "\t", "x"}},
      {"", {}},
  };
  for (const auto& [text, expected] : cases) {
    std::vector<std::string> got;
    for (absl::string_view piece : Gpt2PreTokenize(text)) got.emplace_back(piece);
    EXPECT_EQ(got, expected) << "text: " << text;
  }
}

// ---------------------------------------------------------------------------------------------------
// Vocab builders

TEST(VocabBuilderTest, LlamaLayoutAndDeterminism) {
  for (int32_t n : {kMinLlamaVocabSize, 512, 1000, 4096, 32000}) {
    const Vocab v = BuildLlamaVocab(n);
    ASSERT_EQ(static_cast<int32_t>(v.tokens.size()), n);
    ASSERT_EQ(v.scores.size(), v.tokens.size());
    ASSERT_EQ(v.types.size(), v.tokens.size());
    EXPECT_EQ(v.model, "llama");
    EXPECT_EQ(v.tokens[0], "<unk>");
    EXPECT_EQ(v.tokens[1], "<s>");
    EXPECT_EQ(v.tokens[2], "</s>");
    EXPECT_EQ(v.tokens[3], "<0x00>");
    EXPECT_EQ(v.tokens[258], "<0xFF>");
    EXPECT_EQ(v.types[258], static_cast<int32_t>(TokenType::kByte));
    EXPECT_EQ(v.tokens[259], "\xE2\x96\x81");
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_TRUE(v.add_bos);
    EXPECT_TRUE(Tokenizer::Create(v).ok()) << n;
  }
  const Vocab a = BuildLlamaVocab(2000), b = BuildLlamaVocab(2000);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.scores, b.scores);
  // Smaller vocabularies are prefixes of larger ones: the same training, stopped earlier.
  const Vocab big = BuildLlamaVocab(4000);
  EXPECT_TRUE(std::equal(a.tokens.begin(), a.tokens.end(), big.tokens.begin()));
}

TEST(VocabBuilderTest, Gpt2LayoutAndDeterminism) {
  for (int32_t n : {kMinGpt2VocabSize, 300, 1000, 8000, 50257}) {
    const Vocab v = BuildGpt2Vocab(n);
    ASSERT_EQ(static_cast<int32_t>(v.tokens.size()), n);
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.tokens[0], "!");  // GPT-2's byte order
    EXPECT_EQ(v.tokens[188], "\xC4\x80");  // 'Ā' = byte 0x00
    EXPECT_EQ(v.tokens.back(), "<|endoftext|>");
    EXPECT_EQ(v.bos_id, n - 1);
    EXPECT_EQ(v.eos_id, n - 1);
    EXPECT_FALSE(v.add_bos);
    EXPECT_GE(v.merges.size(), static_cast<size_t>(n - 257));
    EXPECT_TRUE(Tokenizer::Create(v).ok()) << n;
  }
  const Vocab a = BuildGpt2Vocab(3000), b = BuildGpt2Vocab(3000);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
}

TEST(VocabBuilderTest, LearnsCommonWords) {
  // Words frequent in the built-in corpus become single tokens, so the vocab behaves like a real one.
  auto llama = MustCreate(BuildLlamaVocab(2000));
  auto gpt2 = MustCreate(BuildGpt2Vocab(2000));
  ASSERT_TRUE(llama && gpt2);
  EXPECT_EQ(llama->Encode("the", false).size(), 1u);
  EXPECT_EQ(llama->Encode("Lily", false).size(), 1u);
  EXPECT_EQ(gpt2->Encode(" the", false).size(), 1u);
  EXPECT_EQ(gpt2->Encode(" Lily", false).size(), 1u);
}

TEST(VocabBuilderTest, Fast) {
  const auto start = std::chrono::steady_clock::now();
  BuildLlamaVocab(32000);
  BuildGpt2Vocab(50257);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The budget is < 1 s each in a release build; this generous bound still holds under sanitizers.
  EXPECT_LT(seconds, 20.0);
  std::printf("BuildLlamaVocab(32000) + BuildGpt2Vocab(50257): %.3f s\n", seconds);
}

// ---------------------------------------------------------------------------------------------------
// Round trips on builder vocabularies

class RoundTripTest : public ::testing::TestWithParam<std::pair<std::string, int32_t>> {
 protected:
  void SetUp() override {
    const auto& [model, n] = GetParam();
    tok_ = MustCreate(model == "llama" ? BuildLlamaVocab(n) : BuildGpt2Vocab(n));
    ASSERT_NE(tok_, nullptr);
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_P(RoundTripTest, EncodeDecode) {
  const bool llama = GetParam().first == "llama";
  for (const std::string& text : RoundTripTexts()) {
    const std::string expected = llama ? SpmExpected(text) : text;
    for (bool bos : {false, true}) {
      const std::vector<int32_t> ids = tok_->Encode(text, bos);
      for (int32_t id : ids) {
        ASSERT_GE(id, 0);
        ASSERT_LT(id, tok_->n_vocab());
      }
      if (bos) {
        ASSERT_FALSE(ids.empty());
        EXPECT_EQ(ids[0], tok_->bos_id());
      }
      // Text never turns into control tokens, whatever it spells.
      for (size_t i = bos ? 1 : 0; i < ids.size(); ++i) EXPECT_FALSE(tok_->IsControl(ids[i])) << text;
      EXPECT_EQ(tok_->Decode(ids), expected) << "text: " << text << " bos: " << bos;
      EXPECT_EQ(StreamAll(*tok_, ids, /*strip=*/true), expected) << text;
    }
    // Without the start-of-sequence rule the stream still equals the plain concatenation of pieces.
    const std::vector<int32_t> ids = tok_->Encode(text, false);
    std::string pieces;
    for (int32_t id : ids) pieces += tok_->TokenBytes(id);
    EXPECT_EQ(StreamAll(*tok_, ids, /*strip=*/false), pieces) << text;
  }
}

TEST_P(RoundTripTest, ConcurrentLongText) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "The quick brown fox 🦊 jumps over the lazy dog. \xff ";
  text += std::string(5000, 'a');  // one very long word: the merge loop must stay fast
  const bool llama = GetParam().first == "llama";
  const std::vector<int32_t> expected = tok_->Encode(text, false);
  EXPECT_EQ(tok_->Decode(expected), llama ? SpmExpected(text) : text);
  // A tokenizer is immutable: threads may share it.
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (auto& r : results) threads.emplace_back([&] { r = tok_->Encode(text, false); });
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r, expected);
}

INSTANTIATE_TEST_SUITE_P(Builders, RoundTripTest,
                         ::testing::Values(std::make_pair(std::string("llama"), 512),
                                           std::make_pair(std::string("llama"), 32000),
                                           std::make_pair(std::string("gpt2"), 300),
                                           std::make_pair(std::string("gpt2"), 50257)),
                         [](const auto& info) {
                           return info.param.first + std::to_string(info.param.second);
                         });

// ---------------------------------------------------------------------------------------------------
// Behaviour details

TEST(TokenizerTest, LlamaLeadingSpaceAndBos) {
  auto tok = MustCreate(BuildLlamaVocab(1000));
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->strips_leading_space());
  EXPECT_TRUE(tok->Encode("", false).empty());
  EXPECT_EQ(tok->Encode("", true), std::vector<int32_t>{1});
  // The prefix space is part of the first piece ...
  const std::vector<int32_t> ids = tok->Encode("Hello", false);
  std::string pieces;
  for (int32_t id : ids) pieces += tok->TokenBytes(id);
  EXPECT_EQ(pieces, " Hello");
  // ... and Decode removes exactly that one space, with or without BOS.
  EXPECT_EQ(tok->Decode(ids), "Hello");
  EXPECT_EQ(tok->Decode(tok->Encode("Hello", true)), "Hello");
  EXPECT_EQ(tok->Decode(tok->Encode("  two", true)), "  two");
  // Continuation streams keep the space.
  StreamDecoder continuation(*tok);
  std::string streamed;
  for (int32_t id : ids) streamed += continuation.Push(id);
  EXPECT_EQ(streamed + continuation.Flush(), " Hello");
  EXPECT_EQ(tok->TokenBytes(1), "");
  EXPECT_EQ(tok->TokenBytes(3 + 'A'), "A");
  EXPECT_EQ(tok->TokenText(3 + 'A'), "<0x41>");
  EXPECT_EQ(tok->TokenBytes(-1), "");
  EXPECT_EQ(tok->TokenBytes(tok->n_vocab()), "");
  EXPECT_TRUE(tok->IsControl(1));
  EXPECT_FALSE(tok->IsControl(300));
  EXPECT_TRUE(tok->IsEog(2));
  EXPECT_FALSE(tok->IsEog(1));
}

TEST(TokenizerTest, Gpt2SpecialTextIsPlain) {
  auto tok = MustCreate(BuildGpt2Vocab(1000));
  ASSERT_NE(tok, nullptr);
  const int32_t eot = tok->n_vocab() - 1;
  EXPECT_TRUE(tok->IsEog(eot));
  EXPECT_TRUE(tok->IsControl(eot));
  EXPECT_FALSE(tok->strips_leading_space());
  const std::vector<int32_t> ids = tok->Encode("<|endoftext|>", false);
  EXPECT_GT(ids.size(), 1u);
  for (int32_t id : ids) EXPECT_NE(id, eot);
  EXPECT_EQ(tok->Encode("hi", true).front(), eot);  // bos == eos == <|endoftext|>
  EXPECT_EQ(tok->TokenBytes(eot), "");
  EXPECT_EQ(tok->Decode({eot}), "");
  // Byte tokens decode to their byte, including the remapped control bytes.
  EXPECT_EQ(tok->TokenBytes(0), "!");
  EXPECT_EQ(tok->TokenBytes(188), std::string(1, '\0'));
}

TEST(TokenizerTest, Gpt2MergeRankOrder) {
  // Hand-made vocab where rank, not length or position, decides: "b c" (rank 0) beats "a b" (rank 1).
  Vocab v = BuildGpt2Vocab(257);
  v.tokens.pop_back();  // drop <|endoftext|> while extending
  v.types.pop_back();
  for (const char* t : {"bc", "ab", "abc"}) {
    v.tokens.push_back(t);
    v.types.push_back(static_cast<int32_t>(TokenType::kNormal));
  }
  v.merges = {"b c", "a b", "a bc"};
  v.bos_id = v.eos_id = -1;
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  const int32_t abc = static_cast<int32_t>(v.tokens.size()) - 1;
  EXPECT_EQ(tok->Encode("abc", false), std::vector<int32_t>{abc});
  const int32_t bc = abc - 2, a = 'a' - '!';
  EXPECT_EQ(tok->Encode("abcbc", false), (std::vector<int32_t>{abc, bc}));
  EXPECT_EQ(tok->Encode("ab", false), (std::vector<int32_t>{abc - 1}));
  EXPECT_EQ(tok->Encode("a", false), (std::vector<int32_t>{a}));
}

TEST(TokenizerTest, SpmScoreOrderAndTypes) {
  // Hand-made llama vocab: "▁a" never appears as a token, "ab" outscores "bc", and a control token
  // spelled "bc" must never be produced from text.
  Vocab v = BuildLlamaVocab(kMinLlamaVocabSize);
  v.add_space_prefix = false;
  const auto add = [&v](const std::string& text, float score, TokenType type) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(static_cast<int32_t>(type));
    return static_cast<int32_t>(v.tokens.size()) - 1;
  };
  const int32_t a = add("a", 0, TokenType::kNormal);
  const int32_t b = add("b", 0, TokenType::kNormal);
  const int32_t c = add("c", 0, TokenType::kNormal);
  const int32_t ab = add("ab", -1, TokenType::kNormal);
  const int32_t bc = add("bc", -2, TokenType::kNormal);
  const int32_t cd = add("cd", 5, TokenType::kControl);
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("abc", false), (std::vector<int32_t>{ab, c}));
  EXPECT_EQ(tok->Encode("bc", false), (std::vector<int32_t>{bc}));
  EXPECT_EQ(tok->Encode("aaa", false), (std::vector<int32_t>{a, a, a}));
  // 'd' is no piece: byte fallback; "cd" is a control token and must not match.
  EXPECT_EQ(tok->Encode("cd", false), (std::vector<int32_t>{c, 3 + 'd'}));
  EXPECT_NE(cd, c);
  EXPECT_EQ(tok->Encode("b", false), (std::vector<int32_t>{b}));
}

TEST(TokenizerTest, CreateRejectsBadVocabs) {
  {
    Vocab v = BuildLlamaVocab(600);
    v.scores.pop_back();
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildLlamaVocab(600);
    v.types.resize(10);
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildLlamaVocab(600);
    v.bos_id = 600;
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildLlamaVocab(600);
    v.tokens[3 + 0x41] = "A-byte";  // no <0x41> any more
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildLlamaVocab(600);
    v.types[3 + 0x41] = 99;
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildLlamaVocab(600);
    v.model = "wordpiece";
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v;
    v.model = "llama";
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildGpt2Vocab(600);
    v.tokens[10] = "not a byte";  // removes one byte-level character
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildGpt2Vocab(600);
    v.merges.push_back("nospace");
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
  {
    Vocab v = BuildGpt2Vocab(600);
    v.merges.push_back("\xC4\x80 \xC4\x81");  // "ĀĀ" (bytes 0x00 0x01) is not a token
    EXPECT_FALSE(Tokenizer::Create(v).ok());
  }
}

TEST(TokenizerTest, InferredTypes) {
  // Without token_type, llama infers byte tokens from their spelling and bos/eos/unk from the ids.
  Vocab v = BuildLlamaVocab(600);
  v.types.clear();
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->IsControl(1));
  EXPECT_EQ(tok->token_type(0), TokenType::kUnknown);
  EXPECT_EQ(tok->TokenBytes(3 + 'A'), "A");
  EXPECT_EQ(tok->Decode(tok->Encode("x\xff y", true)), "x\xff y");
}

TEST(StreamDecoderTest, EmojiOverByteTokens) {
  auto tok = MustCreate(BuildLlamaVocab(512));
  ASSERT_NE(tok, nullptr);
  const std::string llama = "\xF0\x9F\xA6\x99";
  StreamDecoder decoder(*tok);
  EXPECT_EQ(decoder.Push(3 + 0xF0), "");
  EXPECT_EQ(decoder.Push(3 + 0x9F), "");
  EXPECT_EQ(decoder.Push(3 + 0xA6), "");
  EXPECT_EQ(decoder.Push(1), "");  // a control token in between adds nothing
  EXPECT_EQ(decoder.Push(3 + 0x99), llama);
  EXPECT_EQ(decoder.Flush(), "");
  // A held prefix broken by a non-continuation byte: the stray bytes pass through, then the new text.
  EXPECT_EQ(decoder.Push(3 + 0xE2), "");
  EXPECT_EQ(decoder.Push(3 + 0x82), "");
  EXPECT_EQ(decoder.Push(3 + 'x'), "\xE2\x82x");
  // Bytes that can never start a character are not held.
  EXPECT_EQ(decoder.Push(3 + 0xFF), "\xFF");
  EXPECT_EQ(decoder.Push(3 + 0x80), "\x80");
  // Flush gives back an unfinished character.
  EXPECT_EQ(decoder.Push(3 + 0xF0), "");
  EXPECT_EQ(decoder.Flush(), "\xF0");
  EXPECT_EQ(decoder.Flush(), "");
}

TEST(StreamDecoderTest, Gpt2EmojiSplitAcrossTokens) {
  auto tok = MustCreate(BuildGpt2Vocab(300));
  ASSERT_NE(tok, nullptr);
  const std::string text = "a 🦙👨‍👩‍👧 b";
  const std::vector<int32_t> ids = tok->Encode(text, false);
  EXPECT_GT(ids.size(), 10u);  // a 300-token vocab leaves the emoji as single bytes
  EXPECT_EQ(StreamAll(*tok, ids, false), text);
}

// ---------------------------------------------------------------------------------------------------
// The real model's vocabulary

TEST(StoriesVocabTest, KnownEncodings) {
  std::optional<Vocab> vocab = LoadStoriesVocab();
  if (!vocab) GTEST_SKIP() << "stories260K.gguf not found in " << ModelsDir();
  ASSERT_EQ(vocab->model, "llama");
  ASSERT_EQ(vocab->tokens.size(), 512u);
  auto tok = MustCreate(*vocab);
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->add_bos());
  // Expected ids came from tools/ref_tokenizer.py (an independent Python SentencePiece-BPE encoder):
  //   python3 tools/ref_tokenizer.py stories260K.gguf "Once upon a time" ...
  const std::vector<std::pair<std::string, std::vector<int32_t>>> cases = {
      {"Once upon a time", {1, 403, 407, 261, 378}},
      {"Hello world", {1, 346, 306, 414, 263, 304, 341}},
      {" leading space", {1, 410, 278, 411, 380, 299, 262, 427, 412, 331}},
      {"Lily and Tom were friends.", {1, 317, 269, 274, 287, 382, 276, 374, 419, 426}},
      {"emoji 🦙!", {1, 344, 423, 414, 449, 417, 410, 243, 162, 169, 156, 443}},
      {"a\nb", {1, 261, 13, 430}},
      {"", {1}},
  };
  for (const auto& [text, expected] : cases) {
    const std::vector<int32_t> ids = tok->Encode(text, true);
    EXPECT_EQ(ids, expected) << "text: " << text;
    EXPECT_EQ(tok->Decode(ids), text);
    EXPECT_EQ(StreamAll(*tok, ids, true), text);
  }
  for (const std::string& text : RoundTripTexts()) {
    EXPECT_EQ(tok->Decode(tok->Encode(text, true)), SpmExpected(text)) << text;
  }
}

}  // namespace
}  // namespace strata
