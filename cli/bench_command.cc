// strata bench --server HOST:PORT [--concurrency N | --rate R [--max-concurrency N]]
//              [--requests N] [--duration S] [--warmup N] [--prompt-tokens N|A:B] [--output-tokens N|A:B]
//              [--prompts-file FILE] [--seed S] [--temperature X] [--ignore-eos=false] [--timeout S]
//              [--goodput ttft=MS,tpot=MS,e2e=MS] [--json FILE|-] [--no-progress]
// A gRPC load generator against a running strata server (vLLM's benchmark_serving, in C++).
//
// Closed loop (--concurrency N, the default with N = 1): N streams, each sends its next request
// as soon as the previous one ends. Open loop (--rate R): requests arrive as a Poisson process of
// R requests/s whatever the server's pace (at most --max-concurrency in flight: an arrival past
// that waits, and its latencies count from when it is actually sent). The run ends after
// --requests requests (default 100) or when --duration seconds have passed, whichever is first;
// requests in flight then are waited for and counted. --warmup N requests go first at the same
// concurrency and are not counted.
//
// Prompts: with --prompt-tokens, token ids (GenerateRequest.token_ids, so the length is exact):
// BOS when the model adds one (asked with Tokenize("")), then ids drawn uniformly from the
// vocabulary (GetModelInfo.vocab_size) except 0-2 (unk/bos/eos in SentencePiece vocabularies)
// and the last id (<|endoftext|> in GPT-2's). With --prompts-file, text prompts used in file
// order, cycling. Lengths, prompts, arrival times and (when --temperature > 0) sampling seeds
// all come from --seed, so a run is repeatable. ignore_eos is on by default, so outputs are as
// long as asked.
//
// Measured with steady_clock from just before a request is sent: TTFT to the first response
// carrying a token; ITL, the gaps between successive responses carrying tokens (pooled over all
// requests); TPOT per request, (e2e - ttft) / (output tokens - 1); e2e to the end of the call.
// Output tokens come from the final usage. Percentiles interpolate linearly (see bench_stats.h).
//
// Exit codes: 0 when at least one request succeeded (failures are part of the report, tallied by
// gRPC status code), 1 when none did or the server cannot be reached, 2 for bad flags.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/bench_stats.h"
#include "cli/client_connection.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "core/util/read_file.h"
#include "cli/generate_client.h"
#include "cli/grpc_util.h"
#include "strata/v1/generation.grpc.pb.h"
#include "strata/v1/generation.pb.h"

namespace strata::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "strata bench: %s\n", message.c_str());
  return code;
}

// Ctrl-C: stop sending, wait for the requests in flight, report. A second Ctrl-C kills.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void OnInterrupt(int) {
  g_interrupted = 1;
  std::signal(SIGINT, SIG_DFL);
}

struct BenchFlags {
  int64_t concurrency = 1, max_concurrency = 0, requests = 100, warmup = 0, seed = 0;
  double rate = 0, duration = 0, temperature = 0, timeout = 0;
  std::string prompt_tokens = "32", output_tokens = "64", prompts_file, goodput, json;
  bool ignore_eos = true, no_progress = false;
};

// One request to send.
struct RequestSpec {
  std::vector<int32_t> token_ids;  // the prompt as ids, or
  std::string text;                // as text (--prompts-file)
  int64_t output_tokens = 0;
  uint64_t sampling_seed = 0;
};

// Makes request `index` of a phase; the same (seed, phase, index) always gives the same request.
class Workload {
 public:
  bench::LengthRange prompt_tokens, output_tokens;
  std::vector<bench::PromptEntry> prompts;  // non-empty: text prompts from the file
  int32_t id_lo = 0, id_hi = 1;             // token ids are drawn from [id_lo, id_hi)
  int32_t bos = -1;                         // first prompt token when >= 0
  uint64_t seed = 0;

  RequestSpec Make(int64_t index, bool warmup) const {
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(index),
                      static_cast<uint32_t>(static_cast<uint64_t>(index) >> 32), warmup ? 1u : 0u};
    std::mt19937_64 rng(seq);
    auto uniform = [&rng](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    RequestSpec spec;
    spec.output_tokens = uniform(output_tokens.min, output_tokens.max);
    if (!prompts.empty()) {
      const bench::PromptEntry& p = prompts[static_cast<size_t>(index) % prompts.size()];
      spec.text = p.text;
      if (p.max_tokens > 0) spec.output_tokens = p.max_tokens;
    } else {
      const int64_t n = uniform(prompt_tokens.min, prompt_tokens.max);
      spec.token_ids.reserve(static_cast<size_t>(n));
      if (bos >= 0) spec.token_ids.push_back(bos);
      while (static_cast<int64_t>(spec.token_ids.size()) < n) {
        spec.token_ids.push_back(static_cast<int32_t>(uniform(id_lo, id_hi - 1)));
      }
    }
    spec.sampling_seed = rng() >> 1;
    return spec;
  }
};

