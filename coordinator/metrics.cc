#include "coordinator/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace strata::coordinator {
namespace {

// Prometheus floats: shortest round-trip form, +Inf/-Inf/NaN spelled as the format wants.
std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return absl::StrFormat("%.15g", v);
}

// A label value with \, " and newline escaped.
std::string Label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Header(std::string* out, const std::string& name, const char* type, const char* help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// Latency buckets (seconds) as vLLM uses them for its request histograms.
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                          0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
const std::vector<double> kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                         0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const std::vector<double> kRequestBuckets = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,  15.0,
                                             20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0};

// The codes a Generate call can end with, reported from the start at 0 so rates work at once.
const char* const kFailureCodes[] = {"CANCELLED",          "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED",
                                     "FAILED_PRECONDITION", "INTERNAL",         "UNAVAILABLE",       "UNAUTHENTICATED"};

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();  // first bound >= v
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::Render(const std::string& name, std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(out, name, "_bucket{le=\"", Num(bounds_[i]), "\"} ", cumulative, "\n");
  }
  absl::StrAppend(out, name, "_bucket{le=\"+Inf\"} ", count_, "\n");
  absl::StrAppend(out, name, "_sum ", Num(sum_), "\n", name, "_count ", count_, "\n");
}

Metrics::Metrics() : ttft_(kTtftBuckets), itl_(kItlBuckets), e2e_(kRequestBuckets), queue_(kRequestBuckets) {
  for (const char* code : kFailureCodes) failures_[code] = 0;
}

void Metrics::ObserveQueueTime(double s) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.Observe(s);
}
void Metrics::ObserveEndToEnd(double s) {
  std::lock_guard<std::mutex> lock(mu_);
  e2e_.Observe(s);
}
void Metrics::ObserveToken(bool first, double since, int64_t prompt_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  if (first) {
    ttft_.Observe(since);
    prompt_tokens_ += static_cast<uint64_t>(prompt_tokens);
  } else {
    itl_.Observe(since);
  }
  ++generation_tokens_;
}
void Metrics::CountFailure(const std::string& code) {
  std::lock_guard<std::mutex> lock(mu_);
  ++failures_[code];
}
void Metrics::CountSuccess() {
  std::lock_guard<std::mutex> lock(mu_);
  ++successes_;
}

std::string Metrics::Render(const MetricsSnapshot& snap) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Header(&out, "strata:time_to_first_token_seconds", "histogram",
           "Time from a request's arrival to its first generated token.");
    ttft_.Render("strata:time_to_first_token_seconds", &out);
    Header(&out, "strata:inter_token_latency_seconds", "histogram", "Time between consecutive tokens of a request.");
    itl_.Render("strata:inter_token_latency_seconds", &out);
    Header(&out, "strata:e2e_request_latency_seconds", "histogram",
           "Time from a request's arrival to its last token, for requests that finished.");
    e2e_.Render("strata:e2e_request_latency_seconds", &out);
    Header(&out, "strata:request_queue_time_seconds", "histogram",
           "Time a request waited before its first step was scheduled.");
    queue_.Render("strata:request_queue_time_seconds", &out);
    Header(&out, "strata:prompt_tokens_total", "counter", "Prompt tokens processed (counted at the first token).");
    absl::StrAppend(&out, "strata:prompt_tokens_total ", prompt_tokens_, "\n");
    Header(&out, "strata:generation_tokens_total", "counter", "Tokens generated and streamed.");
    absl::StrAppend(&out, "strata:generation_tokens_total ", generation_tokens_, "\n");
    Header(&out, "strata:request_success_total", "counter", "Generate calls that finished with OK.");
    absl::StrAppend(&out, "strata:request_success_total ", successes_, "\n");
    Header(&out, "strata:request_failures_total", "counter", "Generate calls that ended with an error, by gRPC code.");
    for (const auto& [code, n] : failures_) {
      absl::StrAppend(&out, "strata:request_failures_total{code=\"", Label(code), "\"} ", n, "\n");
    }
  }
  Header(&out, "strata:num_preemptions_total", "counter", "Sequences preempted (KV blocks ran out) and recomputed.");
  absl::StrAppend(&out, "strata:num_preemptions_total ", snap.preemptions, "\n");
  Header(&out, "strata:num_steps_total", "counter", "Step plans executed by the workers.");
  absl::StrAppend(&out, "strata:num_steps_total ", snap.steps, "\n");
  Header(&out, "strata:num_requests_running", "gauge", "Requests in the running batch.");
  absl::StrAppend(&out, "strata:num_requests_running ", snap.running, "\n");
  Header(&out, "strata:num_requests_waiting", "gauge", "Requests queued, waiting to run.");
  absl::StrAppend(&out, "strata:num_requests_waiting ", snap.waiting, "\n");
  Header(&out, "strata:kv_cache_usage_ratio", "gauge", "Fraction of KV-cache blocks in use (0 to 1).");
  const double usage =
      snap.kv_blocks_total > 0 ? 1.0 - static_cast<double>(snap.kv_blocks_free) / snap.kv_blocks_total : 0.0;
  absl::StrAppend(&out, "strata:kv_cache_usage_ratio ", Num(usage), "\n");

  // Per worker rank, labelled with where it sits in the layout and the host it runs on.
  struct RankMetric {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const strata::v1::WorkerStatus&);
  };
  const RankMetric rank_metrics[] = {
      {"strata:worker_up", "gauge", "1 when the rank is attached and has loaded its shard.",
       [](const strata::v1::WorkerStatus& w) { return w.ready() ? 1.0 : 0.0; }},
      {"strata:worker_steps_total", "counter", "Steps the rank ran since it attached.",
       [](const strata::v1::WorkerStatus& w) { return static_cast<double>(w.steps()); }},
      {"strata:worker_step_compute_seconds_total", "counter", "Seconds of step time the rank spent computing.",
       [](const strata::v1::WorkerStatus& w) { return w.compute_seconds(); }},
      {"strata:worker_step_communication_seconds_total", "counter",
       "Seconds of step time the rank spent in collectives and pipeline send/recv.",
       [](const strata::v1::WorkerStatus& w) { return w.comm_seconds(); }},
      {"strata:worker_last_step_seconds", "gauge", "Wall time of the rank's latest step.",
       [](const strata::v1::WorkerStatus& w) { return w.last_step_seconds(); }},
      {"strata:worker_resident_memory_bytes", "gauge", "Resident memory of the rank's process.",
       [](const strata::v1::WorkerStatus& w) { return static_cast<double>(w.resident_bytes()); }},
  };
  for (const RankMetric& m : rank_metrics) {
    Header(&out, m.name, m.type, m.help);
    for (const strata::v1::WorkerStatus& w : snap.workers) {
      absl::StrAppend(&out, m.name, "{rank=\"", w.rank(), "\",stage=\"", w.stage(), "\",tp_rank=\"", w.tp_rank(),
                      "\",host=\"", Label(w.host()), "\"} ", Num(m.value(w)), "\n");
    }
  }
  return out;
}

}  // namespace strata::coordinator
