// strata-coordinator: serves strata.v1.Generation and drives a group of strata-worker processes.
//   strata-coordinator --model PATH --tp T --pp P --listen HOST:PORT --cluster-listen HOST:PORT
//                      [--metrics-listen HOST:PORT] [--tls-cert PEM --tls-key PEM] [--api-keys FILE]
// Holds no weights: it reads the model's shape and tokenizer, schedules requests with continuous
// batching over a paged KV cache, and sends each step to the workers.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "coordinator/generation_service.h"
#include "coordinator/http_server.h"
#include "coordinator/metrics.h"
#include "coordinator/security.h"
#include "coordinator/serving_loop.h"
#include "coordinator/worker_pool.h"
#include "core/kv/block_allocator.h"
#include "core/model/config.h"
#include "core/model/gguf.h"
#include "core/parallel/layout.h"
#include "core/tokenizer/gguf_vocab.h"
#include "core/util/read_file.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace {

using namespace strata;  // NOLINT: a main file

struct CoordinatorConfig {
  std::string model, listen = "127.0.0.1:50051", cluster_listen = "127.0.0.1:50052";
  int64_t tp = 1, pp = 1;
  int64_t max_waiting = 64, max_running = 16, max_batch_tokens = 512, kv_blocks = 0, block_size = 16;
  int64_t max_prompt_tokens = 0, max_new_tokens = 0, max_total_tokens = 0, max_stop_strings = 16;
  double step_timeout_s = 60;
  double recovery_timeout_s = 60;
  double drain_timeout_s = 30;
  // Security: TLS files for the public port (and, unless given separately, the cluster port),
  // API keys for the public API, the join token workers must present.
  std::string tls_cert, tls_key, tls_client_ca, cluster_tls_cert, cluster_tls_key, api_keys, join_token_file;
  int64_t max_request_bytes = 4 << 20;
  std::string metrics_listen;  // HOST:PORT of the Prometheus endpoint; empty: none
};

