// The data plane between workers: collectives inside a group of ranks. Implementations: MPI
// (CPU), NCCL (GPU, with buffers in device memory and work ordered on the communicator's stream),
// and a single-rank one. Every call returns at once for a group of one.
//
// Buffers are wherever the backend keeps activations (host for the CPU backend, device for CUDA);
// calls are blocking from the caller's point of view, so a buffer may be reused when they return.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace strata {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;  // in this group
  virtual int size() const = 0;

  // data[count] = sum over ranks of data[count], in place, the same result on every rank.
  virtual absl::Status AllReduceSum(float* data, int64_t count) = 0;
  // recv[size() * bytes] = the `bytes` of send from each rank, in rank order.
  virtual absl::Status AllGather(const void* send, void* recv, int64_t bytes) = 0;
  // data[bytes] on every rank = data on `root`.
  virtual absl::Status Broadcast(void* data, int64_t bytes, int root) = 0;
  // Point to point; `tag` keeps independent streams of messages apart.
  virtual absl::Status Send(const void* data, int64_t bytes, int peer, int tag) = 0;
  virtual absl::Status Recv(void* data, int64_t bytes, int peer, int tag) = 0;
  virtual absl::Status Barrier() = 0;
};

// The group of one: collectives are identities, point to point has no peer.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  absl::Status AllReduceSum(float*, int64_t) override { return absl::OkStatus(); }
  absl::Status AllGather(const void* send, void* recv, int64_t bytes) override;
  absl::Status Broadcast(void*, int64_t, int) override { return absl::OkStatus(); }
  absl::Status Send(const void*, int64_t, int peer, int) override;
  absl::Status Recv(void*, int64_t, int peer, int) override;
  absl::Status Barrier() override { return absl::OkStatus(); }
};

}  // namespace strata
