#include "core/tokenizer/vocab_builder.h"

#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/unicode_tables.h"

namespace strata {
namespace {

// Original fairy-tale prose written for strata (public domain), the training text for both builders.
constexpr absl::string_view kCorpus = R"corpus(
Once upon a time, in a small village at the edge of a deep green forest, there lived a girl named Lily.
Lily had a red coat, a wooden flute and a little dog called Max. Every morning she walked to the well
with her mother, and every evening she played her flute for the birds that sat on the old stone wall.

One day Lily found a tiny door at the bottom of a tree. It was no bigger than her hand. "Who lives
here?" she asked. Nobody answered, so she knocked three times. The door opened, and a mouse in a blue
hat looked out. "I'm Pip," said the mouse. "We don't get many visitors. Would you like some tea?"

Lily laughed. "I'm too big to come inside," she said, "but I'd love to sit with you out here." So Pip
brought two cups, one very small and one very, very small, and they drank tea under the tree while
Max slept in the sun. Pip told her about the forest: the river that sang at night, the owl who knew
every name, and the hill where the wind kept its secrets.

The next morning Lily's friend Tom came to the village. Tom was a boy who liked to build things. He
had built a kite, a boat, a cart with four wheels and a bridge across the brook behind his house.
"Let's go and find the hill where the wind lives," said Lily. Tom nodded. "We'll need bread, apples
and a rope," he said. "You're always ready for anything," Lily told him, and he smiled.

They walked for 2 hours. They crossed the river on stepping stones, counted 17 ducks, and climbed
over 3 fallen trees. At noon they stopped to eat. Tom cut the bread into 4 pieces and gave 1 piece to
Max. The sky was bright and clear, and the grass smelled sweet. "It's a good day for an adventure,"
said Tom. "It's a good day for a nap," said Max, or at least that is what his yawn seemed to say.

When they reached the top of the hill, the wind was waiting. It was not angry and it was not cold. It
was curious. It pulled at Lily's coat and lifted Tom's hair. "Who are you?" whispered the wind. "We
are friends of Pip," said Lily. "He told us you keep secrets. We came to listen." The wind was quiet
for a long time. Then it began to tell them stories: of ships that sailed to islands made of ice, of
a dragon who was afraid of the dark, and of a king who traded his crown for a garden.

The dragon's story was the best. The dragon lived in a cave on a mountain. Every night, when the sun
went down, he hid under his wing and shook. The other animals laughed at him. "A dragon should not be
scared," they said. But one night a little girl climbed up to the cave with a lantern. She sat next
to the dragon and said, "I am scared of the dark too. Let's be scared together." The dragon looked at
the small light and felt a bit braver. After that, she came every night, and they watched the stars
until the dragon fell asleep. Soon he was not afraid anymore, because he had a friend.

"Friends make the dark smaller," said the wind. Lily thought about that all the way home.

It was late when they came back to the village. Lily's mother was standing at the door. "Where have
you been?" she asked. "We have been talking to the wind," said Lily. Her mother raised one eyebrow
and then she laughed. "Of course you have. Come in, dinner is ready." They ate warm soup, fresh bread
and honey cake. Tom ate 2 slices of cake, and Max ate the crumbs that fell on the floor.

That night Lily could not sleep. She opened her window and played her flute, very softly, so that
nobody in the house would wake up. The wind came and sat on the sill. It listened to every note.
When the song was over, it said, "Thank you. Nobody has ever played for me before." Then it went
away over the roofs, and Lily closed her eyes and dreamed of dragons, mice and hills.

In the spring the village held a fair. There were games, music and a race for children. The prize was
a jar of honey and a silver bell. Lily and Tom decided to run together. They trained every day: they
ran to the well and back, up the path to the mill, and around the pond where the frogs sang. On the
day of the race, 12 children stood at the line. The mayor, a kind old man with a long white beard,
lifted his hat. "Ready, steady, go!" he shouted, and they ran.

Tom was fast, but halfway through the race he saw a small boy fall down. He stopped and helped him up.
Lily stopped too. The three of them walked the rest of the way and came last. Nobody minded. The mayor
gave them a special prize for kindness: a basket of plums and a book of stories. "Winning is nice,"
he said, "but helping is better." The boy they had helped was named Ben, and from that day on he was
their friend as well.

Years later, when Lily was grown up, she still played the flute on summer evenings. She taught the
village children how to play, and she told them about Pip, the dragon and the wind. Some of them
believed her and some of them did not. But sometimes, on quiet nights, when the music drifted out of
the window, the curtains moved although every door was closed, and the children smiled, because they
knew who was listening.

The baker's cat, the miller's goose and the old fox who lived by the road all have their own stories.
The cat wanted to fly. The goose wanted to sing. The fox wanted, more than anything, to be trusted.
"Why should we trust you?" asked the hens. "Because I have been honest for 100 days," said the fox.
"That is a good start," said the oldest hen, "come back after 1,000 days and we will see." And so the
fox waited, and counted, and was honest every single day, and when the day came, the hens kept their
word. They've been friends ever since, or so the story goes.

At the café by the bridge, a naïve young crow once asked an old tortoise how to become wise. "Listen
more than you speak," said the tortoise, "and walk slowly enough to see the flowers." The crow tried it
for a week. She'd never seen so many flowers in her life.
)corpus";

constexpr absl::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 '▁'

struct Merge {
  int32_t left;
  int32_t right;
  int32_t result;
};

// The growing set of pieces: id -> text and text -> id.
struct Pieces {
  std::vector<std::string> text;
  std::unordered_map<std::string, int32_t> index;

