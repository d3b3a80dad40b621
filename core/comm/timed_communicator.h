// A Communicator that forwards to another and adds up the wall time spent in its calls, for
// benchmarks and per-rank metrics ("time per step spent in communication").
#pragma once

#include <chrono>

#include "core/comm/communicator.h"

namespace strata {

class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(Communicator* inner) : inner_(inner) {}

  double seconds() const { return seconds_; }
  int64_t calls() const { return calls_; }

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  absl::Status AllReduceSum(float* data, int64_t count) override {
    return Time([&] { return inner_->AllReduceSum(data, count); });
  }
  absl::Status AllGather(const void* send, void* recv, int64_t bytes) override {
    return Time([&] { return inner_->AllGather(send, recv, bytes); });
  }
  absl::Status Broadcast(void* data, int64_t bytes, int root) override {
    return Time([&] { return inner_->Broadcast(data, bytes, root); });
  }
  absl::Status Send(const void* data, int64_t bytes, int peer, int tag) override {
    return Time([&] { return inner_->Send(data, bytes, peer, tag); });
  }
  absl::Status Recv(void* data, int64_t bytes, int peer, int tag) override {
    return Time([&] { return inner_->Recv(data, bytes, peer, tag); });
  }
  absl::Status Barrier() override {
    return Time([&] { return inner_->Barrier(); });
  }

 private:
  template <typename F>
  absl::Status Time(F f) {
    if (inner_->size() == 1) return f();  // returns at once: not worth a clock read
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = f();
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++calls_;
    return s;
  }

  Communicator* inner_;
  double seconds_ = 0;
  int64_t calls_ = 0;
};

}  // namespace strata
