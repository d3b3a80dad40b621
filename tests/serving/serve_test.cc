// End-to-end tests of serving: `strata serve --tp 2 --pp 2` (strata-coordinator plus four
// strata-worker ranks under mpirun) on 127.0.0.1, driven over gRPC like any client would.
// Each suite starts one server for all its tests and always stops it (SIGTERM, SIGKILL after a
// timeout), even when a test fails; the server also dies with this process (PR_SET_PDEATHSIG).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/generate_client.h"
#include "cli/grpc_util.h"
#include "strata/v1/generation.grpc.pb.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
using cli::GenerateCall;
using cli::StatusCodeName;
using v1::GenerateRequest;

constexpr auto kStartupTimeout = std::chrono::seconds(180);
constexpr auto kCallTimeout = std::chrono::seconds(120);  // generous: 2 shared cores, 4 ranks + coordinator

// The binaries under test: the build's, or those in $STRATA_SERVING_BIN_DIR (to try another build).
std::string Bin(const std::string& name) {
  const char* dir = std::getenv("STRATA_SERVING_BIN_DIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : STRATA_BIN_DIR) + "/" + name;
}

// ---------------------------------------------------------------------------------------------
// The model, made once for every suite.

class ModelEnvironment : public ::testing::Environment {
 public:
  static const std::string& model() { return model_; }
  static const std::string& error() { return error_; }

  void SetUp() override {
    char tmpl[] = "/tmp/strata_serving_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    model_ = dir_ + "/m.gguf";
    const std::string cmd = Bin("strata") + " make-model --arch llama --preset tiny --dtype f32 --out " + model_ +
                            " >" + dir_ + "/make-model.log 2>&1";
    if (std::system(cmd.c_str()) != 0) error_ = "strata make-model failed: " + cmd;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

 private:
  static inline std::string dir_, model_, error_;
};

// ---------------------------------------------------------------------------------------------
// `strata serve` as a child process.

class ServeProcess {
 public:
  // Starts `strata serve --model MODEL --tp 2 --pp 2 --listen 127.0.0.1:0 EXTRA...` and waits for
  // its "serving ... on HOST:PORT" line. On failure returns null and sets *error.
  static std::unique_ptr<ServeProcess> Start(const std::vector<std::string>& extra, std::string* error) {
    std::vector<std::string> args = {Bin("strata"), "serve",      "--model", ModelEnvironment::model(),
                                     "--tp",        "2",          "--pp",    "2",
                                     "--listen",    "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (pipe(out) != 0) {
      *error = "pipe failed";
      return nullptr;
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(127);
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    auto p = std::unique_ptr<ServeProcess>(new ServeProcess(pid));
    // Read stdout until the serving line.
    std::string buffer;
    const auto deadline = Clock::now() + kStartupTimeout;
    while (Clock::now() < deadline) {
      pollfd fd = {out[0], POLLIN, 0};
      if (poll(&fd, 1, 200) <= 0) continue;
      char chunk[512];
      const ssize_t n = read(out[0], chunk, sizeof(chunk));
      if (n <= 0) break;  // serve exited
      buffer.append(chunk, static_cast<size_t>(n));
      const size_t at = buffer.find("strata serve: serving ");
      if (at == std::string::npos) continue;
      const size_t nl = buffer.find('\n', at);
      if (nl == std::string::npos) continue;
      const std::string line = buffer.substr(at, nl - at);
      const size_t on = line.rfind(" on ");
      if (on == std::string::npos) break;
      p->address_ = line.substr(on + 4);
      close(out[0]);
      return p;
    }
    close(out[0]);
    *error = "strata serve did not report serving (stdout: '" + buffer + "'); see its stderr above";
    p->Stop();
    *error += "; it ended: " + p->end_;
    return nullptr;
  }

  ~ServeProcess() { Stop(); }

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, then SIGKILL after 30 s. Returns serve's exit status description.
  const std::string& Stop() {
    if (pid_ <= 0) return end_;
    kill(pid_, SIGTERM);
    int status = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    pid_t r = 0;
    while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && Clock::now() < deadline) usleep(20000);
    if (r == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      end_ = "killed after not stopping within 30 s";
    } else if (WIFEXITED(status)) {
      end_ = "exit status " + std::to_string(WEXITSTATUS(status));
    } else {
      end_ = "signal " + std::to_string(WTERMSIG(status));
    }
    pid_ = -1;
    return end_;
  }

 private:
  explicit ServeProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::string address_, end_ = "still running";
};

// ---------------------------------------------------------------------------------------------
// Client helpers.

struct Outcome {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::vector<std::string> texts;  // of each token
  std::string text;
  std::vector<float> logprobs;
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage;
  std::vector<std::string> request_ids;  // of every response
  int finish_responses = 0;              // responses that carried a finish reason
};

std::string Describe(const grpc::Status& s) {
  return std::string(StatusCodeName(s.error_code())) + ": " + s.error_message();
}

// One streaming Generate. `cancel_after` > 0: the client cancels after that many tokens.
Outcome Generate(const std::shared_ptr<grpc::Channel>& channel, const GenerateRequest& request,
                 std::chrono::milliseconds timeout = kCallTimeout, int cancel_after = 0) {
  Outcome o;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  bool cancelled = false;
  GenerateCall call(channel, &context, request, [&](const v1::GenerateResponse& r) {
    o.request_ids.push_back(r.request_id());
    for (const v1::Token& t : r.tokens()) {
      o.ids.push_back(t.id());
      o.texts.push_back(t.text());
      o.text += t.text();
      o.logprobs.push_back(t.logprob());
    }
    if (r.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      o.finish = r.finish_reason();
      o.usage = r.usage();
      ++o.finish_responses;
    }
    if (cancel_after > 0 && !cancelled && static_cast<int>(o.ids.size()) >= cancel_after) {
      cancelled = true;
      context.TryCancel();
    }
  });
  o.status = call.Await();
  return o;
}

GenerateRequest TextRequest(const std::string& prompt, int max_new_tokens) {
  GenerateRequest r;
  r.set_text(prompt);
  r.set_max_new_tokens(max_new_tokens);
  r.set_ignore_eos(true);
  r.mutable_sampling()->set_temperature(0);
  return r;
}

// A prompt of roughly `words` words, different for every `variant`.
std::string Prompt(int variant, int words) {
  static const char* kWords[] = {"once", "upon",  "a",  "time", "there", "was", "little", "girl", "named", "Lily",
                                 "she",  "liked", "to", "play", "in",    "the", "park",   "with", "her",   "dog"};
  std::string p;
  for (int i = 0; i < words; ++i) {
    if (i > 0) p += ' ';
    p += kWords[(variant * 7 + i * (variant % 5 + 1)) % 20];
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one server per suite.

class ServerSuite : public ::testing::Test {
 protected:
  static void StartServer(const std::vector<std::string>& extra) {
    error_.clear();
    if (!ModelEnvironment::error().empty()) {
      error_ = ModelEnvironment::error();
      return;
    }
    server_ = ServeProcess::Start(extra, &error_);
    if (!server_) return;
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::Generation::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const grpc::Status s = stub_->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info_);
    if (!s.ok()) error_ = "GetModelInfo: " + Describe(s);
  }
  static void StopServer() {
    stub_.reset();
    channel_.reset();
    if (server_) {
      const std::string end = server_->Stop();
      // serve exits 0 on SIGTERM after stopping its children.
      if (end != "exit status 0") ADD_FAILURE() << "strata serve did not stop cleanly: " << end;
    }
    server_.reset();
  }

  void SetUp() override { ASSERT_TRUE(server_ != nullptr && error_.empty()) << "no server: " << error_; }

  static v1::ClusterStatus ClusterStatus() {
    v1::ClusterStatus status;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status s = stub_->GetClusterStatus(&ctx, v1::GetClusterStatusRequest(), &status);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return status;
  }

  // Every request gone and every KV block back, within `timeout`.
  static void ExpectIdle(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = Clock::now() + timeout;
    v1::ClusterStatus s;
    for (;;) {
      s = ClusterStatus();
      if (s.requests_running() == 0 && s.requests_waiting() == 0 && s.kv_blocks_free() == s.kv_blocks_total()) return;
      if (Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "not idle after " << timeout.count() << " ms: " << s.ShortDebugString();
  }

  static inline std::unique_ptr<ServeProcess> server_;
  static inline std::string error_;
  static inline std::shared_ptr<grpc::Channel> channel_;
  static inline std::unique_ptr<v1::Generation::Stub> stub_;
  static inline v1::ModelInfo info_;
};

class ServingTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer({}); }
  static void TearDownTestSuite() { StopServer(); }
};

// A server that queues at most 2 requests and runs 1 at a time.
class QueueLimitTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer({"--max-waiting", "2", "--max-running", "1"}); }
  static void TearDownTestSuite() { StopServer(); }
};

// ---------------------------------------------------------------------------------------------

TEST_F(ServingTest, HealthIsServing) {
  cli::HealthStatus health = cli::HealthStatus::kUnknown;
  const grpc::Status s =
      cli::CheckHealth(channel_, "", std::chrono::system_clock::now() + std::chrono::seconds(10), &health);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(health, cli::HealthStatus::kServing) << cli::HealthStatusName(health);
}

TEST_F(ServingTest, ModelInfoDescribesTheModelAndLimits) {
  EXPECT_EQ(info_.architecture(), "llama");
  EXPECT_EQ(std::filesystem::path(info_.model_path()).filename(), "m.gguf") << info_.model_path();
  EXPECT_EQ(info_.tp(), 2);
  EXPECT_EQ(info_.pp(), 2);
  EXPECT_GT(info_.vocab_size(), 0);
  EXPECT_GT(info_.context_length(), 0);
  EXPECT_GT(info_.n_layers(), 0);
  EXPECT_GT(info_.n_embd(), 0);
  EXPECT_GT(info_.n_heads(), 0);
  EXPECT_GT(info_.n_kv_heads(), 0);
  EXPECT_GT(info_.max_prompt_tokens(), 0);
  EXPECT_GT(info_.max_new_tokens(), 0);
  EXPECT_GE(info_.max_total_tokens(), info_.max_new_tokens());
  EXPECT_LE(info_.max_total_tokens(), info_.context_length());
  EXPECT_GT(info_.max_stop_strings(), 0);
}

TEST_F(ServingTest, ClusterStatusListsEveryWorker) {
  // One generation first, so every rank has run steps and reported its figures.
  ASSERT_TRUE(Generate(channel_, TextRequest("Once upon a time", 4)).status.ok());
  // The other ranks' figures travel on their own streams and may land just after the tokens.
  v1::ClusterStatus s;
  for (int attempt = 0; attempt < 100; ++attempt) {
    s = ClusterStatus();
    bool all = s.workers_size() == 4;
    for (const v1::WorkerStatus& w : s.workers()) all = all && w.steps() >= 4;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(s.serving());
  EXPECT_EQ(s.world_size(), 4);
  ASSERT_EQ(s.workers_size(), 4) << s.ShortDebugString();
  std::vector<int> ranks;
  for (const v1::WorkerStatus& w : s.workers()) {
    ranks.push_back(w.rank());
    EXPECT_TRUE(w.ready()) << w.ShortDebugString();
    EXPECT_EQ(w.stage(), w.rank() / 2) << w.ShortDebugString();
    EXPECT_EQ(w.tp_rank(), w.rank() % 2) << w.ShortDebugString();
    // Every rank's own figures, carried with the step results (not only the reporting rank's).
    EXPECT_FALSE(w.host().empty()) << w.ShortDebugString();
    EXPECT_GT(w.resident_bytes(), 0u) << w.ShortDebugString();
    EXPECT_GE(w.steps(), 4u) << w.ShortDebugString();
    EXPECT_GT(w.step_seconds(), 0.0) << w.ShortDebugString();
    EXPECT_GT(w.compute_seconds(), 0.0) << w.ShortDebugString();
    EXPECT_GT(w.comm_seconds(), 0.0) << w.ShortDebugString();  // tp=2 all-reduces, pp=2 send/recv
    EXPECT_NEAR(w.compute_seconds() + w.comm_seconds(), w.step_seconds(), 1e-6) << w.ShortDebugString();
    EXPECT_GT(w.last_step_seconds(), 0.0) << w.ShortDebugString();
  }
  std::sort(ranks.begin(), ranks.end());
  EXPECT_EQ(ranks, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_GT(s.kv_blocks_total(), 0);
  EXPECT_GT(s.kv_block_size(), 0);
  EXPECT_EQ(s.kv_blocks_free(), s.kv_blocks_total());
}

TEST_F(ServingTest, TokenizeAgreesWithGenerate) {
  v1::TokenizeRequest req;
  req.set_text("Once upon a time, Lily");
  v1::TokenizeResponse with_bos, without;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Tokenize(&ctx, req, &with_bos).ok());
  }
  req.set_add_special(false);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Tokenize(&ctx, req, &without).ok());
  }
  ASSERT_GT(without.ids_size(), 0);
  EXPECT_EQ(with_bos.pieces_size(), with_bos.ids_size());
  EXPECT_EQ(without.pieces_size(), without.ids_size());
  // The default adds exactly one leading special token (BOS), or none.
  const std::vector<int32_t> a(with_bos.ids().begin(), with_bos.ids().end()),
      b(without.ids().begin(), without.ids().end());
  if (a.size() == b.size() + 1) {
    EXPECT_TRUE(std::equal(b.begin(), b.end(), a.begin() + 1));
  } else {
    EXPECT_EQ(a, b);
  }
  for (int32_t id : a) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, info_.vocab_size());
  }

  // The same prompt as text and as the token ids Tokenize gave: the same greedy tokens.
  const Outcome by_text = Generate(channel_, TextRequest(req.text(), 8));
  GenerateRequest by_ids_req = TextRequest("", 8);
  by_ids_req.mutable_token_ids()->mutable_ids()->Add(a.begin(), a.end());
  const Outcome by_ids = Generate(channel_, by_ids_req);
  ASSERT_TRUE(by_text.status.ok()) << Describe(by_text.status);
  ASSERT_TRUE(by_ids.status.ok()) << Describe(by_ids.status);
  EXPECT_EQ(by_text.ids, by_ids.ids);
  EXPECT_EQ(by_text.usage.prompt_tokens(), static_cast<int32_t>(a.size()));
  EXPECT_EQ(by_ids.usage.prompt_tokens(), static_cast<int32_t>(a.size()));
}

