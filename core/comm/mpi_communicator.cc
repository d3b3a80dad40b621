#include "core/comm/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

MPI_Comm AsComm(void* c) { return *static_cast<MPI_Comm*>(c); }

absl::Status Check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return absl::UnavailableError(absl::StrCat("MPI ", what, " failed: ", std::string(msg, len)));
}

// MPI counts are int: larger messages go as chunks of MPI_BYTE.
constexpr int64_t kMaxChunk = INT_MAX / 2;

}  // namespace

MpiCommunicator::MpiCommunicator(void* comm, bool owned) : comm_(comm), owned_(owned) {
  MPI_Comm_rank(AsComm(comm_), &rank_);
  MPI_Comm_size(AsComm(comm_), &size_);
}

MpiCommunicator::~MpiCommunicator() {
  if (owned_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(static_cast<MPI_Comm*>(comm_));
  }
  delete static_cast<MPI_Comm*>(comm_);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::World() {
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(new MPI_Comm(MPI_COMM_WORLD), false));
}

absl::StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Split(int color, int key) {
  auto* out = new MPI_Comm;
  absl::Status s = Check(MPI_Comm_split(AsComm(comm_), color, key, out), "Comm_split");
  if (!s.ok()) {
    delete out;
    return s;
  }
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(out, true));
}

absl::Status MpiCommunicator::AllReduceSum(float* data, int64_t count) {
  if (size_ == 1) return absl::OkStatus();
  for (int64_t off = 0; off < count; off += kMaxChunk / 4) {
    const int n = static_cast<int>(std::min<int64_t>(kMaxChunk / 4, count - off));
    absl::Status s = Check(MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_FLOAT, MPI_SUM, AsComm(comm_)), "Allreduce");
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::AllGather(const void* send, void* recv, int64_t bytes) {
  if (bytes > kMaxChunk) return absl::InvalidArgumentError("all-gather message too large");
  if (size_ == 1) {
    if (send != recv) std::memmove(recv, send, bytes);
    return absl::OkStatus();
  }
  return Check(MPI_Allgather(send, static_cast<int>(bytes), MPI_BYTE, recv, static_cast<int>(bytes), MPI_BYTE,
                             AsComm(comm_)),
               "Allgather");
}

absl::Status MpiCommunicator::Broadcast(void* data, int64_t bytes, int root) {
  if (size_ == 1) return absl::OkStatus();
  for (int64_t off = 0; off < bytes; off += kMaxChunk) {
    const int n = static_cast<int>(std::min(kMaxChunk, bytes - off));
    absl::Status s = Check(MPI_Bcast(static_cast<char*>(data) + off, n, MPI_BYTE, root, AsComm(comm_)), "Bcast");
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Send(const void* data, int64_t bytes, int peer, int tag) {
  for (int64_t off = 0; off < bytes || off == 0; off += kMaxChunk) {
    const int n = static_cast<int>(std::min(kMaxChunk, bytes - off));
    absl::Status s =
        Check(MPI_Send(static_cast<const char*>(data) + off, n, MPI_BYTE, peer, tag, AsComm(comm_)), "Send");
    if (!s.ok()) return s;
    if (bytes == 0) break;
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Recv(void* data, int64_t bytes, int peer, int tag) {
  for (int64_t off = 0; off < bytes || off == 0; off += kMaxChunk) {
    const int n = static_cast<int>(std::min(kMaxChunk, bytes - off));
    MPI_Status st;
    absl::Status s =
        Check(MPI_Recv(static_cast<char*>(data) + off, n, MPI_BYTE, peer, tag, AsComm(comm_), &st), "Recv");
    if (!s.ok()) return s;
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (got != n) {
      return absl::DataLossError(absl::StrCat("expected ", n, " bytes from rank ", peer, ", got ", got));
    }
    if (bytes == 0) break;
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Barrier() { return Check(MPI_Barrier(AsComm(comm_)), "Barrier"); }

absl::StatusOr<std::unique_ptr<MpiSession>> MpiSession::Init(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    return absl::UnavailableError("MPI_Init_thread failed");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::unique_ptr<MpiSession>(new MpiSession());
}

MpiSession::~MpiSession() { MPI_Finalize(); }

std::string MpiSession::ProcessorName() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, len);
}

void MpiSession::Abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  __builtin_unreachable();
}

}  // namespace strata