  int32_t size() const { return static_cast<int32_t>(text.size()); }
  // Returns the id of `s`, adding it if new.
  int32_t Intern(const std::string& s) {
    auto [it, inserted] = index.emplace(s, size());
    if (inserted) text.push_back(s);
    return it->second;
  }
};

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Classic BPE training: repeatedly merge the most frequent adjacent pair of symbols (ties: the pair whose
// texts sort first, so the result never depends on hash order) until `max_pieces` pieces exist or no
// pair is left. Words are symbol-id sequences with a count; -1 marks a symbol that may not merge.
std::vector<Merge> TrainBpe(std::vector<std::pair<std::vector<int32_t>, int64_t>> words, int32_t max_pieces,
                            Pieces* pieces) {
  std::unordered_map<uint64_t, int64_t> counts;
  const auto count_pairs = [&counts](const std::vector<int32_t>& w, int64_t delta) {
    for (size_t i = 1; i < w.size(); ++i) {
      if (w[i - 1] < 0 || w[i] < 0) continue;
      auto it = counts.emplace(PairKey(w[i - 1], w[i]), 0).first;
      it->second += delta;
      if (it->second == 0) counts.erase(it);
    }
  };
  for (const auto& [w, n] : words) count_pairs(w, n);

  std::vector<Merge> merges;
  while (pieces->size() < max_pieces && !counts.empty()) {
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [key, n] : counts) {
      if (n < best_count) continue;
      if (n == best_count) {
        const std::string& l = pieces->text[key >> 32];
        const std::string& r = pieces->text[key & 0xFFFFFFFFu];
        const std::string& bl = pieces->text[best >> 32];
        const std::string& br = pieces->text[best & 0xFFFFFFFFu];
        if (std::tie(l, r) >= std::tie(bl, br)) continue;
      }
      best = key;
      best_count = n;
    }
    const int32_t left = static_cast<int32_t>(best >> 32), right = static_cast<int32_t>(best & 0xFFFFFFFFu);
    // Two different pairs can spell the same text ("▁a"+"b", "▁"+"ab"): they share one piece.
    const int32_t result = pieces->Intern(pieces->text[left] + pieces->text[right]);
    merges.push_back({left, right, result});
    for (auto& [w, n] : words) {
      bool has = false;
      for (size_t i = 1; i < w.size() && !has; ++i) has = w[i - 1] == left && w[i] == right;
      if (!has) continue;
      count_pairs(w, -n);
      size_t out = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == left && w[i + 1] == right) {
          w[out++] = result;
          ++i;
        } else {
          w[out++] = w[i];
        }
      }
      w.resize(out);
      count_pairs(w, n);
    }
  }
  return merges;
}

// When the corpus has no more merges: concatenations of two existing pieces. Learned pieces (ids from
// `n_base` on, in learned order) come before the base characters, and pairs are enumerated by increasing
// rank sum, so frequent word parts combine first and the padding still looks like word pieces. A right
// part starting with `boundary` (the word-start marker) is skipped: such a piece could never be produced
// from text. Deterministic by construction.
std::vector<Merge> PadPieces(int32_t target, int32_t n_base, absl::string_view boundary, Pieces* pieces) {
  std::vector<Merge> merges;
  while (pieces->size() < target) {
    // A fixed snapshot per pass; a second pass only happens for tiny corpora.
    std::vector<int32_t> order;
    for (int32_t id = n_base; id < pieces->size(); ++id) order.push_back(id);
    for (int32_t id = 0; id < std::min(n_base, pieces->size()); ++id) order.push_back(id);
    const int32_t m = static_cast<int32_t>(order.size());
    const int32_t before = pieces->size();
    for (int32_t s = 0; s <= 2 * (m - 1) && pieces->size() < target; ++s) {
      for (int32_t a = std::max(0, s - m + 1); a <= std::min(s, m - 1) && pieces->size() < target; ++a) {
        const int32_t i = order[a], j = order[s - a];
        if (absl::string_view(pieces->text[j]).substr(0, boundary.size()) == boundary) continue;
        const std::string joined = pieces->text[i] + pieces->text[j];
        if (pieces->index.count(joined) != 0) continue;
        merges.push_back({i, j, pieces->Intern(joined)});
      }
    }
    if (pieces->size() == before) break;  // cannot happen: the longest piece joined with any is new
  }
  return merges;
}

}  // namespace