// Sends one request and measures it.
class Runner {
 public:
  Runner(std::shared_ptr<grpc::Channel> channel, const ClientConnection* conn, const BenchFlags& f)
      : channel_(std::move(channel)), conn_(conn), f_(f) {}

  bench::RequestResult Run(const RequestSpec& spec) const {
    v1::GenerateRequest req;
    if (spec.token_ids.empty()) {
      req.set_text(spec.text);
    } else {
      req.mutable_token_ids()->mutable_ids()->Add(spec.token_ids.begin(), spec.token_ids.end());
    }
    req.set_max_new_tokens(static_cast<int32_t>(spec.output_tokens));
    req.mutable_sampling()->set_temperature(static_cast<float>(f_.temperature));
    if (f_.temperature > 0) req.mutable_sampling()->set_seed(spec.sampling_seed);
    req.set_ignore_eos(f_.ignore_eos);

    grpc::ClientContext context;
    conn_->Authorize(&context);
    if (f_.timeout > 0) {
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::duration_cast<std::chrono::system_clock::duration>(
                               std::chrono::duration<double>(f_.timeout)));
    }
    bench::RequestResult r;
    int64_t received = 0;
    v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
    v1::Usage usage;
    const Clock::time_point start = Clock::now();
    Clock::time_point last = start;
    auto on_response = [&](const v1::GenerateResponse& response) {
      const Clock::time_point now = Clock::now();
      if (response.tokens_size() > 0) {
        if (received == 0) {
          r.ttft_s = Seconds(now - start);
        } else {
          r.itl_s.push_back(Seconds(now - last));
        }
        last = now;
        received += response.tokens_size();
      }
      if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        finish = response.finish_reason();
        usage = response.usage();
      }
    };
    GenerateCall call(channel_, &context, req, on_response);
    const grpc::Status status = call.Await();
    r.e2e_s = Seconds(Clock::now() - start);
    r.output_tokens = received;
    if (!status.ok()) {
      r.code = StatusCodeName(status.error_code());
      r.error = status.error_message();
    } else if (finish == v1::FINISH_REASON_UNSPECIFIED) {
      r.code = "NO_FINISH_REASON";
      r.error = "the server ended the stream without a finish reason";
    } else {
      r.ok = true;
      r.prompt_tokens = usage.prompt_tokens();
      r.output_tokens = usage.completion_tokens();
    }
    return r;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const ClientConnection* conn_;
  const BenchFlags& f_;
};

// A one-line progress bar on stderr, redrawn from its own thread (when enabled).
class Progress {
 public:
  Progress(bool enabled, std::string label, int64_t total, double duration_s)
      : enabled_(enabled), label_(std::move(label)), total_(total), duration_s_(duration_s), start_(Clock::now()) {
    if (enabled_) thread_ = std::thread([this] { Loop(); });
  }
  ~Progress() { Stop(); }

  void Add(bool ok) { (ok ? ok_ : failed_).fetch_add(1); }

  void Stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    Draw();
    std::fputc('\n', stderr);
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; })) Draw();
  }

  void Draw() const {
    const double elapsed = Seconds(Clock::now() - start_);
    const int64_t done = ok_.load() + failed_.load();
    double fraction = 0;
    if (total_ > 0) fraction = static_cast<double>(done) / static_cast<double>(total_);
    if (duration_s_ > 0) fraction = std::max(fraction, elapsed / duration_s_);
    fraction = std::clamp(fraction, 0.0, 1.0);
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar = std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), '.');
    std::string count = total_ > 0 ? absl::StrCat(done, "/", total_) : absl::StrCat(done);
    std::fprintf(stderr, "\r\033[K%s [%s] %s requests, %lld failed, %.1f req/s, %.1f s", label_.c_str(), bar.c_str(),
                 count.c_str(), static_cast<long long>(failed_.load()),
                 elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0, elapsed);
    std::fflush(stderr);
  }

  const bool enabled_;
  const std::string label_;
  const int64_t total_;
  const double duration_s_;
  const Clock::time_point start_;
  std::atomic<int64_t> ok_{0}, failed_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// One phase (warm-up or the measured run).
