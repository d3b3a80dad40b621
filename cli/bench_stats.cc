#include "cli/bench_stats.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace strata::cli::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE) return false;
  *out = x;
  return true;
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(s.c_str(), &end);
  if (*end != '\0' || errno == ERANGE || !std::isfinite(x)) return false;
  *out = x;
  return true;
}

nlohmann::ordered_json Number(double x) { return std::isfinite(x) ? nlohmann::ordered_json(x) : nlohmann::ordered_json(nullptr); }

nlohmann::ordered_json SummaryJson(const Summary& s) {
  return {{"count", s.count}, {"mean", Number(s.mean)}, {"p50", Number(s.p50)}, {"p90", Number(s.p90)},
          {"p99", Number(s.p99)}, {"min", Number(s.min)}, {"max", Number(s.max)}};
}

std::string Ms(double seconds) { return std::isfinite(seconds) ? absl::StrFormat("%.2f", seconds * 1e3) : "-"; }

}  // namespace

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return kNaN;
  const double h = (static_cast<double>(sorted.size()) - 1) * std::clamp(p, 0.0, 100.0) / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

Summary Summarize(std::vector<double> values) {
  Summary s;
  s.count = static_cast<int64_t>(values.size());
  if (values.empty()) {
    s.mean = s.p50 = s.p90 = s.p99 = s.min = s.max = kNaN;
    return s;
  }
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  s.p50 = Percentile(values, 50);
  s.p90 = Percentile(values, 90);
  s.p99 = Percentile(values, 99);
  s.min = values.front();
  s.max = values.back();
  return s;
}

absl::StatusOr<LengthRange> ParseLengthRange(const std::string& flag, const std::string& value) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " expects N or A:B (token counts, 1 <= A <= B), got '",
                                                   value, "'"));
  };
  LengthRange r;
  const size_t colon = value.find(':');
  if (colon == std::string::npos) {
    if (!ParseInt(value, &r.min)) return bad();
    r.max = r.min;
  } else if (!ParseInt(value.substr(0, colon), &r.min) || !ParseInt(value.substr(colon + 1), &r.max)) {
    return bad();
  }
  if (r.min < 1 || r.max < r.min || r.max > std::numeric_limits<int32_t>::max()) return bad();
  return r;
}

absl::StatusOr<GoodputTargets> ParseGoodput(const std::string& value) {
  GoodputTargets t;
  if (value.empty()) return absl::InvalidArgumentError("--goodput expects ttft=MS,tpot=MS,e2e=MS (any of them), got ''");
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    const size_t sep = item.find_first_of("=:");
    const std::string key(item.substr(0, sep));
    double ms = 0;
    if (sep == absl::string_view::npos || !ParseDouble(std::string(item.substr(sep + 1)), &ms) || !(ms > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--goodput expects ttft=MS,tpot=MS,e2e=MS (positive milliseconds), got '", item, "' in '", value, "'"));
    }
    std::optional<double>* slot = key == "ttft"                   ? &t.ttft_s
                                  : key == "tpot"                 ? &t.tpot_s
                                  : key == "e2e" || key == "e2el" ? &t.e2e_s
                                                                  : nullptr;
    if (slot == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--goodput: unknown target '", key, "' (the targets are ttft, tpot and e2e, in milliseconds)"));
    }
    if (slot->has_value()) return absl::InvalidArgumentError(absl::StrCat("--goodput: '", key, "' is given twice"));
    *slot = ms / 1e3;
  }
  return t;
}

