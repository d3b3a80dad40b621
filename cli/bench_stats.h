// The arithmetic and the reports of `strata bench`, kept apart from the gRPC code so they can be
// tested on hand-computed values: percentiles, latency summaries, goodput under latency targets,
// the error tally, the JSON and table renderings, and the parsing of the bench's value flags
// (length ranges, --goodput, --prompts-file).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace strata::cli::bench {

// The p-th percentile (0 <= p <= 100) of ascending `sorted`, by linear interpolation between the
// closest ranks (numpy's default, as in vLLM's benchmark_serving): with h = (n - 1) * p / 100,
// sorted[floor(h)] + (h - floor(h)) * (sorted[floor(h) + 1] - sorted[floor(h)]). NaN when empty.
double Percentile(const std::vector<double>& sorted, double p);

// mean, p50, p90, p99, min, max of a sample; every statistic NaN when count == 0.
struct Summary {
  int64_t count = 0;
  double mean, p50, p90, p99, min, max;
};
Summary Summarize(std::vector<double> values);

// An inclusive range of token counts: "N" (min = max = N) or "A:B" (uniform in [A, B]), A >= 1.
struct LengthRange {
  int64_t min = 0, max = 0;
};
absl::StatusOr<LengthRange> ParseLengthRange(const std::string& flag, const std::string& value);

// Latency targets (service-level objectives) for goodput, in seconds; absent = no target.
// Parsed from "ttft=MS,tpot=MS,e2e=MS" (any subset, milliseconds; ':' works for '=', "e2el"
// for "e2e", as in vLLM's --goodput).
struct GoodputTargets {
  std::optional<double> ttft_s, tpot_s, e2e_s;
  bool empty() const { return !ttft_s && !tpot_s && !e2e_s; }
};
absl::StatusOr<GoodputTargets> ParseGoodput(const std::string& value);

// One prompt of --prompts-file. Lines that start with '{' are JSON objects {"prompt": "...",
// "max_tokens": N} (max_tokens optional); any other non-empty line is a text prompt. Empty lines
// are skipped. `name` (the file) is used in error messages with the line number.
struct PromptEntry {
  std::string text;
  int64_t max_tokens = 0;  // 0: --output-tokens applies
};
absl::StatusOr<std::vector<PromptEntry>> ParsePrompts(const std::string& contents, const std::string& name);

// The outcome of one request, as measured by the client (seconds, from steady_clock).
struct RequestResult {
  bool ok = false;            // OK status and a finish reason
  std::string code = "OK";    // gRPC status code name when !ok (or NO_FINISH_REASON)
  std::string error;          // the status message when !ok
  int64_t prompt_tokens = 0;  // from the final usage
  int64_t output_tokens = 0;  // from the final usage; tokens received when there is none
  double ttft_s = -1;         // send to the first response carrying a token; < 0: none arrived
  double e2e_s = 0;           // send to the end of the call
  std::vector<double> itl_s;  // gaps between successive responses carrying tokens
};

// The whole run. Latencies, token totals and throughputs count the succeeded requests only.
struct Report {
  int64_t sent = 0, succeeded = 0, failed = 0;
  std::map<std::string, int64_t> failed_by_code;
  std::map<std::string, std::string> error_examples;  // the first message seen per code
  double duration_s = 0;
  int64_t prompt_tokens_total = 0, output_tokens_total = 0;
  double requests_per_s = 0, output_tokens_per_s = 0, total_tokens_per_s = 0;
  // ttft: per request. itl: every gap of every request, pooled. tpot: per request with at least
  // two output tokens, (e2e - ttft) / (output_tokens - 1). e2e: per request.
  Summary ttft, itl, tpot, e2e;
  GoodputTargets targets;
  int64_t good = 0;                 // succeeded requests meeting every target
  double goodput_requests_per_s = 0;  // good / duration
  double goodput_fraction = 0;        // good / sent
};
// A request with a single output token has no TPOT and meets any TPOT target.
Report Aggregate(const std::vector<RequestResult>& results, double duration_s, const GoodputTargets& targets);

// The report as one JSON object: `config` (given by the caller) first, then counts, duration_s,
// requests_per_s, output_tokens_per_s, total_tokens_per_s, prompt_tokens_total,
// output_tokens_total, ttft_s / itl_s / tpot_s / e2e_s {count, mean, p50, p90, p99, min, max}
// (null statistics when there is no sample), goodput {targets, good, requests_per_s, fraction}.
nlohmann::ordered_json ReportJson(const Report& report, const nlohmann::ordered_json& config);

// The report as an aligned table for people; `header` lines (label, value) come first.
std::string ReportTable(const Report& report, const std::vector<std::pair<std::string, std::string>>& header);

}  // namespace strata::cli::bench