struct Phase {
  bool warmup = false;
  int64_t requests = 0;   // 0: no limit
  double duration = 0;    // seconds; 0: no limit
  int64_t concurrency = 1;  // closed loop streams
  double rate = 0;          // > 0: open loop, requests/s
  int64_t max_concurrency = 0;  // open loop cap; 0: none
  uint64_t seed = 0;
};

struct PhaseResult {
  std::vector<bench::RequestResult> results;
  double duration_s = 0;
};

PhaseResult RunPhase(const Phase& phase, const Workload& workload, const Runner& runner, Progress* progress) {
  PhaseResult out;
  std::mutex mu;
  std::condition_variable cv;
  const Clock::time_point start = Clock::now();
  auto time_up = [&] { return phase.duration > 0 && Seconds(Clock::now() - start) >= phase.duration; };
  auto record = [&](bench::RequestResult r) {
    progress->Add(r.ok);
    std::lock_guard<std::mutex> lock(mu);
    out.results.push_back(std::move(r));
  };

  if (phase.rate <= 0) {
    // Closed loop: each stream takes the next index until the requests or the time run out.
    std::atomic<int64_t> next{0};
    std::vector<std::thread> streams;
    const int64_t n = phase.requests > 0 ? std::min(phase.concurrency, phase.requests) : phase.concurrency;
    for (int64_t s = 0; s < n; ++s) {
      streams.emplace_back([&] {
        for (;;) {
          if (g_interrupted || time_up()) return;
          const int64_t i = next.fetch_add(1);
          if (phase.requests > 0 && i >= phase.requests) return;
          record(runner.Run(workload.Make(i, phase.warmup)));
        }
      });
    }
    for (std::thread& t : streams) t.join();
  } else {
    // Open loop: Poisson arrivals; one thread per request in flight, joined as they finish.
    std::mt19937_64 rng(phase.seed ^ 0x9e3779b97f4a7c15ULL);
    std::exponential_distribution<double> gap(phase.rate);
    std::list<std::pair<std::thread, std::shared_ptr<std::atomic<bool>>>> in_flight;
    int64_t running = 0;
    double arrival = 0;
    for (int64_t i = 0; phase.requests == 0 || i < phase.requests; ++i) {
      if (i > 0) arrival += gap(rng);
      if (phase.duration > 0 && arrival >= phase.duration) break;
      const Clock::time_point due =
          start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrival));
      // Sleep in slices so Ctrl-C is noticed.
      while (!g_interrupted && Clock::now() < due) {
        std::this_thread::sleep_for(std::min<Clock::duration>(due - Clock::now(), std::chrono::milliseconds(50)));
      }
      {
        std::unique_lock<std::mutex> lock(mu);
        while (!g_interrupted && phase.max_concurrency > 0 && running >= phase.max_concurrency) {
          cv.wait_for(lock, std::chrono::milliseconds(50));
        }
        if (g_interrupted) break;
        ++running;
      }
      auto done = std::make_shared<std::atomic<bool>>(false);
      in_flight.emplace_back(std::thread([&, i, done] {
                               record(runner.Run(workload.Make(i, phase.warmup)));
                               {
                                 std::lock_guard<std::mutex> lock(mu);
                                 --running;
                               }
                               cv.notify_all();
                               done->store(true);
                             }),
                             done);
      for (auto it = in_flight.begin(); it != in_flight.end();) {
        if (it->second->load()) {
          it->first.join();
          it = in_flight.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& [thread, done] : in_flight) thread.join();
  }
  out.duration_s = Seconds(Clock::now() - start);
  return out;
}

nlohmann::ordered_json RangeJson(const bench::LengthRange& r) { return {{"min", r.min}, {"max", r.max}}; }

std::string RangeText(const bench::LengthRange& r) {
  return r.min == r.max ? absl::StrCat(r.min) : absl::StrCat("uniform ", r.min, "..", r.max);
}

}  // namespace

