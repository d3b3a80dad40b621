// A read-only memory mapping of a whole file. Weights are mapped rather than read so that a worker
// only pages in the slices it uses, and so that several processes on one host share the page cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace strata {

class MappedFile {
 public:
  // Maps `path` read-only. NotFound if it does not exist; other errors name the path and strerror.
  // An empty file maps to size() == 0 and data() == nullptr.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace strata
