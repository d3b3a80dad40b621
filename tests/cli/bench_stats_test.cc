// `strata bench`'s statistics and reports against hand-computed values.
#include "cli/bench_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace strata::cli::bench {
namespace {

constexpr double kEps = 1e-12;

TEST(BenchPercentile, InterpolatesLinearlyBetweenClosestRanks) {
  const std::vector<double> x = {1, 2, 3, 4};
  EXPECT_NEAR(Percentile(x, 0), 1, kEps);
  EXPECT_NEAR(Percentile(x, 50), 2.5, kEps);   // h = 1.5
  EXPECT_NEAR(Percentile(x, 90), 3.7, kEps);   // h = 2.7
  EXPECT_NEAR(Percentile(x, 99), 3.97, kEps);  // h = 2.97
  EXPECT_NEAR(Percentile(x, 100), 4, kEps);
  const std::vector<double> tens = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_NEAR(Percentile(tens, 50), 55, kEps);    // h = 4.5
  EXPECT_NEAR(Percentile(tens, 90), 91, kEps);    // h = 8.1
  EXPECT_NEAR(Percentile(tens, 99), 99.1, kEps);  // h = 8.91
  EXPECT_NEAR(Percentile({5}, 99), 5, kEps);
  EXPECT_TRUE(std::isnan(Percentile({}, 50)));
}

TEST(BenchSummary, SortsAndSummarizes) {
  const Summary s = Summarize({4, 1, 3, 2});
  EXPECT_EQ(s.count, 4);
  EXPECT_NEAR(s.mean, 2.5, kEps);
  EXPECT_NEAR(s.p50, 2.5, kEps);
  EXPECT_NEAR(s.p90, 3.7, kEps);
  EXPECT_NEAR(s.p99, 3.97, kEps);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
  const Summary empty = Summarize({});
  EXPECT_EQ(empty.count, 0);
  EXPECT_TRUE(std::isnan(empty.mean) && std::isnan(empty.p50) && std::isnan(empty.max));
}

TEST(BenchFlags, LengthRange) {
  auto one = ParseLengthRange("prompt-tokens", "8");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->min, 8);
  EXPECT_EQ(one->max, 8);
  auto range = ParseLengthRange("prompt-tokens", "4:16");
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(range->min, 4);
  EXPECT_EQ(range->max, 16);
  for (const char* bad : {"0", "5:4", "a", "3:", ":3", "-1", "1:2:3", "", "0:4"}) {
    auto r = ParseLengthRange("prompt-tokens", bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--prompt-tokens"), std::string::npos) << r.status();
  }
}

TEST(BenchFlags, Goodput) {
  auto t = ParseGoodput("ttft=200,tpot=50,e2e=2000");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_NEAR(*t->ttft_s, 0.2, kEps);
  EXPECT_NEAR(*t->tpot_s, 0.05, kEps);
  EXPECT_NEAR(*t->e2e_s, 2.0, kEps);
  auto vllm = ParseGoodput("e2el:1000");
  ASSERT_TRUE(vllm.ok()) << vllm.status();
  EXPECT_FALSE(vllm->ttft_s.has_value());
  EXPECT_NEAR(*vllm->e2e_s, 1.0, kEps);
  for (const char* bad : {"", "ttft", "ttft=0", "foo=1", "ttft=1,ttft=2", "ttft=abc", "ttft=-5"}) {
    auto r = ParseGoodput(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--goodput"), std::string::npos) << r.status();
  }
}

TEST(BenchFlags, PromptsFile) {
  auto p = ParsePrompts("hello world\n\n{\"prompt\": \"hi\", \"max_tokens\": 7}\r\n  {\"prompt\":\"x\"}\n", "f.txt");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].text, "hello world");
  EXPECT_EQ((*p)[0].max_tokens, 0);
  EXPECT_EQ((*p)[1].text, "hi");
  EXPECT_EQ((*p)[1].max_tokens, 7);
  EXPECT_EQ((*p)[2].text, "x");
  EXPECT_EQ((*p)[2].max_tokens, 0);
  auto not_json = ParsePrompts("ok\n{not json\n", "f.txt");
  ASSERT_FALSE(not_json.ok());
  EXPECT_NE(not_json.status().message().find("f.txt:2:"), std::string::npos) << not_json.status();
  EXPECT_FALSE(ParsePrompts("{\"prompt\": 3}", "f").ok());
  EXPECT_FALSE(ParsePrompts("{\"prompt\": \"a\", \"max_tokens\": 0}", "f").ok());
  EXPECT_FALSE(ParsePrompts("{\"prompt\": \"a\", \"max_tokens\": \"9\"}", "f").ok());
  auto empty = ParsePrompts("\n \n", "f");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no prompts"), std::string::npos);
}