Vocab BuildLlamaVocab(int32_t n_vocab) {
  const int32_t target = std::max(n_vocab, kMinLlamaVocabSize);
  Vocab v;
  v.model = "llama";
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {static_cast<int32_t>(TokenType::kUnknown), static_cast<int32_t>(TokenType::kControl),
             static_cast<int32_t>(TokenType::kControl)};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(absl::StrFormat("<0x%02X>", b));
    v.types.push_back(static_cast<int32_t>(TokenType::kByte));
  }
  const int32_t n_special = static_cast<int32_t>(v.tokens.size());

  // Words as SentencePiece sees them: whitespace-separated, each starting with '▁'. Newlines and tabs
  // are left to byte fallback, as in Llama 2.
  std::map<std::string, int64_t> word_counts;  // ordered: deterministic iteration
  for (size_t pos = 0; pos < kCorpus.size();) {
    const size_t end = std::min(kCorpus.find_first_of(" \n\t", pos), kCorpus.size());
    if (end > pos) ++word_counts[absl::StrCat(kSpmSpace, kCorpus.substr(pos, end - pos))];
    pos = end + 1;
  }

  // Base pieces: the characters, most frequent first ('▁' always first so it survives small vocabs).
  std::map<std::string, int64_t> char_counts;
  std::vector<std::pair<std::vector<std::string>, int64_t>> char_words;
  for (const auto& [word, n] : word_counts) {
    std::vector<std::string> chars;
    for (size_t pos = 0; pos < word.size();) {
      const Utf8Char ch = DecodeUtf8Char(absl::string_view(word).substr(pos));
      const size_t len = ch.status == Utf8Status::kComplete ? ch.length : 1;
      chars.push_back(word.substr(pos, len));
      char_counts[chars.back()] += n;
      pos += len;
    }
    char_words.emplace_back(std::move(chars), n);
  }
  std::vector<std::pair<int64_t, std::string>> by_freq;
  for (const auto& [c, n] : char_counts) by_freq.emplace_back(c == kSpmSpace ? INT64_MAX : n, c);
  std::sort(by_freq.begin(), by_freq.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  const int32_t max_pieces = target - n_special;
  Pieces pieces;
  for (const auto& [n, c] : by_freq) {
    if (pieces.size() < max_pieces) pieces.Intern(c);
  }

  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (const auto& [chars, n] : char_words) {
    std::vector<int32_t> ids;
    for (const std::string& c : chars) {
      auto it = pieces.index.find(c);
      ids.push_back(it == pieces.index.end() ? -1 : it->second);
    }
    words.emplace_back(std::move(ids), n);
  }
  const int32_t n_chars = pieces.size();
  TrainBpe(std::move(words), max_pieces, &pieces);
  PadPieces(max_pieces, n_chars, kSpmSpace, &pieces);

  // Earlier pieces score higher, so the SentencePiece merge loop prefers them, as training did.
  v.scores.assign(v.tokens.size(), 0.0f);
  for (int32_t i = 0; i < pieces.size(); ++i) {
    v.tokens.push_back(pieces.text[i]);
    v.types.push_back(static_cast<int32_t>(TokenType::kNormal));
    v.scores.push_back(-static_cast<float>(i));
  }
  return v;
}

Vocab BuildGpt2Vocab(int32_t n_vocab) {
  const int32_t target = std::max(n_vocab, kMinGpt2VocabSize);
  // The 256 byte tokens in GPT-2's order: by the code point that stands for each byte.
  std::vector<int> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = b;
  std::sort(bytes.begin(), bytes.end(), [](int a, int b) {
    return Gpt2ByteToCodepoint(static_cast<uint8_t>(a)) < Gpt2ByteToCodepoint(static_cast<uint8_t>(b));
  });
  Pieces pieces;
  std::vector<int32_t> byte_piece(256);
  for (int b : bytes) {
    std::string text;
    AppendUtf8(Gpt2ByteToCodepoint(static_cast<uint8_t>(b)), &text);
    byte_piece[b] = pieces.Intern(text);
  }

  std::map<std::string, int64_t> word_counts;  // ordered: deterministic iteration
  for (absl::string_view word : Gpt2PreTokenize(kCorpus)) ++word_counts[std::string(word)];
  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (const auto& [word, n] : word_counts) {
    std::vector<int32_t> ids;
    for (char c : word) ids.push_back(byte_piece[static_cast<uint8_t>(c)]);
    words.emplace_back(std::move(ids), n);
  }
  const int32_t max_pieces = target - 1;  // room for <|endoftext|>
  std::vector<Merge> merges = TrainBpe(std::move(words), max_pieces, &pieces);
  std::string space;
  AppendUtf8(Gpt2ByteToCodepoint(' '), &space);  // 'Ġ' starts words
  for (const Merge& m : PadPieces(max_pieces, 256, space, &pieces)) merges.push_back(m);

  Vocab v;
  v.model = "gpt2";
  v.tokens = pieces.text;
  v.types.assign(v.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  for (const Merge& m : merges) {
    v.merges.push_back(absl::StrCat(pieces.text[m.left], " ", pieces.text[m.right]));
  }
  v.tokens.push_back("<|endoftext|>");
  v.types.push_back(static_cast<int32_t>(TokenType::kControl));
  v.bos_id = v.eos_id = static_cast<int32_t>(v.tokens.size()) - 1;
  v.add_bos = false;
  v.add_space_prefix = false;
  return v;
}

}  // namespace strata