absl::StatusOr<std::vector<PromptEntry>> ParsePrompts(const std::string& contents, const std::string& name) {
  std::vector<PromptEntry> prompts;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_no;
    absl::ConsumeSuffix(&line, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(name, ":", line_no, ": ");
    PromptEntry p;
    if (absl::StripLeadingAsciiWhitespace(line).substr(0, 1) != "{") {
      p.text = std::string(line);
      prompts.push_back(std::move(p));
      continue;
    }
    const nlohmann::ordered_json j = nlohmann::ordered_json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "not a JSON object (lines starting with '{' are JSON)"));
    }
    auto prompt = j.find("prompt");
    if (prompt == j.end() || !prompt->is_string() || prompt->get<std::string>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "\"prompt\" must be a non-empty string"));
    }
    p.text = prompt->get<std::string>();
    if (auto mt = j.find("max_tokens"); mt != j.end()) {
      if (!mt->is_number_integer() || mt->get<int64_t>() < 1 || mt->get<int64_t>() > std::numeric_limits<int32_t>::max()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "\"max_tokens\" must be a positive integer"));
      }
      p.max_tokens = mt->get<int64_t>();
    }
    prompts.push_back(std::move(p));
  }
  if (prompts.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " has no prompts"));
  return prompts;
}

Report Aggregate(const std::vector<RequestResult>& results, double duration_s, const GoodputTargets& targets) {
  Report r;
  r.duration_s = duration_s;
  r.targets = targets;
  std::vector<double> ttft, itl, tpot, e2e;
  for (const RequestResult& x : results) {
    ++r.sent;
    if (!x.ok) {
      ++r.failed;
      ++r.failed_by_code[x.code];
      r.error_examples.emplace(x.code, x.error);
      continue;
    }
    ++r.succeeded;
    r.prompt_tokens_total += x.prompt_tokens;
    r.output_tokens_total += x.output_tokens;
    if (x.ttft_s >= 0) ttft.push_back(x.ttft_s);
    itl.insert(itl.end(), x.itl_s.begin(), x.itl_s.end());
    std::optional<double> request_tpot;
    if (x.output_tokens >= 2 && x.ttft_s >= 0) {
      request_tpot = (x.e2e_s - x.ttft_s) / static_cast<double>(x.output_tokens - 1);
      tpot.push_back(*request_tpot);
    }
    e2e.push_back(x.e2e_s);
    const bool good = (!targets.ttft_s || (x.ttft_s >= 0 && x.ttft_s <= *targets.ttft_s)) &&
                      (!targets.tpot_s || !request_tpot || *request_tpot <= *targets.tpot_s) &&
                      (!targets.e2e_s || x.e2e_s <= *targets.e2e_s);
    r.good += good;
  }
  r.ttft = Summarize(std::move(ttft));
  r.itl = Summarize(std::move(itl));
  r.tpot = Summarize(std::move(tpot));
  r.e2e = Summarize(std::move(e2e));
  if (duration_s > 0) {
    r.requests_per_s = static_cast<double>(r.succeeded) / duration_s;
    r.output_tokens_per_s = static_cast<double>(r.output_tokens_total) / duration_s;
    r.total_tokens_per_s = static_cast<double>(r.prompt_tokens_total + r.output_tokens_total) / duration_s;
    r.goodput_requests_per_s = static_cast<double>(r.good) / duration_s;
  }
  r.goodput_fraction = r.sent > 0 ? static_cast<double>(r.good) / static_cast<double>(r.sent) : 0;
  return r;
}

nlohmann::ordered_json ReportJson(const Report& r, const nlohmann::ordered_json& config) {
  nlohmann::ordered_json by_code = nlohmann::ordered_json::object();
  for (const auto& [code, n] : r.failed_by_code) by_code[code] = n;
  nlohmann::ordered_json examples = nlohmann::ordered_json::object();
  for (const auto& [code, message] : r.error_examples) examples[code] = message;
  nlohmann::ordered_json targets = nlohmann::ordered_json::object();
  if (r.targets.ttft_s) targets["ttft_s"] = *r.targets.ttft_s;
  if (r.targets.tpot_s) targets["tpot_s"] = *r.targets.tpot_s;
  if (r.targets.e2e_s) targets["e2e_s"] = *r.targets.e2e_s;
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["config"] = config;
  j["counts"] = {{"sent", r.sent},
                 {"succeeded", r.succeeded},
                 {"failed", r.failed},
                 {"failed_by_code", by_code},
                 {"error_examples", examples}};
  j["duration_s"] = r.duration_s;
  j["requests_per_s"] = r.requests_per_s;
  j["output_tokens_per_s"] = r.output_tokens_per_s;
  j["total_tokens_per_s"] = r.total_tokens_per_s;
  j["prompt_tokens_total"] = r.prompt_tokens_total;
  j["output_tokens_total"] = r.output_tokens_total;
  j["ttft_s"] = SummaryJson(r.ttft);
  j["itl_s"] = SummaryJson(r.itl);
  j["tpot_s"] = SummaryJson(r.tpot);
  j["e2e_s"] = SummaryJson(r.e2e);
  j["goodput"] = {{"targets", targets},
                  {"good", r.good},
                  {"requests_per_s", r.goodput_requests_per_s},
                  {"fraction", r.goodput_fraction}};
  return j;
}