RequestResult Ok(int64_t prompt, int64_t output, double ttft, double e2e, std::vector<double> itl) {
  RequestResult r;
  r.ok = true;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  r.ttft_s = ttft;
  r.e2e_s = e2e;
  r.itl_s = std::move(itl);
  return r;
}

RequestResult Failed(const std::string& code, const std::string& message) {
  RequestResult r;
  r.code = code;
  r.error = message;
  r.output_tokens = 2;  // tokens of failed requests count nowhere
  r.ttft_s = 0.01;
  r.e2e_s = 9;
  return r;
}

// A: TPOT (0.5 - 0.1) / 4 = 0.1. B: one token, no TPOT. C: TPOT (1.0 - 0.2) / 2 = 0.4.
std::vector<RequestResult> Sample() {
  return {Ok(10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1}),
          Ok(10, 1, 0.3, 0.3, {}),
          Ok(20, 3, 0.2, 1.0, {0.4, 0.4}),
          Failed("DEADLINE_EXCEEDED", "deadline exceeded"),
          Failed("INVALID_ARGUMENT", "max_new_tokens must be in [1, 8], got 9"),
          Failed("DEADLINE_EXCEEDED", "a later message")};
}

TEST(BenchAggregate, CountsThroughputAndLatencies) {
  GoodputTargets targets;
  targets.ttft_s = 0.25;
  targets.tpot_s = 0.2;
  const Report r = Aggregate(Sample(), 2.0, targets);
  EXPECT_EQ(r.sent, 6);
  EXPECT_EQ(r.succeeded, 3);
  EXPECT_EQ(r.failed, 3);
  EXPECT_EQ(r.failed_by_code, (std::map<std::string, int64_t>{{"DEADLINE_EXCEEDED", 2}, {"INVALID_ARGUMENT", 1}}));
  EXPECT_EQ(r.error_examples.at("DEADLINE_EXCEEDED"), "deadline exceeded");  // the first one
  EXPECT_EQ(r.prompt_tokens_total, 40);
  EXPECT_EQ(r.output_tokens_total, 9);
  EXPECT_NEAR(r.requests_per_s, 1.5, kEps);
  EXPECT_NEAR(r.output_tokens_per_s, 4.5, kEps);
  EXPECT_NEAR(r.total_tokens_per_s, 24.5, kEps);
  // TTFT {0.1, 0.2, 0.3}.
  EXPECT_EQ(r.ttft.count, 3);
  EXPECT_NEAR(r.ttft.mean, 0.2, kEps);
  EXPECT_NEAR(r.ttft.p50, 0.2, kEps);
  EXPECT_NEAR(r.ttft.p90, 0.28, kEps);
  EXPECT_NEAR(r.ttft.p99, 0.298, kEps);
  // ITL pooled {0.1 x4, 0.4 x2}.
  EXPECT_EQ(r.itl.count, 6);
  EXPECT_NEAR(r.itl.mean, 0.2, kEps);
  EXPECT_NEAR(r.itl.p50, 0.1, kEps);
  EXPECT_NEAR(r.itl.p90, 0.4, kEps);
  EXPECT_NEAR(r.itl.min, 0.1, kEps);
  EXPECT_NEAR(r.itl.max, 0.4, kEps);
  // TPOT {0.1, 0.4}: B has a single token.
  EXPECT_EQ(r.tpot.count, 2);
  EXPECT_NEAR(r.tpot.mean, 0.25, kEps);
  EXPECT_NEAR(r.tpot.p50, 0.25, kEps);
  EXPECT_NEAR(r.tpot.p90, 0.37, kEps);
  // E2E {0.3, 0.5, 1.0}.
  EXPECT_EQ(r.e2e.count, 3);
  EXPECT_NEAR(r.e2e.mean, 0.6, kEps);
  EXPECT_NEAR(r.e2e.p50, 0.5, kEps);
  EXPECT_NEAR(r.e2e.p90, 0.9, kEps);
  EXPECT_NEAR(r.e2e.max, 1.0, kEps);
  // Goodput: A meets both targets, B misses TTFT, C misses TPOT.
  EXPECT_EQ(r.good, 1);
  EXPECT_NEAR(r.goodput_requests_per_s, 0.5, kEps);
  EXPECT_NEAR(r.goodput_fraction, 1.0 / 6, kEps);
}

