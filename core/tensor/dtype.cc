#include "core/tensor/dtype.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace strata {

bool IsSupportedDType(uint32_t t) {
  return t == static_cast<uint32_t>(DType::kF32) || t == static_cast<uint32_t>(DType::kF16) ||
         t == static_cast<uint32_t>(DType::kQ8_0) || t == static_cast<uint32_t>(DType::kBF16);
}

std::string DTypeName(uint32_t t) {
  // GGML's names, so an unsupported quantization is recognisable in the error message.
  static const char* const kNames[] = {
      "f32",  "f16",  "q4_0", "q4_1", "q4_2", "q4_3", "q5_0",    "q5_1",    "q8_0",   "q8_1",  "q2_K",
      "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s",
      "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m", "bf16"};
  if (t < sizeof(kNames) / sizeof(kNames[0])) return kNames[t];
  return "type " + std::to_string(t);
}

bool ParseDType(const std::string& name, DType* out) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "f32") *out = DType::kF32;
  else if (s == "f16") *out = DType::kF16;
  else if (s == "bf16") *out = DType::kBF16;
  else if (s == "q8_0") *out = DType::kQ8_0;
  else return false;
  return true;
}

int64_t DTypeBlockSize(DType t) { return t == DType::kQ8_0 ? kQ8Block : 1; }

int64_t DTypeBlockBytes(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kQ8_0: return sizeof(BlockQ8_0);
  }
  return 0;
}

void QuantizeRow(DType t, const float* src, void* dst, int64_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = F32ToF16(src[i]);
      return;
    }
    case DType::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = F32ToBF16(src[i]);
      return;
    }
    case DType::kQ8_0: {
      auto* blocks = static_cast<BlockQ8_0*>(dst);
      for (int64_t b = 0; b < n / kQ8Block; ++b) {
        const float* x = src + b * kQ8Block;
        float amax = 0.0f;
        for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        blocks[b].d = F32ToF16(d);
        for (int i = 0; i < kQ8Block; ++i) blocks[b].qs[i] = static_cast<int8_t>(std::lround(x[i] * id));
      }
      return;
    }
  }
}

void DequantizeRow(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(s[i]);
      return;
    }
    case DType::kQ8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < n / kQ8Block; ++b) {
        const float d = F16ToF32(blocks[b].d);
        for (int i = 0; i < kQ8Block; ++i) dst[b * kQ8Block + i] = d * blocks[b].qs[i];
      }
      return;
    }
  }
}

}  // namespace strata