std::string ReportTable(const Report& r, const std::vector<std::pair<std::string, std::string>>& header) {
  std::string t = "============================ strata bench ============================\n";
  auto row = [&t](const std::string& label, const std::string& value) {
    absl::StrAppendFormat(&t, "%-34s %s\n", label + ":", value);
  };
  for (const auto& [label, value] : header) row(label, value);
  row("Requests sent", absl::StrCat(r.sent));
  row("Succeeded", absl::StrCat(r.succeeded));
  row("Failed", absl::StrCat(r.failed));
  for (const auto& [code, n] : r.failed_by_code) {
    std::string example = r.error_examples.count(code) ? r.error_examples.at(code) : "";
    if (example.size() > 60) example = example.substr(0, 57) + "...";
    row(absl::StrCat("  ", code), absl::StrCat(n, example.empty() ? "" : absl::StrCat("  (", example, ")")));
  }
  row("Duration (s)", absl::StrFormat("%.3f", r.duration_s));
  row("Prompt tokens (total)", absl::StrCat(r.prompt_tokens_total));
  row("Output tokens (total)", absl::StrCat(r.output_tokens_total));
  row("Request throughput (req/s)", absl::StrFormat("%.2f", r.requests_per_s));
  row("Output token throughput (tok/s)", absl::StrFormat("%.2f", r.output_tokens_per_s));
  row("Total token throughput (tok/s)", absl::StrFormat("%.2f", r.total_tokens_per_s));
  std::string targets;
  if (r.targets.ttft_s) absl::StrAppend(&targets, targets.empty() ? "" : ", ", "TTFT <= ", Ms(*r.targets.ttft_s), " ms");
  if (r.targets.tpot_s) absl::StrAppend(&targets, targets.empty() ? "" : ", ", "TPOT <= ", Ms(*r.targets.tpot_s), " ms");
  if (r.targets.e2e_s) absl::StrAppend(&targets, targets.empty() ? "" : ", ", "E2E <= ", Ms(*r.targets.e2e_s), " ms");
  row("Goodput (req/s)", absl::StrFormat("%.2f  (%.1f%% of requests; %s)", r.goodput_requests_per_s,
                                         100 * r.goodput_fraction, targets.empty() ? "no targets" : targets));
  t += "----------------------------------------------------------------------\n";
  absl::StrAppendFormat(&t, "%-10s %8s %9s %9s %9s %9s %9s %9s\n", "(ms)", "count", "mean", "p50", "p90", "p99", "min",
                        "max");
  auto latency = [&t](const char* name, const Summary& s) {
    absl::StrAppendFormat(&t, "%-10s %8d %9s %9s %9s %9s %9s %9s\n", name, s.count, Ms(s.mean), Ms(s.p50), Ms(s.p90),
                          Ms(s.p99), Ms(s.min), Ms(s.max));
  };
  latency("TTFT", r.ttft);
  latency("ITL", r.itl);
  latency("TPOT", r.tpot);
  latency("E2E", r.e2e);
  t += "======================================================================\n";
  return t;
}

}  // namespace strata::cli::bench
