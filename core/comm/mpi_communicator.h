// Communicator over an MPI communicator (Open MPI: shared memory within a host, TCP between hosts).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/comm/communicator.h"

namespace strata {

class MpiCommunicator final : public Communicator {
 public:
  // The world: MPI must be initialized (MpiSession). Owns nothing.
  static std::unique_ptr<MpiCommunicator> World();
  // Splits this group: ranks with the same color form a group, ordered by key (MPI_Comm_split).
  absl::StatusOr<std::unique_ptr<MpiCommunicator>> Split(int color, int key);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::Status AllReduceSum(float* data, int64_t count) override;
  absl::Status AllGather(const void* send, void* recv, int64_t bytes) override;
  absl::Status Broadcast(void* data, int64_t bytes, int root) override;
  absl::Status Send(const void* data, int64_t bytes, int peer, int tag) override;
  absl::Status Recv(void* data, int64_t bytes, int peer, int tag) override;
  absl::Status Barrier() override;

 private:
  MpiCommunicator(void* comm, bool owned);
  void* comm_;  // MPI_Comm, kept opaque so this header does not pull in mpi.h
  bool owned_;
  int rank_ = 0, size_ = 1;
};

// Initializes MPI for the life of the object (MPI_Init_thread / MPI_Finalize) and sets errors to
// return codes, so a failure becomes a Status instead of an abort.
class MpiSession {
 public:
  static absl::StatusOr<std::unique_ptr<MpiSession>> Init(int* argc, char*** argv);
  ~MpiSession();
  static std::string ProcessorName();
  // Ends every process of the job (used when one rank hits an error the others may wait on).
  [[noreturn]] static void Abort(int code);

 private:
  MpiSession() = default;
};

}  // namespace strata
