#include "worker/coordinator_client.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/comm/mpi_communicator.h"
#include "core/comm/timed_communicator.h"
#include "core/engine/model_bundle.h"
#include "core/kv/block_allocator.h"
#include "core/parallel/pipeline_executor.h"
#include "core/sampling/sampler.h"
#include "core/util/status.h"
#include "grpcpp/grpcpp.h"
#include "strata/v1/cluster.grpc.pb.h"
#include "worker/memory.h"

namespace strata {
namespace {

using strata::v1::CoordinatorMessage;
using strata::v1::WorkerMessage;

[[noreturn]] void Abort(int rank, const std::string& message) {
  std::fprintf(stderr, "strata-worker rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
  MpiSession::Abort(1);
}

std::string HostName() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

uint64_t FreeMemoryBytes() {
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * page : 0;
}

SamplingParams FromProto(const strata::v1::SamplingParams& s) {
  SamplingParams p;
  p.temperature = s.temperature();
  p.top_k = s.top_k();
  p.top_p = s.top_p();
  p.min_p = s.min_p();
  p.repetition_penalty = s.repetition_penalty();
  p.frequency_penalty = s.frequency_penalty();
  p.presence_penalty = s.presence_penalty();
  p.seed = s.seed();
  return p;
}

// Runs step plans until told to stop. Buffers are reused from step to step.
class StepRunner {
 public:
  // `reports`: this rank sends the sampled tokens (the last stage's tensor rank 0); the others
  // only run the step.
  StepRunner(PipelineExecutor* executor, int max_seqs, bool reports)
      : executor_(executor), reports_(reports), samplers_(max_seqs, Sampler({})) {
    histories_.resize(max_seqs);
  }

  absl::Status Run(const strata::v1::StepPlan& plan, strata::v1::StepResult* result) {
    batch_.Clear();
    rows_.clear();
    tables_.resize(plan.seqs_size());
    int sampled = 0;
    for (int i = 0; i < plan.seqs_size(); ++i) {
      const strata::v1::SeqStep& s = plan.seqs(i);
      if (s.tokens_size() == 0) return absl::InvalidArgumentError("a step sequence has no tokens");
      tables_[i].assign(s.block_table().begin(), s.block_table().end());
      const int32_t end = s.start_pos() + s.tokens_size();
      if (static_cast<int64_t>(tables_[i].size()) * executor_->block_size() < end) {
        return absl::InvalidArgumentError("block table too short for the step");
      }
      for (int32_t b : tables_[i]) {
        if (b < 0 || b >= executor_->n_blocks()) return absl::InvalidArgumentError("block id outside the cache");
      }
      batch_.AddSequence(s.tokens().data(), s.tokens_size(), s.start_pos(), tables_[i], executor_->block_size(),
                         s.sample());
      if (!s.sample()) continue;
      if (sampled >= static_cast<int>(samplers_.size())) return absl::InvalidArgumentError("too many sampling sequences");
      Sampler& sampler = samplers_[sampled];
      sampler.Reset(FromProto(s.sampling()), DrawSeed(s.sampling().seed(), s.draw_index()));
      std::vector<int32_t>& history = histories_[sampled];
      history.assign(s.recent_tokens().begin(), s.recent_tokens().end());
      rows_.push_back({&sampler, &history, history.size() - std::min<size_t>(history.size(), s.recent_generated()),
                       std::min(s.top_logprobs(), 20), !s.skip_logprob()});
      ++sampled;
    }
    STRATA_RETURN_IF_ERROR(executor_->Step(batch_, rows_, &out_));
    result->set_step_id(plan.step_id());
    if (!reports_) return absl::OkStatus();
    int r = 0;
    for (const strata::v1::SeqStep& s : plan.seqs()) {
      if (!s.sample()) continue;
      strata::v1::SampledToken* t = result->add_tokens();
      t->set_seq_id(s.seq_id());
      t->set_id(out_[r].id);
      t->set_logprob(out_[r].logprob);
      if (static_cast<size_t>(r) < executor_->top_logprobs().size()) {
        for (const Sampler::TokenLogprob& alt : executor_->top_logprobs()[r]) {
          strata::v1::TopLogprob* a = t->add_top_logprobs();
          a->set_id(alt.id);
          a->set_logprob(alt.logprob);
        }
      }
      ++r;
    }
    return absl::OkStatus();
  }

 private:
  PipelineExecutor* executor_;
  const bool reports_;
  std::vector<Sampler> samplers_;
  std::vector<std::vector<int32_t>> histories_;
  std::vector<std::vector<int32_t>> tables_;
  Batch batch_;
  std::vector<SampleRequest> rows_;
  std::vector<SampledToken> out_;
};

}  // namespace

int RunCoordinatorMode(const CoordinatorClientConfig& cfg, Communicator* world) {
  const int rank = world->rank();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!cfg.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = cfg.tls_ca_pem;
    creds = grpc::SslCredentials(ssl);
    if (!cfg.tls_server_name.empty()) args.SetSslTargetNameOverride(cfg.tls_server_name);
  }
  auto channel = grpc::CreateCustomChannel(cfg.coordinator, creds, args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(static_cast<int64_t>(cfg.connect_timeout_s * 1000)))) {
    Abort(rank, absl::StrCat("cannot reach the coordinator at ", cfg.coordinator,
                             cfg.tls_ca_pem.empty() ? "" : " (over TLS: check --tls-ca and the certificate's names)"));
  }
  auto stub = strata::v1::Cluster::NewStub(channel);
  grpc::ClientContext context;
  if (!cfg.join_token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", cfg.join_token));
  auto stream = stub->Attach(&context);
  WorkerMessage hello;
  hello.mutable_hello()->set_protocol_version(strata::v1::PROTOCOL_VERSION_CURRENT);
  hello.mutable_hello()->set_rank(rank);
  hello.mutable_hello()->set_world_size(world->size());
  hello.mutable_hello()->set_host(HostName());
  hello.mutable_hello()->set_device("cpu");
  hello.mutable_hello()->set_free_memory_bytes(FreeMemoryBytes());
  CoordinatorMessage in;
  if (!stream->Write(hello) || !stream->Read(&in)) {
    const grpc::Status s = stream->Finish();
    Abort(rank, absl::StrCat("the coordinator at ", cfg.coordinator,
                             s.error_code() == grpc::StatusCode::UNAUTHENTICATED ? " refused this worker: "
                                                                                  : " closed the connection: ",
                             s.error_message()));
  }
  if (in.has_reject()) Abort(rank, absl::StrCat("the coordinator refused this worker: ", in.reject().reason()));
  if (!in.has_assignment()) Abort(rank, "expected an assignment from the coordinator");
  const strata::v1::Assignment a = in.assignment();
  const ParallelLayout layout{a.tp(), a.pp(), rank};
  if (layout.world() != world->size()) {
    Abort(rank, absl::StrCat("assigned tp=", a.tp(), " x pp=", a.pp(), " but the MPI world has ", world->size(), " ranks"));
  }

  auto* mpi_world = static_cast<MpiCommunicator*>(world);
  auto tp = mpi_world->Split(layout.stage(), layout.tensor_rank());
  auto pp = mpi_world->Split(layout.tensor_rank(), layout.stage());
  if (!tp.ok() || !pp.ok()) Abort(rank, "cannot create the TP/PP communicators");
  CpuBackend backend(CpuBackendOptions{cfg.threads});
  ModelOptions mo;
  mo.max_batch_tokens = a.max_batch_tokens();
  mo.max_logit_rows = a.max_seqs();
  mo.layout = layout;
  TimedCommunicator timed_tp(tp->get());  // all-reduces inside the model, for the per-rank figures
  mo.tp_comm = &timed_tp;
  auto bundle = LoadModelBundle(a.model_path(), &backend, mo);
  if (!bundle.ok()) Abort(rank, std::string(bundle.status().message()));
  auto executor = PipelineExecutor::Create(bundle->model.get(), &backend, layout,
                                           PipelineGroups{world, tp->get(), pp->get()}, a.kv_block_size(), a.kv_blocks());
  if (!executor.ok()) Abort(rank, std::string(executor.status().message()));
  (*executor)->set_broadcast_results(false);  // only the last stage reports; others run ahead
  int64_t rss = 0, peak = 0;
  ResidentBytes(&rss, &peak);
  WorkerMessage ready;
  ready.mutable_ready()->set_resident_bytes(static_cast<uint64_t>(rss));
  if (!stream->Write(ready)) Abort(rank, "lost the coordinator while loading");
  std::fprintf(stderr, "strata-worker rank %d (%s): ready, %s\n", rank, layout.ToString().c_str(),
               MemoryReport(*bundle->model).c_str());

  const bool reports = layout.last_stage() && layout.tensor_rank() == 0;
  StepRunner runner(executor->get(), a.max_seqs(), reports);
  strata::v1::RankStats stats;
  stats.set_resident_bytes(static_cast<uint64_t>(rss));
  auto rss_sampled = std::chrono::steady_clock::now();
  while (stream->Read(&in)) {
    if (in.has_shutdown()) break;
    if (!in.has_step()) continue;
    WorkerMessage out;
    const double step_before = (*executor)->step_seconds();
    absl::Status s = runner.Run(in.step(), out.mutable_result());
    // This rank's running figures go back with every step; reading /proc costs ~20 us, so the
    // resident size is sampled at most once a second.
    const double comm = (*executor)->comm_seconds() + timed_tp.seconds();
    stats.set_steps(stats.steps() + 1);
    stats.set_step_seconds((*executor)->step_seconds());
    stats.set_comm_seconds(comm);
    stats.set_compute_seconds(std::max(0.0, stats.step_seconds() - comm));
    stats.set_last_step_seconds((*executor)->step_seconds() - step_before);
    if (std::chrono::steady_clock::now() - rss_sampled > std::chrono::seconds(1)) {
      ResidentBytes(&rss, &peak);
      stats.set_resident_bytes(static_cast<uint64_t>(rss));
      rss_sampled = std::chrono::steady_clock::now();
    }
    *out.mutable_result()->mutable_stats() = stats;
    if (!s.ok()) {
      // Every rank got the same plan, so a bad plan fails everywhere alike; a failed collective
      // leaves the group unusable: stop the job so the coordinator sees the workers go.
      if (s.code() != absl::StatusCode::kInvalidArgument) Abort(rank, absl::StrCat("step failed: ", s.message()));
      out.mutable_result()->set_step_id(in.step().step_id());
      out.mutable_result()->set_error(std::string(s.message()));
    }
    if (!stream->Write(out)) break;
  }
  context.TryCancel();
  std::fprintf(stderr, "strata-worker rank %d: coordinator closed the connection, exiting\n", rank);
  return 0;
}

}  // namespace strata