// Greedy tokens do not depend on the split (DESIGN.md): tp=2 × pp=2 over gRPC gives what the
// single-process engine (`strata run`) gives.
TEST_F(ServingTest, GreedyMatchesSingleProcessRun) {
  for (const std::string prompt : {"Once upon a time", "The little dog ran to the park and"}) {
    SCOPED_TRACE(prompt);
    const std::string cmd = Bin("strata") + " run --model " + ModelEnvironment::model() + " --prompt '" + prompt +
                            "' --max-tokens 16 --temperature 0 --ignore-eos --threads 1 --json 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::vector<int32_t> expected;
    char line[4096];
    while (std::fgets(line, sizeof(line), p) != nullptr) {
      if (std::strncmp(line, "{\"id\":", 6) == 0) expected.push_back(std::atoi(line + 6));
    }
    ASSERT_EQ(pclose(p), 0) << cmd;
    ASSERT_EQ(expected.size(), 16u) << cmd;
    const Outcome o = Generate(channel_, TextRequest(prompt, 16));
    ASSERT_TRUE(o.status.ok()) << Describe(o.status);
    EXPECT_EQ(o.ids, expected);
  }
}

// 16 streams at once with different prompts, lengths and sampling; then each alone again must
// give the same tokens (greedy: by definition; sampled: the seed fixes every draw).
TEST_F(ServingTest, ConcurrentStreamsMatchSoloRuns) {
  constexpr int kRequests = 16;
  std::vector<GenerateRequest> requests;
  for (int i = 0; i < kRequests; ++i) {
    const int max_new = 4 + (i * 23) % 37;  // 4 .. 40
    GenerateRequest r = TextRequest(Prompt(i, 2 + (i * 5) % 17), max_new);
    r.set_request_id("conc-" + std::to_string(i));
    if (i % 2 == 1) {
      r.mutable_sampling()->set_temperature(0.8f);
      r.mutable_sampling()->set_seed(1000 + i);
      r.mutable_sampling()->set_top_p(0.9f);
    }
    if (i % 4 == 3) r.set_logprobs(true);
    requests.push_back(r);
  }
  std::vector<Outcome> together(kRequests);
  {
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kRequests; ++i) {
      threads.emplace_back([&, i] {
        ++ready;
        while (ready.load() < kRequests) std::this_thread::yield();
        together[i] = Generate(channel_, requests[i]);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE("request " + requests[i].request_id() + ": " + requests[i].ShortDebugString());
    const Outcome& o = together[i];
    ASSERT_TRUE(o.status.ok()) << Describe(o.status);
    EXPECT_EQ(static_cast<int>(o.ids.size()), requests[i].max_new_tokens());
    EXPECT_EQ(o.finish, v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(o.finish_responses, 1);
    EXPECT_EQ(o.usage.completion_tokens(), requests[i].max_new_tokens());
    EXPECT_GT(o.usage.prompt_tokens(), 0);
    for (const std::string& id : o.request_ids) EXPECT_EQ(id, requests[i].request_id());
    for (float lp : o.logprobs) {
      if (requests[i].logprobs()) {
        EXPECT_LE(lp, 0.0f);
        EXPECT_TRUE(std::isfinite(lp));
      } else {
        EXPECT_EQ(lp, 0.0f);
      }
    }
  }
  ExpectIdle();
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE("request " + requests[i].request_id() + " alone: " + requests[i].ShortDebugString());
    const Outcome alone = Generate(channel_, requests[i]);
    ASSERT_TRUE(alone.status.ok()) << Describe(alone.status);
    EXPECT_EQ(alone.ids, together[i].ids);
    EXPECT_EQ(alone.text, together[i].text);
  }
  ExpectIdle();
}

// top_logprobs: the alternatives come from the last stage's TP ranks (candidates of each
// vocabulary slice); under greedy decoding the first one is the chosen token itself.
TEST_F(ServingTest, TopLogprobsListTheMostLikelyTokens) {
  GenerateRequest req = TextRequest("Once upon a time", 12);
  req.mutable_sampling()->set_temperature(0);
  req.set_top_logprobs(4);
  auto stub = v1::Generation::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse resp;
  int tokens = 0;
  while (reader->Read(&resp)) {
    for (const v1::Token& t : resp.tokens()) {
      ++tokens;
      ASSERT_EQ(t.top_logprobs_size(), 4);
      EXPECT_EQ(t.top_logprobs(0).id(), t.id());
      EXPECT_NEAR(t.top_logprobs(0).logprob(), t.logprob(), 1e-5);
      EXPECT_LE(t.logprob(), 0.0f);
      for (int i = 1; i < 4; ++i) EXPECT_GE(t.top_logprobs(i - 1).logprob(), t.top_logprobs(i).logprob());
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, 12);
  ExpectIdle();
}

TEST_F(ServingTest, StopStringEndsGenerationAndIsNotReturned) {
  const GenerateRequest base = TextRequest("Once upon a time there was", 24);
  const Outcome full = Generate(channel_, base);
  ASSERT_TRUE(full.status.ok()) << Describe(full.status);
  // A stop string taken from the second half of the output (one token's text, so whole UTF-8
  // characters): generation must end where it first occurs, without it.
  std::string stop;
  for (size_t i = full.texts.size() / 2; i < full.texts.size() && stop.empty(); ++i) stop = full.texts[i];
  if (stop.empty()) GTEST_SKIP() << "output too short for a stop string: '" << full.text << "'";
  GenerateRequest req = base;
  req.add_stop(stop);
  const Outcome stopped = Generate(channel_, req);
  ASSERT_TRUE(stopped.status.ok()) << Describe(stopped.status);
  EXPECT_EQ(stopped.finish, v1::FINISH_REASON_STOP);
  EXPECT_EQ(stopped.text, full.text.substr(0, full.text.find(stop))) << "stop '" << stop << "'";
  EXPECT_LT(stopped.ids.size(), full.ids.size());
  ExpectIdle();
}

TEST_F(ServingTest, ClientCancelMidStream) {
  GenerateRequest req = TextRequest("Once upon a time", std::min(400, info_.max_new_tokens()));
  const Outcome o = Generate(channel_, req, kCallTimeout, /*cancel_after=*/3);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::CANCELLED) << Describe(o.status);
  EXPECT_GE(o.ids.size(), 3u);
  EXPECT_LT(static_cast<int>(o.ids.size()), req.max_new_tokens());
  ExpectIdle();
}

TEST_F(ServingTest, DeadlineExpires) {
  // A deadline well inside the generation's expected time (measured here: machines differ), at
  // most 200 ms.
  const auto t_probe = Clock::now();
  const Outcome probe = Generate(channel_, TextRequest("Once upon a time", 40));
  ASSERT_TRUE(probe.status.ok()) << Describe(probe.status);
  const double per_token = std::chrono::duration<double>(Clock::now() - t_probe).count() / 40;
  GenerateRequest req = TextRequest("Once upon a time", std::min(400, info_.max_new_tokens()));
  const auto deadline = std::chrono::milliseconds(
      std::max<int64_t>(20, std::min<int64_t>(200, static_cast<int64_t>(per_token * req.max_new_tokens() * 300))));
  const auto t0 = Clock::now();
  const Outcome o = Generate(channel_, req, deadline);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << Describe(o.status) << " (deadline " << deadline.count() << " ms, " << o.ids.size() << " tokens)";
  EXPECT_LT(secs, 5.0);
  ExpectIdle();
}

TEST_F(ServingTest, InvalidRequestsNameTheField) {
  struct Case {
    std::string name;
    GenerateRequest request;
    std::vector<std::string> needles;  // each must appear in the message
  };
  const std::string big_new = std::to_string(info_.max_new_tokens());
  std::vector<Case> cases;
  auto add = [&](const std::string& name, const std::vector<std::string>& needles, auto edit) {
    GenerateRequest r = TextRequest("Once upon a time", 4);
    edit(r);
    cases.push_back({name, r, needles});
  };
  add("empty prompt text", {"prompt"}, [](GenerateRequest& r) { r.set_text(""); });
  add("no prompt", {"prompt"}, [](GenerateRequest& r) { r.clear_prompt(); });
  add("empty token_ids", {"token_ids"}, [](GenerateRequest& r) { r.mutable_token_ids(); });
  add("unknown token id", {"token_ids", "999999"}, [](GenerateRequest& r) {
    r.mutable_token_ids()->add_ids(1);
    r.mutable_token_ids()->add_ids(999999);
  });
  add("negative token id", {"token_ids", "-5"}, [](GenerateRequest& r) { r.mutable_token_ids()->add_ids(-5); });
  add("max_new_tokens 0", {"max_new_tokens"}, [](GenerateRequest& r) { r.set_max_new_tokens(0); });
  add("max_new_tokens past the limit", {"max_new_tokens", big_new},
      [&](GenerateRequest& r) { r.set_max_new_tokens(info_.max_new_tokens() + 1); });
  add("temperature -1", {"temperature"}, [](GenerateRequest& r) { r.mutable_sampling()->set_temperature(-1); });
  add("top_p 1.5", {"top_p"}, [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(1.5f); });
  add("top_p 0", {"top_p"}, [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(0); });
  add("top_k -1", {"top_k"}, [](GenerateRequest& r) { r.mutable_sampling()->set_top_k(-1); });
  add("min_p 1", {"min_p"}, [](GenerateRequest& r) { r.mutable_sampling()->set_min_p(1); });
  add("repetition_penalty 0", {"repetition_penalty"},
      [](GenerateRequest& r) { r.mutable_sampling()->set_repetition_penalty(0); });
  add("frequency_penalty 3", {"frequency_penalty"},
      [](GenerateRequest& r) { r.mutable_sampling()->set_frequency_penalty(3); });
  add("presence_penalty -3", {"presence_penalty"},
      [](GenerateRequest& r) { r.mutable_sampling()->set_presence_penalty(-3); });
  add("too many stop strings", {"stop", std::to_string(info_.max_stop_strings())}, [&](GenerateRequest& r) {
    for (int i = 0; i <= info_.max_stop_strings(); ++i) r.add_stop("s" + std::to_string(i));
  });
  add("empty stop string", {"stop"}, [](GenerateRequest& r) { r.add_stop(""); });
  add("prompt past max_prompt_tokens", {"prompt", std::to_string(info_.max_prompt_tokens())}, [&](GenerateRequest& r) {
    for (int i = 0; i <= info_.max_prompt_tokens(); ++i) r.mutable_token_ids()->add_ids(1 + i % 100);
  });
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Outcome o = Generate(channel_, c.request, std::chrono::seconds(30));
    EXPECT_EQ(o.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(o.status);
    for (const std::string& needle : c.needles) {
      EXPECT_NE(o.status.error_message().find(needle), std::string::npos)
          << "message '" << o.status.error_message() << "' lacks '" << needle << "'";
    }
    EXPECT_TRUE(o.ids.empty());
  }
  ExpectIdle();
}

// ---------------------------------------------------------------------------------------------

TEST_F(QueueLimitTest, OverflowIsResourceExhaustedAndEverythingIsReleased) {
  constexpr int kRequests = 10;
  const int max_new = std::min(300, info_.max_new_tokens());
  std::vector<Outcome> outcomes(kRequests);
  {
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kRequests; ++i) {
      threads.emplace_back([&, i] {
        ++ready;
        while (ready.load() < kRequests) std::this_thread::yield();
        outcomes[i] = Generate(channel_, TextRequest(Prompt(i, 4), max_new));
      });
    }
    for (std::thread& t : threads) t.join();
  }
  int ok = 0, exhausted = 0;
  for (int i = 0; i < kRequests; ++i) {
    const Outcome& o = outcomes[i];
    if (o.status.ok()) {
      ++ok;
      EXPECT_EQ(static_cast<int>(o.ids.size()), max_new) << "request " << i;
      EXPECT_EQ(o.finish, v1::FINISH_REASON_LENGTH) << "request " << i;
    } else if (o.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
      EXPECT_TRUE(o.ids.empty()) << "request " << i << " was refused after streaming tokens";
    } else {
      ADD_FAILURE() << "request " << i << ": " << Describe(o.status);
    }
  }
  EXPECT_GE(exhausted, 1) << ok << " of " << kRequests << " succeeded with max_waiting 2, max_running 1";
  EXPECT_GE(ok, 1);
  ExpectIdle();
  // And the server still serves.
  const Outcome after = Generate(channel_, TextRequest("Once upon a time", 4));
  EXPECT_TRUE(after.status.ok()) << Describe(after.status);
  ExpectIdle();
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new strata::ModelEnvironment);
  return RUN_ALL_TESTS();
}
