// The coordinator's side of the control plane (strata.v1.Cluster): workers attach over a bidi
// stream, say hello, get their assignment and report ready; the serving loop then sends every
// step plan to all of them and waits for the result from the last stage's tensor rank 0.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "strata/v1/cluster.grpc.pb.h"

namespace strata::coordinator {

class WorkerPool final : public strata::v1::Cluster::Service {
 public:
  // `assignment` is sent to every worker; tp * pp workers make the group.
  explicit WorkerPool(const strata::v1::Assignment& assignment);

  grpc::Status Attach(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<strata::v1::CoordinatorMessage, strata::v1::WorkerMessage>* stream)
      override;

  // Workers must then send `authorization: Bearer TOKEN` to attach; empty (the default) admits any.
  void set_join_token(std::string token) { join_token_ = std::move(token); }

  int world_size() const { return world_; }
  // Every rank attached and its shard loaded.
  bool ready() const;
  // Called (from a gRPC thread) whenever a worker attaches, becomes ready or goes away.
  void set_on_change(std::function<void()> f) { on_change_ = std::move(f); }

  // Sends a message to every worker. UNAVAILABLE if the group is not complete.
  absl::Status SendToAll(const strata::v1::CoordinatorMessage& message);
  // Waits for the result of `step_id`. UNAVAILABLE if a worker goes away, DEADLINE_EXCEEDED on timeout.
  absl::StatusOr<strata::v1::StepResult> WaitResult(uint64_t step_id, absl::Duration timeout);
  // Tells every worker to exit and stops accepting new ones.
  void Shutdown(const std::string& reason);
  // Disconnects every attached worker (the group is broken: one died or hung); new workers may
  // attach afterwards.
  void DropAll(const std::string& reason);

  std::vector<strata::v1::WorkerStatus> Status() const;

 private:
  using Stream = grpc::ServerReaderWriter<strata::v1::CoordinatorMessage, strata::v1::WorkerMessage>;
  struct Worker {
    Stream* stream = nullptr;  // null when not attached
    grpc::ServerContext* context = nullptr;
    std::mutex write_mu;       // one writer at a time on a stream
    strata::v1::Hello hello;
    bool ready = false;
    uint64_t resident_bytes = 0;
    strata::v1::RankStats stats;  // the latest figures it sent
  };
  void Notify();

  const strata::v1::Assignment assignment_;
  const int world_;
  const int result_rank_;  // last stage, tensor rank 0
  mutable std::mutex mu_;
  std::condition_variable results_cv_;
  std::vector<Worker> workers_;  // by rank
  std::deque<strata::v1::StepResult> results_;
  uint64_t generation_ = 0;  // bumped when a worker goes away, to fail waits
  bool shutting_down_ = false;
  std::function<void()> on_change_;
  std::string join_token_;
};

}  // namespace strata::coordinator