TEST(BenchAggregate, GoodputTargets) {
  EXPECT_EQ(Aggregate(Sample(), 2.0, {}).good, 3);  // no targets: every success
  EXPECT_NEAR(Aggregate(Sample(), 2.0, {}).goodput_fraction, 0.5, kEps);
  GoodputTargets e2e;
  e2e.e2e_s = 0.5;  // inclusive: A (0.5) and B (0.3)
  EXPECT_EQ(Aggregate(Sample(), 2.0, e2e).good, 2);
  GoodputTargets tpot;
  tpot.tpot_s = 0.01;  // only B, which has no TPOT
  EXPECT_EQ(Aggregate(Sample(), 2.0, tpot).good, 1);
}

TEST(BenchAggregate, NothingSucceeded) {
  const Report r = Aggregate({Failed("UNAVAILABLE", "down")}, 0.5, {});
  EXPECT_EQ(r.sent, 1);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.succeeded, 0);
  EXPECT_EQ(r.output_tokens_total, 0);
  EXPECT_EQ(r.requests_per_s, 0);
  EXPECT_EQ(r.ttft.count, 0);
  EXPECT_EQ(r.goodput_fraction, 0);
}

TEST(BenchReport, JsonHasEveryField) {
  GoodputTargets targets;
  targets.ttft_s = 0.25;
  const Report r = Aggregate(Sample(), 2.0, targets);
  const nlohmann::ordered_json j = ReportJson(r, {{"server", "h:1"}});
  EXPECT_EQ(j.begin().key(), "config");
  EXPECT_EQ(j["config"]["server"], "h:1");
  EXPECT_EQ(j["counts"]["sent"], 6);
  EXPECT_EQ(j["counts"]["succeeded"], 3);
  EXPECT_EQ(j["counts"]["failed"], 3);
  EXPECT_EQ(j["counts"]["failed_by_code"]["DEADLINE_EXCEEDED"], 2);
  EXPECT_EQ(j["counts"]["failed_by_code"]["INVALID_ARGUMENT"], 1);
  EXPECT_EQ(j["counts"]["error_examples"]["INVALID_ARGUMENT"], "max_new_tokens must be in [1, 8], got 9");
  for (const char* k : {"duration_s", "requests_per_s", "output_tokens_per_s", "total_tokens_per_s",
                        "prompt_tokens_total", "output_tokens_total"}) {
    EXPECT_TRUE(j[k].is_number()) << k;
  }
  for (const char* k : {"ttft_s", "itl_s", "tpot_s", "e2e_s"}) {
    for (const char* s : {"count", "mean", "p50", "p90", "p99", "min", "max"}) EXPECT_TRUE(j[k][s].is_number()) << k << s;
  }
  EXPECT_DOUBLE_EQ(j["ttft_s"]["p90"].get<double>(), r.ttft.p90);
  EXPECT_DOUBLE_EQ(j["goodput"]["targets"]["ttft_s"].get<double>(), 0.25);
  EXPECT_EQ(j["goodput"]["good"], 2);  // A (0.1) and C (0.2)
  EXPECT_DOUBLE_EQ(j["goodput"]["requests_per_s"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["goodput"]["fraction"].get<double>(), 2.0 / 6);

  // No sample: the statistics are null, not NaN (which JSON cannot carry).
  const nlohmann::ordered_json none = ReportJson(Aggregate({}, 1.0, {}), nlohmann::ordered_json::object());
  EXPECT_EQ(none["ttft_s"]["count"], 0);
  EXPECT_TRUE(none["ttft_s"]["p50"].is_null());
  EXPECT_TRUE(none["goodput"]["targets"].is_object() && none["goodput"]["targets"].empty());
  EXPECT_TRUE(none["counts"]["failed_by_code"].is_object());
}

TEST(BenchReport, Table) {
  const std::string t = ReportTable(Aggregate(Sample(), 2.0, {}), {{"Server", "h:1"}});
  for (const char* needle : {"Server:", "h:1", "Requests sent:", "DEADLINE_EXCEEDED", "2  (deadline exceeded)",
                             "Request throughput (req/s):", "1.50", "TTFT", "ITL", "TPOT", "E2E", "no targets"}) {
    EXPECT_NE(t.find(needle), std::string::npos) << needle << "\n" << t;
  }
  // E2E row in milliseconds: count 3, mean 600.00, p50 500.00.
  EXPECT_NE(t.find("E2E               3    600.00    500.00"), std::string::npos) << t;
  EXPECT_NE(ReportTable(Aggregate({}, 1.0, {}), {}).find("TTFT              0         -"), std::string::npos);
}

}  // namespace
}  // namespace strata::cli::bench
