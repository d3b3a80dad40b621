// strata-coordinator: serves strata.v1.Generation and drives a group of strata-worker processes.
//   strata-coordinator --model PATH --tp T --pp P --listen HOST:PORT --cluster-listen HOST:PORT
// Holds no weights: it reads the model's shape and tokenizer, schedules requests with continuous
// batching over a paged KV cache, and sends each step to the workers.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "coordinator/generation_service.h"
#include "coordinator/serving_loop.h"
#include "coordinator/worker_pool.h"
#include "core/kv/block_allocator.h"
#include "core/model/config.h"
#include "core/model/gguf.h"
#include "core/parallel/layout.h"
#include "core/tokenizer/gguf_vocab.h"
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
                                 {"max-stop-strings", cfg.max_stop_strings, 0, 1024}}) {
    if (v < lo || v > hi) return Fail(absl::StrCat("--", name, " must be in [", lo, ", ", hi, "], got ", v), 2);
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
  coordinator::ServingLoop loop(tokenizer->get(), config->n_ctx, sc, &workers, absl::Seconds(cfg.step_timeout_s),
                                /*depth=*/static_cast<int>(cfg.pp), absl::Seconds(cfg.recovery_timeout_s));
  coordinator::RequestLimits limits;
  limits.max_prompt_tokens = static_cast<int32_t>(cfg.max_prompt_tokens);
  limits.max_new_tokens = static_cast<int32_t>(cfg.max_new_tokens);
  limits.max_total_tokens = static_cast<int32_t>(cfg.max_total_tokens);
  limits.max_stop_strings = static_cast<int32_t>(cfg.max_stop_strings);
  coordinator::GenerationService generation(*config, cfg.model, int(cfg.tp), int(cfg.pp), tokenizer->get(), limits,
                                            &loop, &workers);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  int public_port = 0, cluster_port = 0;
  grpc::ServerBuilder public_builder;
  // gRPC enables SO_REUSEPORT by default, which lets a second server bind the same port and
  // split the traffic; a taken port must be an error instead.
  public_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  public_builder.AddListeningPort(cfg.listen, grpc::InsecureServerCredentials(), &public_port);
  public_builder.RegisterService(&generation);
  public_builder.SetMaxReceiveMessageSize(16 << 20);
  std::unique_ptr<grpc::Server> public_server = public_builder.BuildAndStart();
  if (public_server == nullptr || public_port == 0) return Fail(absl::StrCat("cannot listen on ", cfg.listen));
  grpc::ServerBuilder cluster_builder;
  cluster_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  cluster_builder.AddListeningPort(cfg.cluster_listen, grpc::InsecureServerCredentials(), &cluster_port);
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
  std::printf("strata-coordinator listening: public=%s:%d cluster=%s:%d\n", host_of(cfg.listen).c_str(), public_port,
              host_of(cfg.cluster_listen).c_str(), cluster_port);
  std::fflush(stdout);
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
