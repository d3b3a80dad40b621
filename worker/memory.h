// What a worker holds in memory: resident set and the bytes of weights of its shard.
#pragma once

#include <string>

#include "core/model/model.h"

namespace strata {

// "resident 123.4 MiB (peak 130.0 MiB), layers [0, 11), 8/32 heads, 1408/5632 MLP columns, vocab 16000"
std::string MemoryReport(const Model& model);
// Resident and peak resident bytes of this process, from /proc/self/status.
void ResidentBytes(int64_t* current, int64_t* peak);
// Cores on this host divided by the ranks the MPI launcher put on it (OMPI_COMM_WORLD_LOCAL_SIZE).
int DefaultThreadsPerRank();

}  // namespace strata
