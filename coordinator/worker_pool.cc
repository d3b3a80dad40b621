#include "coordinator/worker_pool.h"

#include "absl/strings/str_cat.h"
#include "coordinator/security.h"

namespace strata::coordinator {

using strata::v1::CoordinatorMessage;
using strata::v1::WorkerMessage;

WorkerPool::WorkerPool(const strata::v1::Assignment& assignment)
    : assignment_(assignment),
      world_(assignment.tp() * assignment.pp()),
      result_rank_((assignment.pp() - 1) * assignment.tp()),
      workers_(world_) {}

bool WorkerPool::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return false;
  for (const Worker& w : workers_)
    if (w.stream == nullptr || !w.ready) return false;
  return true;
}

void WorkerPool::Notify() {
  if (on_change_) on_change_();
}

grpc::Status WorkerPool::Attach(grpc::ServerContext* context, Stream* stream) {
  if (!join_token_.empty() && !HasBearer(*context, join_token_)) {
    const bool missing = context->client_metadata().count("authorization") == 0;
    const std::string why = missing ? "no join token: start the worker with the cluster's join token"
                                    : "wrong join token";
    std::fprintf(stderr, "strata-coordinator: refused a worker from %s: %s\n", context->peer().c_str(), why.c_str());
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, why);
  }
  WorkerMessage in;
  if (!stream->Read(&in) || !in.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a Hello");
  }
  const strata::v1::Hello hello = in.hello();
  auto reject = [&](grpc::StatusCode code, const std::string& why) {
    CoordinatorMessage out;
    out.mutable_reject()->set_reason(why);
    stream->Write(out);
    std::fprintf(stderr, "strata-coordinator: refused worker rank %d from %s: %s\n", hello.rank(),
                 context->peer().c_str(), why.c_str());
    return grpc::Status(code, why);
  };
  if (hello.protocol_version() != strata::v1::PROTOCOL_VERSION_CURRENT) {
    return reject(grpc::StatusCode::FAILED_PRECONDITION,
                  absl::StrCat("protocol version ", hello.protocol_version(), " is not this coordinator's ",
                               static_cast<int>(strata::v1::PROTOCOL_VERSION_CURRENT)));
  }
  if (hello.world_size() != world_) {
    return reject(grpc::StatusCode::FAILED_PRECONDITION,
                  absl::StrCat("worker group has ", hello.world_size(), " ranks; this coordinator serves tp=",
                               assignment_.tp(), " x pp=", assignment_.pp(), " = ", world_));
  }
  if (hello.rank() < 0 || hello.rank() >= world_) {
    return reject(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("rank ", hello.rank(), " is outside [0, ", world_, ")"));
  }
  Worker& w = workers_[hello.rank()];
  bool taken = false, closing = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing = shutting_down_;
    taken = w.stream != nullptr;
    if (!closing && !taken) {
      w.stream = stream;
      w.context = context;
      w.hello = hello;
      w.ready = false;
      w.stats.Clear();
    }
  }
  if (closing) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator is shutting down");
  if (taken) return reject(grpc::StatusCode::ALREADY_EXISTS, absl::StrCat("rank ", hello.rank(), " is already attached"));
  std::fprintf(stderr, "strata-coordinator: worker rank %d attached from %s (%s)\n", hello.rank(),
               hello.host().c_str(), context->peer().c_str());
  {
    CoordinatorMessage out;
    *out.mutable_assignment() = assignment_;
    std::lock_guard<std::mutex> lock(w.write_mu);
    stream->Write(out);
  }
  Notify();
  while (stream->Read(&in)) {
    if (in.has_ready()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        w.ready = true;
        w.resident_bytes = in.ready().resident_bytes();
      }
      std::fprintf(stderr, "strata-coordinator: worker rank %d ready\n", hello.rank());
      Notify();
    } else if (in.has_result()) {
      std::lock_guard<std::mutex> lock(mu_);
      w.stats = in.result().stats();
      if (w.stats.resident_bytes() > 0) w.resident_bytes = w.stats.resident_bytes();
      if (hello.rank() == result_rank_) {
        results_.push_back(std::move(*in.mutable_result()));
        results_cv_.notify_all();
      }
    }
  }
  {
    std::lock_guard<std::mutex> write_lock(w.write_mu);  // no writer may still be using the stream
    std::lock_guard<std::mutex> lock(mu_);
    w.stream = nullptr;
    w.context = nullptr;
    w.ready = false;
    ++generation_;
    results_cv_.notify_all();
  }
  std::fprintf(stderr, "strata-coordinator: worker rank %d went away\n", hello.rank());
  Notify();
  return grpc::Status::OK;
}

absl::Status WorkerPool::SendToAll(const CoordinatorMessage& message) {
  for (int r = 0; r < world_; ++r) {
    Worker& w = workers_[r];
    std::lock_guard<std::mutex> write_lock(w.write_mu);
    Stream* s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      s = w.stream;
    }
    if (s == nullptr || !s->Write(message)) {
      return absl::UnavailableError(absl::StrCat("worker rank ", r, " is not attached"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<strata::v1::StepResult> WorkerPool::WaitResult(uint64_t step_id, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t generation = generation_;
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  for (;;) {
    while (!results_.empty()) {
      strata::v1::StepResult r = std::move(results_.front());
      results_.pop_front();
      if (r.step_id() == step_id) return r;  // older results (of failed steps) are dropped
    }
    if (generation_ != generation || shutting_down_) return absl::UnavailableError("a worker went away during the step");
    if (results_cv_.wait_until(lock, deadline) == std::cv_status::timeout && results_.empty()) {
      return absl::DeadlineExceededError(absl::StrCat("no result for step ", step_id, " within ",
                                                      absl::FormatDuration(timeout)));
    }
  }
}

void WorkerPool::Shutdown(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutting_down_ = true;
    results_cv_.notify_all();
  }
  CoordinatorMessage m;
  m.mutable_shutdown()->set_reason(reason);
  for (Worker& w : workers_) {
    std::lock_guard<std::mutex> write_lock(w.write_mu);
    Stream* s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      s = w.stream;
    }
    if (s != nullptr) s->Write(m);
  }
}

void WorkerPool::DropAll(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Worker& w : workers_) {
    if (w.context != nullptr) w.context->TryCancel();  // its Attach call returns and frees the place
  }
  ++generation_;
  results_cv_.notify_all();
  std::fprintf(stderr, "strata-coordinator: disconnecting the worker group: %s\n", reason.c_str());
}

std::vector<strata::v1::WorkerStatus> WorkerPool::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<strata::v1::WorkerStatus> out;
  for (int r = 0; r < world_; ++r) {
    const Worker& w = workers_[r];
    strata::v1::WorkerStatus s;
    s.set_rank(r);
    s.set_stage(r / assignment_.tp());
    s.set_tp_rank(r % assignment_.tp());
    if (w.stream != nullptr) {
      s.set_host(w.hello.host());
      s.set_device(w.hello.device());
    }
    s.set_ready(w.stream != nullptr && w.ready);
    s.set_resident_bytes(w.resident_bytes);
    s.set_steps(w.stats.steps());
    s.set_step_seconds(w.stats.step_seconds());
    s.set_compute_seconds(w.stats.compute_seconds());
    s.set_comm_seconds(w.stats.comm_seconds());
    s.set_last_step_seconds(w.stats.last_step_seconds());
    out.push_back(s);
  }
  return out;
}

}  // namespace strata::coordinator
