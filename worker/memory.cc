#include "worker/memory.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <thread>

#include "absl/strings/str_format.h"

namespace strata {

void ResidentBytes(int64_t* current, int64_t* peak) {
  *current = *peak = 0;
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return;
  char line[256];
  while (std::fgets(line, sizeof(line), f)) {
    long long kb = 0;
    if (std::sscanf(line, "VmRSS: %lld kB", &kb) == 1) *current = kb * 1024;
    if (std::sscanf(line, "VmHWM: %lld kB", &kb) == 1) *peak = kb * 1024;
  }
  std::fclose(f);
}

std::string MemoryReport(const Model& model) {
  int64_t rss = 0, peak = 0;
  ResidentBytes(&rss, &peak);
  const ShardSpec& s = model.shard();
  const ModelConfig& c = model.config();
  return absl::StrFormat(
      "resident %.1f MiB (peak %.1f MiB); layers [%d, %d) of %d, heads %d/%d, KV heads %d/%d%s, MLP columns %d/%d, "
      "vocab %d/%d%s%s",
      rss / 1048576.0, peak / 1048576.0, s.first_layer, s.end_layer, c.n_layers, s.n_heads, c.n_heads, s.n_kv_heads,
      c.n_kv_heads, s.kv_replicated ? " (replicated)" : "", s.n_ff, c.n_ff, s.has_output ? s.n_vocab : 0, c.n_vocab,
      s.has_embedding ? ", embedding" : "", s.has_output ? ", output" : "");
}

int DefaultThreadsPerRank() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int local = 1;
  if (const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) local = std::max(1, std::atoi(v));
  return std::max(1, cores / local);
}

}  // namespace strata
