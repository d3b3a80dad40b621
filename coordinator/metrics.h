// The coordinator's Prometheus metrics: request latencies (histograms), token and failure
// counters, and, at scrape time, the scheduler's gauges and every worker rank's figures. Rendered
// in the Prometheus text exposition format (version 0.0.4). Names follow vLLM's where they exist
// (`strata:` instead of `vllm:`), so dashboards carry over.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "strata/v1/generation.pb.h"

namespace strata::coordinator {

// Cumulative buckets with upper bounds `bounds` (ascending) plus +Inf. Not thread-safe alone.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // `name`_bucket{le=...}, `name`_sum and `name`_count lines.
  void Render(const std::string& name, std::string* out) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// What the scheduler and the workers look like at scrape time.
struct MetricsSnapshot {
  int32_t running = 0, waiting = 0, kv_blocks_total = 0, kv_blocks_free = 0;
  uint64_t preemptions = 0, steps = 0;
  std::vector<strata::v1::WorkerStatus> workers;
};

class Metrics {
 public:
  Metrics();

  // Request timings, in seconds, from the serving loop.
  void ObserveQueueTime(double s);
  void ObserveEndToEnd(double s);
  // One streamed token, `since` seconds after the request arrived (its first token, which also
  // counts the request's `prompt_tokens`) or after its previous token. One lock per token.
  void ObserveToken(bool first, double since, int64_t prompt_tokens);
  // A Generate call that ended with this gRPC status code name ("INVALID_ARGUMENT", ...).
  void CountFailure(const std::string& code);
  void CountSuccess();

  std::string Render(const MetricsSnapshot& snapshot) const;

 private:
  mutable std::mutex mu_;
  Histogram ttft_, itl_, e2e_, queue_;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0, successes_ = 0;
  std::map<std::string, uint64_t> failures_;
};

}  // namespace strata::coordinator
