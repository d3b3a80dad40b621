// strata-worker: one rank of a TP × PP group, launched by mpirun (or srun).
//
// Coordinator mode: every rank dials the coordinator, which assigns the model and layout and
// sends the steps to run.
//   mpirun -np T*P strata-worker --coordinator HOST:PORT [--threads N] [--tls-ca PEM]
//   (the cluster's join token from --join-token-file or $STRATA_JOIN_TOKEN)
// Standalone mode (no coordinator): every rank loads its shard and runs the same engine in
// lockstep; rank 0 prints the generation.
//   mpirun -np T*P strata-worker --model PATH --tp T --pp P --prompt TEXT [--max-tokens N] [--json]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "cli/generation_flags.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/comm/mpi_communicator.h"
#include "core/comm/timed_communicator.h"
#include "core/engine/engine.h"
#include "core/engine/json_lines.h"
#include "core/engine/model_bundle.h"
#include "core/model/gguf.h"
#include "core/parallel/pipeline_executor.h"
#include "core/util/read_file.h"
#include "worker/coordinator_client.h"
#include "worker/memory.h"

namespace {

using namespace strata;  // NOLINT: a main file

struct WorkerConfig {
  std::string coordinator, model, prompt, dump_logits;
  std::string tls_ca, tls_server_name, join_token_file;
  int64_t tp = 1, pp = 1, threads = 0;
  bool json = false, report_memory = false, timings = false;
  GenerationRequest request;
};

// An error every rank reaches on its own (bad flags, a layout the model cannot take): each rank
// exits with it, no rank waits on another. Only rank 0 prints, so the message appears once.
int FailAll(int rank, const std::string& message, int code) {
  if (rank == 0) std::fprintf(stderr, "strata-worker: %s\n", message.c_str());
  return code;
}

// An error on some ranks only (a missing file on one host, a broken link): stop the whole job so
// no rank hangs waiting for this one.
[[noreturn]] void AbortJob(int rank, const std::string& message) {
  std::fprintf(stderr, "strata-worker rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
  MpiSession::Abort(1);
}

int Run(int rank, int world_size, const std::vector<std::string>& args) {
  WorkerConfig cfg;
  cli::GenerationFlags gen;
  cli::FlagSet flags("worker");
  flags.String("coordinator", &cfg.coordinator, "HOST:PORT of the coordinator's cluster service (coordinator mode)");
  flags.String("tls-ca", &cfg.tls_ca, "PEM CA of the coordinator's cluster certificate; dial it with TLS");
  flags.String("tls-server-name", &cfg.tls_server_name,
               "name to verify in the coordinator's certificate (default: the host of --coordinator)");
  flags.String("join-token-file", &cfg.join_token_file,
               "file holding the cluster's join token (default: $STRATA_JOIN_TOKEN)");
  flags.String("model", &cfg.model, "GGUF model file, readable on every host (required)");
  flags.Int("tp", &cfg.tp, "tensor-parallel ranks per stage (default 1)");
  flags.Int("pp", &cfg.pp, "pipeline stages (default 1)");
  flags.String("prompt", &cfg.prompt, "prompt text (required)");
  gen.Register(&flags);
  flags.Int("threads", &cfg.threads, "CPU threads per rank (default: cores / ranks on this host, at least 1)");
  flags.Bool("json", &cfg.json, "one JSON object per token; the last line has finish reason and usage");
  flags.Bool("report-memory", &cfg.report_memory, "each rank prints its resident memory and weight bytes");
  flags.Bool("timings", &cfg.timings,
             "each rank prints its time per step and the part spent communicating (all-reduce, stage sends)");
  flags.String("dump-logits", &cfg.dump_logits, "append each step's full logits (f32, n_vocab per step) to FILE");
  if (absl::Status s = flags.Parse(args); !s.ok()) return FailAll(rank, std::string(s.message()), 2);
  if (flags.help_requested()) {
    if (rank == 0) std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (!cfg.coordinator.empty()) {
    if (flags.was_set("model") || flags.was_set("prompt") || flags.was_set("tp") || flags.was_set("pp")) {
      return FailAll(rank, "with --coordinator the model and layout come from the coordinator; drop --model, "
                           "--prompt, --tp and --pp", 2);
    }
    CoordinatorClientConfig cc;
    cc.coordinator = cfg.coordinator;
    cc.tls_server_name = cfg.tls_server_name;
    if (!cfg.tls_ca.empty()) {
      absl::StatusOr<std::string> pem = ReadPemCertificate(cfg.tls_ca);
      if (!pem.ok()) return FailAll(rank, absl::StrCat("--tls-ca: ", pem.status().message()), 2);
      cc.tls_ca_pem = *pem;
    } else if (!cfg.tls_server_name.empty()) {
      return FailAll(rank, "--tls-server-name needs --tls-ca", 2);
    }
    if (!cfg.join_token_file.empty()) {
      absl::StatusOr<std::string> token = ReadTrimmedFile(cfg.join_token_file);
      if (!token.ok()) return FailAll(rank, absl::StrCat("--join-token-file: ", token.status().message()), 2);
      cc.join_token = *token;
    } else if (const char* env = std::getenv("STRATA_JOIN_TOKEN"); env != nullptr) {
      cc.join_token = env;
    }
    cc.threads = cfg.threads > 0 ? static_cast<int>(cfg.threads) : DefaultThreadsPerRank();
    auto world = MpiCommunicator::World();
    return RunCoordinatorMode(cc, world.get());
  }
  if (cfg.model.empty()) return FailAll(rank, "--model is required (or --coordinator)", 2);
  if (!flags.was_set("prompt")) return FailAll(rank, "--prompt is required", 2);
  if (cfg.tp < 1 || cfg.pp < 1 || cfg.tp > 4096 || cfg.pp > 4096) {
    return FailAll(rank, absl::StrCat("--tp and --pp must be positive, got tp=", cfg.tp, " pp=", cfg.pp), 2);
  }
  if (cfg.tp * cfg.pp != world_size) {
    return FailAll(rank,
                   absl::StrCat("world size is ", world_size, " but --tp ", cfg.tp, " x --pp ", cfg.pp, " = ",
                                cfg.tp * cfg.pp, "; launch with mpirun -np ", cfg.tp * cfg.pp),
                   2);
  }
  if (absl::Status s = gen.Fill(flags, &cfg.request); !s.ok()) return FailAll(rank, std::string(s.message()), 2);

  ParallelLayout layout{static_cast<int>(cfg.tp), static_cast<int>(cfg.pp), rank};
  auto world = MpiCommunicator::World();
  // Everyone must agree on the seed; rank 0's (possibly random) seed wins.
  if (!world->Broadcast(&cfg.request.sampling.seed, sizeof(uint64_t), 0).ok()) AbortJob(rank, "broadcast failed");
  auto tp = world->Split(layout.stage(), layout.tensor_rank());
  auto pp = world->Split(layout.tensor_rank(), layout.stage());
  if (!tp.ok() || !pp.ok()) AbortJob(rank, "cannot create the TP/PP communicators");

  const int threads = cfg.threads > 0 ? static_cast<int>(cfg.threads) : DefaultThreadsPerRank();
  CpuBackend backend(CpuBackendOptions{threads});
  ModelOptions mo;
  mo.max_logit_rows = 1;
  mo.layout = layout;
  TimedCommunicator timed_tp(tp->get());  // all-reduces inside the model, timed for --timings
  mo.tp_comm = &timed_tp;
  // A layout the model cannot take is found the same way on every rank: each exits with the message.
  absl::StatusOr<std::unique_ptr<gguf::GgufFile>> file = gguf::GgufFile::Open(cfg.model);
  if (!file.ok()) AbortJob(rank, std::string(file.status().message()));
  absl::StatusOr<ModelConfig> config = ReadModelConfig(**file);
  if (!config.ok()) AbortJob(rank, std::string(config.status().message()));
  if (absl::Status s = ValidateLayout(*config, layout); !s.ok()) {
    return FailAll(rank, absl::StrCat(cfg.model, ": ", s.message()), 2);
  }
  absl::StatusOr<ModelBundle> bundle = LoadModelBundle(std::move(*file), &backend, mo);
  if (!bundle.ok()) AbortJob(rank, std::string(bundle.status().message()));
  const Model& model = *bundle->model;
  if (cfg.report_memory) {
    std::printf("rank %d %s: %s\n", rank, layout.ToString().c_str(), MemoryReport(model).c_str());
    std::fflush(stdout);
  }
  auto executor = PipelineExecutor::Create(bundle->model.get(), &backend, layout,
                                           PipelineGroups{world.get(), tp->get(), pp->get()}, 16,
                                           BlocksFor(model.config().n_ctx, 16));
  if (!executor.ok()) AbortJob(rank, std::string(executor.status().message()));
  FILE* dump = nullptr;
  if (!cfg.dump_logits.empty()) {
    (*executor)->set_logits_observer([&dump, &cfg, rank](const float* row, int32_t n) {
      if (dump == nullptr) dump = std::fopen(cfg.dump_logits.c_str(), "wb");
      if (dump == nullptr) AbortJob(rank, absl::StrCat("cannot write ", cfg.dump_logits));
      std::fwrite(row, sizeof(float), n, dump);
    });
  }
  EngineOptions eo;
  eo.max_seqs = 1;
  auto engine = Engine::Create(executor->get(), bundle->tokenizer.get(), eo);
  if (!engine.ok()) AbortJob(rank, std::string(engine.status().message()));

  cfg.request.prompt = bundle->tokenizer->Encode(cfg.prompt, bundle->tokenizer->add_bos());
  if (absl::Status s = (*engine)->Validate(cfg.request); !s.ok()) return FailAll(rank, std::string(s.message()), 2);
  const auto t0 = std::chrono::steady_clock::now();
  auto out = (*engine)->Generate({cfg.request}, [&](size_t, const GeneratedToken& t) {
    if (rank != 0) return;
    if (cfg.json) std::printf("%s\n", TokenJsonLine(t).c_str());
    else std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    std::fflush(stdout);
  });
  if (dump != nullptr) std::fclose(dump);
  if (!out.ok()) AbortJob(rank, std::string(out.status().message()));
  if (cfg.timings) {
    // Steps = prompt prefill + one per generated token after the first.
    const PipelineExecutor& ex = **executor;
    const double steps = std::max<double>(1, out->front().completion_tokens);
    std::fprintf(stderr,
                 "timings rank %d (stage %d, tensor rank %d): %.0f steps, %.2f ms/step, of which all-reduce %.3f ms "
                 "(%lld calls), stage send/recv + sampling exchange %.3f ms\n",
                 rank, layout.stage(), layout.tensor_rank(), steps, 1000 * ex.step_seconds() / steps,
                 1000 * timed_tp.seconds() / steps, static_cast<long long>(timed_tp.calls()),
                 1000 * ex.comm_seconds() / steps);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rank == 0) {
    std::printf("%s\n", cfg.json ? FinishJsonLine(out->front(), cfg.request.sampling.seed).c_str() : "");
    std::fprintf(stderr, "[%d ranks, tp=%lld pp=%lld, %d threads each] %d tokens in %.2f s (%.2f tokens/s)\n",
                 world_size, static_cast<long long>(cfg.tp), static_cast<long long>(cfg.pp), threads,
                 out->front().completion_tokens, secs, out->front().completion_tokens / secs);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto session = MpiSession::Init(&argc, &argv);
  if (!session.ok()) {
    std::fprintf(stderr, "strata-worker: %s\n", std::string(session.status().message()).c_str());
    return 1;
  }
  auto world = MpiCommunicator::World();
  const int rank = world->rank(), size = world->size();
  world.reset();
  const int rc = Run(rank, size, std::vector<std::string>(argv + 1, argv + argc));
  return rc;
}
