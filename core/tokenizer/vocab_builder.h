// Real, working vocabularies for synthetic models (`strata make-model`): learned by BPE training on a
// small built-in English corpus, so random-weight models tokenize text the way real ones do (common
// words become single tokens, everything else falls back to smaller pieces or bytes).
#pragma once

#include <cstdint>

#include "core/tokenizer/vocab.h"

namespace strata {

// The smallest sizes the builders can honour; smaller requests are raised to these.
constexpr int32_t kMinLlamaVocabSize = 260;  // <unk> <s> </s>, 256 byte tokens, '▁'
constexpr int32_t kMinGpt2VocabSize = 257;   // 256 byte-level tokens, <|endoftext|>

// SentencePiece style like Llama 2: <unk>=0, <s>=1 (bos), </s>=2 (eos), <0x00>..<0xFF> at 3..258, then
// single characters and learned merges, scores falling with the order so earlier pieces win; padded with
// concatenations of existing pieces when the corpus runs out. Exactly n_vocab tokens, deterministic.
Vocab BuildLlamaVocab(int32_t n_vocab);

// GPT-2 style byte-level BPE: the 256 byte tokens in GPT-2's order, then learned merges (padded with
// merges of existing tokens when the corpus runs out), and "<|endoftext|>" last as bos and eos.
// Exactly n_vocab tokens, deterministic.
Vocab BuildGpt2Vocab(int32_t n_vocab);

}  // namespace strata