int BenchCommand(const std::vector<std::string>& args) {
  BenchFlags f;
  ClientConnection conn;
  FlagSet flags("bench");
  conn.Register(&flags);
  flags.Int("concurrency", &f.concurrency, "closed loop: this many streams, each sending its next request when the "
                                           "previous ends (default 1)");
  flags.Float("rate", &f.rate, "open loop: Poisson arrivals at this many requests/s");
  flags.Int("max-concurrency", &f.max_concurrency, "open loop: at most this many requests in flight (default: no cap)");
  flags.Int("requests", &f.requests, "requests to send (default 100, or no limit with --duration)");
  flags.Float("duration", &f.duration, "stop sending after this many seconds (requests in flight are counted)");
  flags.Int("warmup", &f.warmup, "requests sent first and not counted (default 0)");
  flags.String("prompt-tokens", &f.prompt_tokens, "prompt length in tokens: N, or A:B for uniform in [A, B] (default 32)");
  flags.String("output-tokens", &f.output_tokens, "tokens to generate: N, or A:B for uniform in [A, B] (default 64)");
  flags.String("prompts-file", &f.prompts_file,
               "text prompts instead of random token ids: JSON lines {\"prompt\": \"...\", \"max_tokens\": N} "
               "(max_tokens optional) or plain text lines; used in order, cycling");
  flags.Int("seed", &f.seed, "seed for lengths, prompts, arrivals and sampling (default 0)");
  flags.Float("temperature", &f.temperature, "sampling temperature (default 0: greedy)");
  flags.Bool("ignore-eos", &f.ignore_eos, "generate past end-of-sequence, so outputs are as long as asked (default true)");
  flags.Float("timeout", &f.timeout, "per-request deadline in seconds (default: none)");
  flags.String("goodput", &f.goodput,
               "latency targets in ms, e.g. ttft=500,tpot=50,e2e=5000: goodput counts the requests meeting all");
  flags.String("json", &f.json, "also write the report as JSON to this file ('-': stdout, the table then goes to stderr)");
  flags.Bool("no-progress", &f.no_progress, "no progress bar (it is drawn only when stderr is a terminal)");
  if (absl::Status s = flags.Parse(args); !s.ok()) return Fail(std::string(s.message()), 2);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }

  // --- flags ---
  if (conn.server.empty()) return Fail("--server is required (HOST:PORT)", 2);
  const bool open_loop = flags.was_set("rate");
  if (open_loop && !(f.rate > 0)) return Fail(absl::StrCat("--rate must be positive, got ", f.rate), 2);
  if (open_loop && flags.was_set("concurrency")) {
    return Fail("--concurrency is for the closed loop; with --rate use --max-concurrency to cap requests in flight", 2);
  }
  if (!open_loop && flags.was_set("max-concurrency")) {
    return Fail("--max-concurrency needs --rate (the closed loop's --concurrency is already its cap)", 2);
  }
  if (f.concurrency < 1) return Fail(absl::StrCat("--concurrency must be >= 1, got ", f.concurrency), 2);
  if (flags.was_set("max-concurrency") && f.max_concurrency < 1) {
    return Fail(absl::StrCat("--max-concurrency must be >= 1, got ", f.max_concurrency), 2);
  }
  if (flags.was_set("requests") && f.requests < 1) return Fail(absl::StrCat("--requests must be >= 1, got ", f.requests), 2);
  if (flags.was_set("duration") && !(f.duration > 0)) {
    return Fail(absl::StrCat("--duration must be positive, got ", f.duration), 2);
  }
  if (flags.was_set("duration") && !flags.was_set("requests")) f.requests = 0;  // no count limit
  if (f.warmup < 0) return Fail(absl::StrCat("--warmup must be >= 0, got ", f.warmup), 2);
  if (f.seed < 0) return Fail(absl::StrCat("--seed must be >= 0, got ", f.seed), 2);
  if (f.temperature < 0) return Fail(absl::StrCat("--temperature must be >= 0, got ", f.temperature), 2);
  if (flags.was_set("timeout") && !(f.timeout > 0)) return Fail(absl::StrCat("--timeout must be positive, got ", f.timeout), 2);
  if (flags.was_set("prompts-file") && flags.was_set("prompt-tokens")) {
    return Fail("--prompt-tokens and --prompts-file exclude each other", 2);
  }
  Workload workload;
  workload.seed = static_cast<uint64_t>(f.seed);
  auto prompt_range = bench::ParseLengthRange("prompt-tokens", f.prompt_tokens);
  if (!prompt_range.ok()) return Fail(std::string(prompt_range.status().message()), 2);
  workload.prompt_tokens = *prompt_range;
  auto output_range = bench::ParseLengthRange("output-tokens", f.output_tokens);
  if (!output_range.ok()) return Fail(std::string(output_range.status().message()), 2);
  workload.output_tokens = *output_range;
  bench::GoodputTargets targets;
  if (flags.was_set("goodput")) {
    auto t = bench::ParseGoodput(f.goodput);
    if (!t.ok()) return Fail(std::string(t.status().message()), 2);
    targets = *t;
  }
  if (flags.was_set("json") && f.json.empty()) return Fail("--json needs a file name or '-'", 2);
  if (!f.json.empty() && f.json != "-" && !std::ofstream(f.json, std::ios::app)) {
    return Fail(absl::StrCat("--json: cannot write ", f.json), 2);  // found out now, not after the run
  }
  if (flags.was_set("prompts-file")) {
    absl::StatusOr<std::string> text = ReadFileToString(f.prompts_file);
    if (!text.ok()) return Fail(absl::StrCat("--prompts-file: ", text.status().message()), 2);
    auto prompts = bench::ParsePrompts(*text, f.prompts_file);
    if (!prompts.ok()) return Fail(absl::StrCat("--prompts-file: ", prompts.status().message()), 2);
    workload.prompts = std::move(*prompts);
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = conn.Connect();
  if (!channel.ok()) return Fail(std::string(channel.status().message()), 2);

  // --- the server ---
  auto stub = v1::Generation::NewStub(*channel);
  v1::ModelInfo info;
  {
    grpc::ClientContext context;
    conn.Authorize(&context);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    const grpc::Status s = stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
    if (!s.ok()) {
      return Fail(absl::StrCat("cannot reach the server at ", conn.server, ": ", StatusCodeName(s.error_code()), ": ",
                               s.error_message()),
                  1);
    }
  }
  if (workload.prompts.empty()) {
    if (info.vocab_size() < 1) return Fail(absl::StrCat("the server reports a vocabulary of ", info.vocab_size()), 1);
    workload.id_lo = info.vocab_size() > 4 ? 3 : 0;
    workload.id_hi = info.vocab_size() > 4 ? info.vocab_size() - 1 : info.vocab_size();
    grpc::ClientContext context;
    conn.Authorize(&context);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::TokenizeRequest treq;
    treq.set_add_special(true);
    v1::TokenizeResponse tresp;
    if (stub->Tokenize(&context, treq, &tresp).ok() && tresp.ids_size() == 1) workload.bos = tresp.ids(0);
    if (info.max_prompt_tokens() > 0 && workload.prompt_tokens.max > info.max_prompt_tokens()) {
      std::fprintf(stderr,
                   "strata bench: warning: prompts of up to %lld tokens; the server's max_prompt_tokens is %d (longer "
                   "requests will fail INVALID_ARGUMENT)\n",
                   static_cast<long long>(workload.prompt_tokens.max), info.max_prompt_tokens());
    }
  }
  int64_t max_output = workload.prompts.empty() ? workload.output_tokens.max : 0;
  for (const bench::PromptEntry& p : workload.prompts) {
    max_output = std::max(max_output, p.max_tokens > 0 ? p.max_tokens : workload.output_tokens.max);
  }
  if (info.max_new_tokens() > 0 && max_output > info.max_new_tokens()) {
    std::fprintf(stderr,
                 "strata bench: warning: outputs of up to %lld tokens; the server's max_new_tokens is %d (longer "
                 "requests will fail INVALID_ARGUMENT)\n",
                 static_cast<long long>(max_output), info.max_new_tokens());
  }

  // --- the run ---
  const Runner runner(*channel, &conn, f);
  const bool show_progress = !f.no_progress && isatty(STDERR_FILENO);
  std::signal(SIGINT, OnInterrupt);
  Phase phase;
  phase.concurrency = f.concurrency;
  phase.rate = open_loop ? f.rate : 0;
  phase.max_concurrency = f.max_concurrency;
  phase.seed = static_cast<uint64_t>(f.seed);
  if (f.warmup > 0) {
    // At the run's concurrency, closed loop (open loop: its cap, or all at once).
    Phase warm = phase;
    warm.warmup = true;
    warm.requests = f.warmup;
    warm.rate = 0;
    if (open_loop) warm.concurrency = f.max_concurrency > 0 ? f.max_concurrency : f.warmup;
    Progress progress(show_progress, "warm-up", f.warmup, 0);
    const PhaseResult w = RunPhase(warm, workload, runner, &progress);
    progress.Stop();
    const bench::Report wr = bench::Aggregate(w.results, w.duration_s, {});
    if (wr.failed > 0) {
      const auto& [code, n] = *wr.failed_by_code.begin();
      std::fprintf(stderr, "strata bench: warning: %lld of %lld warm-up requests failed (%s: %s)\n",
                   static_cast<long long>(wr.failed), static_cast<long long>(wr.sent), code.c_str(),
                   wr.error_examples.at(code).c_str());
    }
  }
  phase.requests = f.requests;
  phase.duration = f.duration;
  PhaseResult run;
  if (!g_interrupted) {
    Progress progress(show_progress, "bench", f.requests, f.duration);
    run = RunPhase(phase, workload, runner, &progress);
    progress.Stop();
  }
  const bool interrupted = g_interrupted != 0;
  std::signal(SIGINT, SIG_DFL);

  // --- the report ---
  const bench::Report report = bench::Aggregate(run.results, run.duration_s, targets);
  nlohmann::ordered_json config = {
      {"server", conn.server},
      {"mode", open_loop ? "open" : "closed"},
      {"concurrency", open_loop ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.concurrency)},
      {"rate", open_loop ? nlohmann::ordered_json(f.rate) : nlohmann::ordered_json(nullptr)},
      {"max_concurrency", f.max_concurrency > 0 ? nlohmann::ordered_json(f.max_concurrency) : nlohmann::ordered_json(nullptr)},
      {"requests", f.requests > 0 ? nlohmann::ordered_json(f.requests) : nlohmann::ordered_json(nullptr)},
      {"duration_limit_s", f.duration > 0 ? nlohmann::ordered_json(f.duration) : nlohmann::ordered_json(nullptr)},
      {"warmup", f.warmup},
      {"prompt_tokens", workload.prompts.empty() ? RangeJson(workload.prompt_tokens) : nlohmann::ordered_json(nullptr)},
      {"prompts_file", workload.prompts.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.prompts_file)},
      {"output_tokens", RangeJson(workload.output_tokens)},
      {"seed", f.seed},
      {"temperature", f.temperature},
      {"ignore_eos", f.ignore_eos},
      {"timeout_s", f.timeout > 0 ? nlohmann::ordered_json(f.timeout) : nlohmann::ordered_json(nullptr)},
      {"model",
       {{"name", info.name()},
        {"path", info.model_path()},
        {"architecture", info.architecture()},
        {"vocab_size", info.vocab_size()},
        {"context_length", info.context_length()},
        {"tp", info.tp()},
        {"pp", info.pp()}}},
  };
  nlohmann::ordered_json json = bench::ReportJson(report, config);
  json["interrupted"] = interrupted;

  std::vector<std::pair<std::string, std::string>> header = {
      {"Server", conn.server},
      {"Model", absl::StrCat(info.name().empty() ? info.model_path() : info.name(), " (", info.architecture(),
                             ", tp=", info.tp(), ", pp=", info.pp(), ")")},
      {"Mode", open_loop ? absl::StrCat("open loop, Poisson ", f.rate, " req/s",
                                        f.max_concurrency > 0 ? absl::StrCat(", at most ", f.max_concurrency, " in flight") : "")
                         : absl::StrCat("closed loop, ", f.concurrency, f.concurrency == 1 ? " stream" : " streams")},
      {"Prompt tokens", workload.prompts.empty() ? RangeText(workload.prompt_tokens)
                                                 : absl::StrCat(f.prompts_file, " (", workload.prompts.size(), " prompts)")},
      {"Output tokens", RangeText(workload.output_tokens)},
  };
  if (interrupted) header.emplace_back("Interrupted", "yes (Ctrl-C): the requests sent until then");
  const std::string table = bench::ReportTable(report, header);
  const bool json_stdout = f.json == "-";
  std::fputs(table.c_str(), json_stdout ? stderr : stdout);
  std::fflush(json_stdout ? stderr : stdout);
  if (!f.json.empty()) {
    const std::string text = json.dump(2) + "\n";
    if (json_stdout) {
      std::fputs(text.c_str(), stdout);
      std::fflush(stdout);
    } else {
      std::ofstream out(f.json, std::ios::binary | std::ios::trunc);
      out << text;
      out.close();
      if (!out) return Fail(absl::StrCat("--json: cannot write ", f.json), 1);
    }
  }
  if (report.succeeded == 0) {
    return Fail(report.sent == 0 ? "no request was sent" : absl::StrCat("all ", report.sent, " requests failed"), 1);
  }
  return 0;
}

}  // namespace strata::cli