int Fail(const std::string& m, int code = 1) {
  std::fprintf(stderr, "strata-coordinator: %s\n", m.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CoordinatorConfig cfg;
  cli::FlagSet flags("coordinator");
  flags.String("model", &cfg.model, "GGUF model file (required; the workers load the same path)");
  flags.Int("tp", &cfg.tp, "tensor-parallel ranks per stage (default 1)");
  flags.Int("pp", &cfg.pp, "pipeline stages (default 1)");
  flags.String("listen", &cfg.listen, "public gRPC address (default 127.0.0.1:50051; port 0 picks one)");
  flags.String("cluster-listen", &cfg.cluster_listen, "address workers dial (default 127.0.0.1:50052)");
  flags.Int("max-waiting", &cfg.max_waiting, "queued requests before RESOURCE_EXHAUSTED (default 64)");
  flags.Int("max-running", &cfg.max_running, "requests in the running batch (default 16)");
  flags.Int("max-batch-tokens", &cfg.max_batch_tokens, "tokens per step, prefill chunks included (default 512)");
  flags.Int("kv-blocks", &cfg.kv_blocks, "KV-cache blocks per worker (default: max-running full contexts)");
  flags.Int("kv-block-size", &cfg.block_size, "tokens per KV-cache block (default 16)");
  flags.Int("max-prompt-tokens", &cfg.max_prompt_tokens, "longest prompt (default: context length - 1)");
  flags.Int("max-new-tokens", &cfg.max_new_tokens, "most new tokens per request (default: context length - 1)");
  flags.Int("max-total-tokens", &cfg.max_total_tokens, "most prompt + new tokens (default: context length)");
  flags.Int("max-stop-strings", &cfg.max_stop_strings, "most stop strings per request (default 16)");
  flags.Float("step-timeout", &cfg.step_timeout_s, "seconds a step may take before the workers count as hung (60)");
  flags.Float("drain-timeout", &cfg.drain_timeout_s,
              "on SIGTERM, seconds to let running requests finish before ending them with UNAVAILABLE (30)");
  flags.Float("recovery-timeout", &cfg.recovery_timeout_s,
              "seconds requests wait for a lost worker group to come back before UNAVAILABLE (60)");
  flags.String("tls-cert", &cfg.tls_cert, "PEM certificate (chain) for TLS on the public port and the cluster port");
  flags.String("tls-key", &cfg.tls_key, "PEM private key of --tls-cert");
  flags.String("tls-client-ca", &cfg.tls_client_ca,
               "require public clients to present a certificate signed by this PEM CA (mutual TLS)");
  flags.String("cluster-tls-cert", &cfg.cluster_tls_cert, "PEM certificate for the cluster port (default: --tls-cert)");
  flags.String("cluster-tls-key", &cfg.cluster_tls_key, "PEM private key of --cluster-tls-cert");
  flags.String("api-keys", &cfg.api_keys,
               "file of API keys, one per line; public calls must send 'authorization: Bearer KEY' (health stays open)");
  flags.String("join-token-file", &cfg.join_token_file,
               "file holding the token workers must present to attach (default: $STRATA_JOIN_TOKEN)");
  flags.String("metrics-listen", &cfg.metrics_listen,
               "serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (port 0 picks one; default: off)");
  flags.Int("max-request-bytes", &cfg.max_request_bytes, "largest public request message accepted (default 4 MiB)");
  if (absl::Status s = flags.Parse(std::vector<std::string>(argv + 1, argv + argc)); !s.ok()) {
    return Fail(std::string(s.message()), 2);
  }
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (cfg.model.empty()) return Fail("--model is required", 2);
  for (auto [name, v, lo, hi] : {std::tuple<const char*, int64_t, int64_t, int64_t>{"tp", cfg.tp, 1, 4096},
                                 {"pp", cfg.pp, 1, 4096}, {"max-waiting", cfg.max_waiting, 0, 1 << 20},
                                 {"max-running", cfg.max_running, 1, 4096},
                                 {"max-batch-tokens", cfg.max_batch_tokens, 1, 1 << 20},
                                 {"kv-blocks", cfg.kv_blocks, 0, 1 << 26}, {"kv-block-size", cfg.block_size, 1, 4096},
                                 {"max-stop-strings", cfg.max_stop_strings, 0, 1024},
                                 {"max-request-bytes", cfg.max_request_bytes, 1024, 1 << 30}}) {
    if (v < lo || v > hi) return Fail(absl::StrCat("--", name, " must be in [", lo, ", ", hi, "], got ", v), 2);
  }

  // Credentials first: a bad file is a flag error, reported before anything is loaded.
  if (cfg.cluster_tls_cert.empty() && cfg.cluster_tls_key.empty()) {
    cfg.cluster_tls_cert = cfg.tls_cert;
    cfg.cluster_tls_key = cfg.tls_key;
  }
  auto public_creds = coordinator::MakeServerCredentials({cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca});
  if (!public_creds.ok()) return Fail(std::string(public_creds.status().message()), 2);
  auto cluster_creds = coordinator::MakeServerCredentials({cfg.cluster_tls_cert, cfg.cluster_tls_key, ""});
  if (!cluster_creds.ok()) return Fail(absl::StrCat("cluster port: ", cluster_creds.status().message()), 2);
  coordinator::ApiKeys api_keys;
  if (!cfg.api_keys.empty()) {
    auto loaded = coordinator::ApiKeys::Load(cfg.api_keys);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()), 2);
    api_keys = std::move(*loaded);
  }
  std::string join_token;
  if (!cfg.join_token_file.empty()) {
    auto token = ReadTrimmedFile(cfg.join_token_file);
    if (!token.ok()) return Fail(absl::StrCat("--join-token-file: ", token.status().message()), 2);
    join_token = *token;
  } else if (const char* env = std::getenv("STRATA_JOIN_TOKEN"); env != nullptr) {
    join_token = env;
  }

  auto file = gguf::GgufFile::Open(cfg.model);
  if (!file.ok()) return Fail(std::string(file.status().message()));
  auto config = ReadModelConfig(**file);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  if (absl::Status s = ValidateLayout(*config, ParallelLayout{int(cfg.tp), int(cfg.pp), 0}); !s.ok()) {
    return Fail(absl::StrCat(cfg.model, ": ", s.message()), 2);
  }
  auto vocab = ReadGgufVocab(**file);
  if (!vocab.ok()) return Fail(std::string(vocab.status().message()));
  auto tokenizer = Tokenizer::Create(std::move(*vocab));
  if (!tokenizer.ok()) return Fail(absl::StrCat(cfg.model, ": tokenizer: ", tokenizer.status().message()));

  coordinator::SchedulerConfig sc;
  sc.block_size = static_cast<int32_t>(cfg.block_size);
  sc.max_running = static_cast<int32_t>(cfg.max_running);
  sc.max_waiting = static_cast<int32_t>(cfg.max_waiting);
  sc.max_batch_tokens = static_cast<int32_t>(cfg.max_batch_tokens);
  sc.n_blocks = cfg.kv_blocks > 0 ? static_cast<int32_t>(cfg.kv_blocks)
                                  : sc.max_running * BlocksFor(config->n_ctx, sc.block_size);
  strata::v1::Assignment assignment;
  assignment.set_model_path(cfg.model);
  assignment.set_tp(static_cast<int32_t>(cfg.tp));
  assignment.set_pp(static_cast<int32_t>(cfg.pp));
  assignment.set_kv_block_size(sc.block_size);
  assignment.set_kv_blocks(sc.n_blocks);
  assignment.set_max_batch_tokens(sc.max_batch_tokens);
  assignment.set_max_seqs(sc.max_running);

  // Signals are taken by one thread with sigwait, so block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  coordinator::WorkerPool workers(assignment);
  workers.set_join_token(join_token);
  coordinator::ServingLoop loop(tokenizer->get(), config->n_ctx, sc, &workers, absl::Seconds(cfg.step_timeout_s),
                                /*depth=*/static_cast<int>(cfg.pp), absl::Seconds(cfg.recovery_timeout_s));
  coordinator::RequestLimits limits;
  limits.max_prompt_tokens = static_cast<int32_t>(cfg.max_prompt_tokens);
  limits.max_new_tokens = static_cast<int32_t>(cfg.max_new_tokens);
  limits.max_total_tokens = static_cast<int32_t>(cfg.max_total_tokens);
  limits.max_stop_strings = static_cast<int32_t>(cfg.max_stop_strings);
  coordinator::GenerationService generation(*config, cfg.model, int(cfg.tp), int(cfg.pp), tokenizer->get(), limits,
                                            &loop, &workers);
  if (api_keys.enabled()) generation.set_api_keys(&api_keys);
  coordinator::Metrics metrics;
  loop.set_metrics(&metrics);
  generation.set_metrics(&metrics);
  std::unique_ptr<coordinator::HttpServer> metrics_server;
  if (!cfg.metrics_listen.empty()) {
    auto started = coordinator::HttpServer::Start(cfg.metrics_listen, "/metrics", [&] {
      const coordinator::ServingLoop::Stats st = loop.stats();
      coordinator::MetricsSnapshot snap;
      snap.running = st.running;
      snap.waiting = st.waiting;
      snap.kv_blocks_total = st.blocks_total;
      snap.kv_blocks_free = st.blocks_free;
      snap.preemptions = st.preemptions;
      snap.steps = st.steps;
      snap.workers = workers.Status();
      return metrics.Render(snap);
    });
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics_server = std::move(*started);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  int public_port = 0, cluster_port = 0;
  grpc::ServerBuilder public_builder;
  // gRPC enables SO_REUSEPORT by default, which lets a second server bind the same port and
  // split the traffic; a taken port must be an error instead.
  public_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  public_builder.AddListeningPort(cfg.listen, *public_creds, &public_port);
  public_builder.RegisterService(&generation);
  public_builder.SetMaxReceiveMessageSize(static_cast<int>(cfg.max_request_bytes));
  std::unique_ptr<grpc::Server> public_server = public_builder.BuildAndStart();
  if (public_server == nullptr || public_port == 0) return Fail(absl::StrCat("cannot listen on ", cfg.listen));
  grpc::ServerBuilder cluster_builder;
  cluster_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  cluster_builder.AddListeningPort(cfg.cluster_listen, *cluster_creds, &cluster_port);
  cluster_builder.RegisterService(&workers);
  cluster_builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> cluster_server = cluster_builder.BuildAndStart();
  if (cluster_server == nullptr || cluster_port == 0) return Fail(absl::StrCat("cannot listen on ", cfg.cluster_listen));

  grpc::HealthCheckServiceInterface* health = public_server->GetHealthCheckService();
  health->SetServingStatus(false);
  workers.set_on_change([&] {
    health->SetServingStatus(workers.ready());
    loop.Wake();
  });
  auto host_of = [](const std::string& addr) { return addr.substr(0, addr.rfind(':')); };
  std::printf("strata-coordinator listening: public=%s:%d cluster=%s:%d%s\n", host_of(cfg.listen).c_str(),
              public_port, host_of(cfg.cluster_listen).c_str(), cluster_port,
              metrics_server ? absl::StrCat(" metrics=", host_of(cfg.metrics_listen), ":", metrics_server->port()).c_str()
                             : "");
  std::fflush(stdout);
  std::fprintf(stderr, "strata-coordinator: public API %s%s; cluster port %s, %s\n",
               cfg.tls_cert.empty() ? "plaintext" : "TLS",
               api_keys.enabled() ? absl::StrCat(", ", api_keys.size(), " API keys").c_str() : ", no API keys",
               cfg.cluster_tls_cert.empty() ? "plaintext" : "TLS",
               join_token.empty() ? "no join token (any process that reaches it may attach as a worker)"
                                  : "join token required");
  std::fprintf(stderr, "strata-coordinator: %s (%s), tp=%lld pp=%lld, %d KV blocks of %d tokens; waiting for %lld workers\n",
               cfg.model.c_str(), config->arch_name.c_str(), static_cast<long long>(cfg.tp),
               static_cast<long long>(cfg.pp), sc.n_blocks, sc.block_size, static_cast<long long>(cfg.tp * cfg.pp));

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "strata-coordinator: %s; refusing new requests, draining for up to %g s\n",
               sig == SIGINT ? "interrupted" : "terminated", cfg.drain_timeout_s);
  health->SetServingStatus(false);
  const int left = loop.Drain(absl::Seconds(cfg.drain_timeout_s));
  if (left > 0) std::fprintf(stderr, "strata-coordinator: ending %d unfinished requests with UNAVAILABLE\n", left);
  workers.Shutdown("coordinator shutting down");
  loop.Stop();
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
  public_server->Shutdown(deadline);
  cluster_server->Shutdown(deadline);
  return 0;
}
