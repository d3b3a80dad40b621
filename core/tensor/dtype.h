// Element types of weights and activations. The numeric values are GGML's type ids, so a GGUF
// tensor's type field maps to DType directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace strata {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ8_0 = 8,
  kBF16 = 30,
};

// Q8_0: blocks of 32 values sharing one fp16 scale; value = d * qs[i].
inline constexpr int kQ8Block = 32;
struct BlockQ8_0 {
  uint16_t d;           // fp16 scale
  int8_t qs[kQ8Block];  // quantized values
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes as in GGML");

// True for the type ids strata can load. Anything else is rejected with a clear error.
bool IsSupportedDType(uint32_t ggml_type);
// "f32", "f16", "bf16", "q8_0"; for other GGML ids a name like "q4_K" or "type 42".
std::string DTypeName(uint32_t ggml_type);
// Parses "f32"/"f16"/"bf16"/"q8_0" (case-insensitive). Returns false if unknown.
bool ParseDType(const std::string& name, DType* out);
// Number of values that share one block (1 for plain types, 32 for Q8_0).
int64_t DTypeBlockSize(DType t);
// Bytes per block.
int64_t DTypeBlockBytes(DType t);
// Bytes of a row of n values; n must be a multiple of the block size.
inline int64_t RowBytes(DType t, int64_t n) { return n / DTypeBlockSize(t) * DTypeBlockBytes(t); }

// ---- scalar conversions (IEEE half, bfloat16) ----
inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, with overflow to inf and correct subnormals.
inline uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // rounds to >= 65520: inf
  if (absx < 0x38800000u) {  // result is subnormal or zero
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = absx >> 23;
    const uint32_t m = (absx & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // half subnormal q = value / 2^-24 = m * 2^(e - 126)
    uint32_t q = m >> (shift);
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t r = absx - (112u << 23);  // rebias the exponent from 127 to 15
  r += 0xfff + ((r >> 13) & 1);       // round to nearest even on the 13 dropped bits
  return static_cast<uint16_t>(sign | (r >> 13));
}

inline float BF16ToF32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t F32ToBF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet nan
  x += 0x7fff + ((x >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(x >> 16);
}

// ---- row conversions (used by the writer, the reference kernels and the loader) ----
// Converts n f32 values to `t` (n a multiple of the block size). Q8_0 follows GGML's reference
// quantizer: d = max|x| / 127, q = round(x / d).
void QuantizeRow(DType t, const float* src, void* dst, int64_t n);
// Converts n values of type `t` to f32.
void DequantizeRow(DType t, const void* src, float* dst, int64_t n);

}  // namespace strata
