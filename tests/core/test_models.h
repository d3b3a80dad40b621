// Model files for tests: synthetic ones written with MakeModel into a temp dir (once per process),
// and the real stories260K model from ../shared/models when it is there.
#pragma once

#include <cstdlib>
#include <string>
#include <unistd.h>

#include "core/model/make_model.h"
#include "gtest/gtest.h"

#ifndef STRATA_SOURCE_DIR
#define STRATA_SOURCE_DIR "."
#endif

namespace strata::testing {

inline std::string TempDir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/strata_test_XXXXXX";
    const char* d = mkdtemp(tmpl.data());
    return std::string(d ? d : "/tmp");
  }();
  return dir;
}

// Writes (once) and returns the path of a synthetic model.
inline std::string SyntheticModel(const std::string& arch, const std::string& preset, DType dtype, uint64_t seed = 1) {
  const std::string path = TempDir() + "/" + arch + "-" + preset + "-" + DTypeName(uint32_t(dtype)) + "-" +
                           std::to_string(seed) + ".gguf";
  if (access(path.c_str(), R_OK) == 0) return path;
  MakeModelOptions o;
  o.preset = FindModelPreset(arch, preset).value();
  o.dtype = dtype;
  o.seed = seed;
  o.out = path;
  const absl::Status s = MakeModel(o);
  EXPECT_TRUE(s.ok()) << s;
  return path;
}

// Path of the real model, or "" when it is not there (tests then skip, saying why).
inline std::string StoriesModel() {
  const char* env = std::getenv("STRATA_MODELS_DIR");
  const std::string dir = env ? env : std::string(STRATA_SOURCE_DIR) + "/../shared/models";
  const std::string path = dir + "/stories260K.gguf";
  return access(path.c_str(), R_OK) == 0 ? path : "";
}

#define STRATA_REQUIRE_STORIES(path)                                                               \
  const std::string path = ::strata::testing::StoriesModel();                                      \
  if (path.empty()) GTEST_SKIP() << "stories260K.gguf not found (set STRATA_MODELS_DIR or place it " \
                                    "in ../shared/models); skipping the real-weights check"

}  // namespace strata::testing
