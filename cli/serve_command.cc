// strata serve --model PATH [--tp T] [--pp P] [--listen HOST:PORT] [--threads N] ...
// A coordinator and a local worker group in one command:
//   1. strata-coordinator --model PATH --tp T --pp P --listen LISTEN --cluster-listen 127.0.0.1:0
//      prints "strata-coordinator listening: public=HOST:PORT cluster=HOST:PORT" on its stdout;
//   2. mpirun -np T*P --oversubscribe --bind-to none strata-worker --coordinator CLUSTER [--threads N];
//   3. grpc.health.v1 Check on the public address every 100 ms until SERVING, then
//      "strata serve: serving MODEL (tp=T, pp=P) on HOST:PORT" on stdout.
// Both children run in their own process group and get SIGTERM when this process dies
// (PR_SET_PDEATHSIG); serve is a child subreaper, so MPI ranks orphaned by a dying mpirun are
// adopted, stopped and reaped here rather than left behind. On SIGINT or SIGTERM both are stopped
// (SIGTERM, SIGKILL after 10 s) and serve exits 0; when a child exits on its own the other is
// stopped and serve exits 1. serve's stdout carries only its own status line: the coordinator's later output
// and the workers' output go to stderr.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/grpc_util.h"
#include "core/util/read_file.h"

extern char** environ;

namespace strata::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStopTimeout = std::chrono::seconds(10);  // SIGTERM → SIGKILL, beyond the coordinator's drain
constexpr auto kWorkerGrace = std::chrono::seconds(3);   // workers leave on their own once the coordinator is gone
constexpr auto kHealthPollInterval = std::chrono::milliseconds(100);

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "strata serve: %s\n", message.c_str());
  return code;
}

struct ServeConfig {
  std::string model, display_model, listen = "127.0.0.1:50051";
  int64_t tp = 1, pp = 1, threads = 0;
  double startup_timeout = 120;
  int64_t restarts = 10;  // worker-group relaunches allowed (0: a dead group stops serve)
  double broken_after = 3;
  double drain_timeout = 30;  // seconds NOT_SERVING after serving before a running group counts as broken
  std::vector<std::string> coordinator_limits;  // pass-through "--flag", "value" pairs
  // TLS for both ports: the coordinator's certificate and key, the CA the workers and serve's own
  // health probe trust (default: the certificate itself, as for a self-signed one), the name they
  // verify. API keys are passed through.
  std::string tls_cert, tls_key, tls_ca, tls_server_name, api_keys;
  std::string metrics_listen;  // passed through: the coordinator's Prometheus endpoint
  std::string tls_ca_pem;
  std::string join_token;  // random per run unless $STRATA_JOIN_TOKEN is set
};

// 32 random bytes as hex, from the kernel's generator.
std::string RandomToken() {
  unsigned char bytes[32];
  std::FILE* f = std::fopen("/dev/urandom", "rb");
  const bool ok = f != nullptr && std::fread(bytes, 1, sizeof(bytes), f) == sizeof(bytes);
  if (f != nullptr) std::fclose(f);
  if (!ok) return "";
  std::string hex;
  for (unsigned char b : bytes) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  return hex;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("ended with wait status ", status);
}

// The directory of the running `strata` binary, where strata-coordinator and strata-worker live.
std::string SelfDirectory() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

std::optional<std::string> FindInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + program;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

// A child process in its own process group (pgid == pid).
struct Child {
  explicit Child(std::string n) : name(std::move(n)) {}
  std::string name;
  pid_t pid = -1;
  bool running = false;
  int wait_status = 0;
  Clock::time_point exited_at;
};

// Starts argv[0] with the extra environment, stdin from /dev/null and stdout on `stdout_fd`, in a
// new process group, set to receive SIGTERM when this process dies. Returns an error message when
// the program could not be started (reported through a close-on-exec pipe).
std::string Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env, int stdout_fd,
                  Child* child) {
  // Everything the child needs is built before fork: only async-signal-safe calls happen after it.
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> env_storage(extra_env);
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& x : extra_env) overridden |= x.compare(0, key.size() + 1, key + "=") == 0;
    if (!overridden) env_storage.push_back(entry);
  }
  std::vector<char*> cenv;
  for (const std::string& e : env_storage) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2];
  if (devnull < 0 || pipe2(report, O_CLOEXEC) != 0)
    return absl::StrCat("cannot start ", argv[0], ": ", strerror(errno));
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(devnull), close(report[0]), close(report[1]);
    return absl::StrCat("cannot start ", argv[0], ": fork: ", strerror(err));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);  // serve died before prctl took effect
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGQUIT, SIGHUP}) sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(devnull, STDIN_FILENO);
    if (stdout_fd >= 0) dup2(stdout_fd, STDOUT_FILENO);
    execve(cargv[0], cargv.data(), cenv.data());
    const int err = errno;
    ssize_t ignored = write(report[1], &err, sizeof(err));
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before anyone signals it
  close(devnull);
  close(report[1]);
  int err = 0;
  ssize_t n;
  do n = read(report[0], &err, sizeof(err));
  while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n > 0) {
    waitpid(pid, nullptr, 0);
    return absl::StrCat("cannot run ", argv[0], ": ", strerror(err));
  }
  child->pid = pid;
  child->running = true;
  return "";
}

// Owns the two children and the signals: SIGINT, SIGTERM and SIGCHLD are blocked and read from a
// signalfd, so every wait below is a poll() that also notices a signal or a child's exit.
class Supervisor {
 public:
  enum class Event { kNone, kStopRequested, kChildExited };

  Supervisor() {
    // Orphaned descendants (MPI ranks of a killed mpirun) become our children, so none outlives us.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGCHLD}) {
      // A background job of a non-interactive shell starts with SIGINT ignored, and an ignored
      // signal is dropped even while blocked: take the default first, then block.
      ::signal(sig, SIG_DFL);
      sigaddset(&set, sig);
    }
    sigprocmask(SIG_BLOCK, &set, nullptr);
    signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  }
  ~Supervisor() {
    if (coordinator_out_ >= 0) close(coordinator_out_);
    if (signal_fd_ >= 0) close(signal_fd_);
  }
  bool ok() const { return signal_fd_ >= 0; }

  Child& coordinator() { return coordinator_; }
  Child& workers() { return workers_; }

  // The read end of the coordinator's stdout: its first line is collected, the rest goes to stderr.
  void set_coordinator_out(int fd) { coordinator_out_ = fd; }
  const std::optional<std::string>& first_line() const { return first_line_; }
  bool coordinator_out_closed() const { return coordinator_out_ < 0; }

  // Waits up to `timeout` (forever when negative) for a signal, a child's exit or coordinator
  // output. Reports the first child that exited (once) or a stop request.
  Event Wait(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {coordinator_out_, POLLIN, 0}};
    const int n = poll(fds, coordinator_out_ >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
    if (n > 0 && coordinator_out_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) ReadCoordinatorOutput();
    Event event = Event::kNone;
    signalfd_siginfo info;
    while (read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      if (info.ssi_signo == SIGINT || info.ssi_signo == SIGTERM) {
        ++stop_requests_;
        event = Event::kStopRequested;
      }
    }
    if (Reap() && event == Event::kNone) event = Event::kChildExited;
    if (event == Event::kNone && stop_requests_ > 0 && !stop_reported_) event = Event::kStopRequested;
    if (event == Event::kStopRequested) stop_reported_ = true;
    return event;
  }

  // The child that exited on its own, if any (the first one).
  const Child* exited_child() const { return first_exited_; }
  // The worker group is being replaced: forget that it exited.
  void ForgetWorkerExit() {
    if (first_exited_ == &workers_) first_exited_ = nullptr;
  }

  // Kills the worker group (mpirun's process group, and ranks orphaned from it: they were adopted
  // by this process) and reaps it: used when the group is broken, e.g. a rank hangs.
  void KillWorkers() {
    if (workers_.running) {
      Signal(workers_, SIGKILL);
      if (waitpid(workers_.pid, &workers_.wait_status, 0) == workers_.pid) workers_.running = false;
    }
    for (pid_t pid : Children()) {
      if (coordinator_.running && pid == coordinator_.pid) continue;
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    ForgetWorkerExit();
  }

  // Stops both children: SIGTERM to the coordinator (which tells the workers to shut down), then
  // to the workers' process group once the coordinator is gone and they have not left by
  // themselves, SIGKILL to whatever is left after kStopTimeout (or at once on a second signal).
  // Also stops processes left in either group after its leader exited (orphaned MPI ranks).
  void StopAll() {
    const auto deadline = Clock::now() + kStopTimeout + drain_timeout_;
    const int stop_requests_before = stop_requests_;
    if (coordinator_.running) Signal(coordinator_, SIGTERM);
    bool workers_signalled = false;
    while (coordinator_.running || workers_.running) {
      const auto now = Clock::now();
      const bool hurry = stop_requests_ > stop_requests_before;  // a second Ctrl-C
      if (now >= deadline || hurry) {
        for (Child* c : {&coordinator_, &workers_}) {
          if (c->running) {
            std::fprintf(stderr, "strata serve: %s (pid %d) did not stop; killing it\n", c->name.c_str(), c->pid);
            Signal(*c, SIGKILL);
          }
        }
        for (Child* c : {&coordinator_, &workers_}) {
          if (c->running && waitpid(c->pid, &c->wait_status, 0) == c->pid) c->running = false;
        }
        break;
      }
      if (!coordinator_.running && workers_.running && !workers_signalled &&
          now >= coordinator_.exited_at + kWorkerGrace) {
        Signal(workers_, SIGTERM);
        workers_signalled = true;
      }
      Wait(std::chrono::milliseconds(50));
    }
    // Stragglers: descendants orphaned on the way (MPI ranks whose mpirun was killed) were adopted
    // by this process (a child subreaper); stop and reap them too.
    std::vector<pid_t> orphans = Children();
    if (orphans.empty()) return;
    for (pid_t pid : orphans) kill(pid, SIGTERM);
    const auto until = std::max(Clock::now() + std::chrono::seconds(2), deadline);
    while (!(orphans = Children()).empty() && Clock::now() < until) {
      Reap();
      usleep(20000);
    }
    for (pid_t pid : orphans) {
      std::fprintf(stderr, "strata serve: killing leftover process %d\n", pid);
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }

 private:
  static void Signal(const Child& c, int sig) {
    if (kill(-c.pid, sig) != 0) kill(c.pid, sig);
  }

  // Collects exited children (and adopted orphans); true when one of the two exited since the last call.
  bool Reap() {
    bool any = false;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      for (Child* c : {&coordinator_, &workers_}) {
        if (!c->running || c->pid != pid) continue;
        c->running = false;
        c->wait_status = status;
        c->exited_at = Clock::now();
        if (first_exited_ == nullptr) first_exited_ = c;
        any = true;
      }
    }
    return any;
  }

  // Processes whose parent is this one (from /proc/PID/stat: "pid (comm) state ppid ...").
  static std::vector<pid_t> Children() {
    std::vector<pid_t> out;
    const pid_t self = getpid();
    DIR* proc = opendir("/proc");
    if (proc == nullptr) return out;
    while (dirent* e = readdir(proc)) {
      char* end;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (*end != '\0' || pid <= 0) continue;
      FILE* f = std::fopen(absl::StrCat("/proc/", e->d_name, "/stat").c_str(), "r");
      if (f == nullptr) continue;
      char buf[512];
      const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
      std::fclose(f);
      buf[n] = '\0';
      const char* paren = std::strrchr(buf, ')');
      char state;
      long ppid;
      if (paren != nullptr && std::sscanf(paren + 1, " %c %ld", &state, &ppid) == 2 && ppid == self) {
        out.push_back(static_cast<pid_t>(pid));
      }
    }
    closedir(proc);
    return out;
  }

  void ReadCoordinatorOutput() {
    char buf[4096];
    const ssize_t n = read(coordinator_out_, buf, sizeof(buf));
    if (n <= 0) {
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
      close(coordinator_out_);
      coordinator_out_ = -1;
      return;
    }
    if (first_line_) {
      ssize_t ignored = write(STDERR_FILENO, buf, static_cast<size_t>(n));
      (void)ignored;
      return;
    }
    pending_.append(buf, static_cast<size_t>(n));
    if (const size_t nl = pending_.find('\n'); nl != std::string::npos) {
      first_line_ = pending_.substr(0, nl);
      if (nl + 1 < pending_.size()) {
        ssize_t ignored = write(STDERR_FILENO, pending_.data() + nl + 1, pending_.size() - nl - 1);
        (void)ignored;
      }
      pending_.clear();
    }
  }

  int signal_fd_ = -1;
  int coordinator_out_ = -1;
  std::string pending_;
  std::optional<std::string> first_line_;
  Child coordinator_{"strata-coordinator"}, workers_{"mpirun (the workers)"};
  const Child* first_exited_ = nullptr;
  int stop_requests_ = 0;

 public:
  // How long the coordinator may drain running requests after SIGTERM.
  Clock::duration drain_timeout_ = std::chrono::seconds(30);

 private:
  bool stop_reported_ = false;
};

// "strata-coordinator listening: public=HOST:PORT cluster=HOST:PORT [metrics=HOST:PORT]" → the addresses.
bool ParseListeningLine(const std::string& line, std::string* public_addr, std::string* cluster_addr,
                        std::string* metrics_addr) {
  auto field = [&line](const std::string& key, std::string* out) {
    const size_t at = line.find(key);
    if (at == std::string::npos) return false;
    const size_t start = at + key.size();
    const size_t end = line.find_first_of(" \t\r", start);
    *out = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    return !out->empty();
  };
  field("metrics=", metrics_addr);  // only with --metrics-listen
  return line.rfind("strata-coordinator listening:", 0) == 0 && field("public=", public_addr) &&
         field("cluster=", cluster_addr);
}

// Where to connect to reach a server bound to `addr` on this machine: wildcard hosts become loopback.
std::string LocalDialAddress(const std::string& addr) {
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return addr;
  const std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  if (host == "0.0.0.0" || host.empty()) return "127.0.0.1:" + port;
  if (host == "[::]" || host == "::") return "[::1]:" + port;
  return addr;
}

int ReportChildExit(Supervisor* sup, const std::string& phase) {
  const Child* dead = sup->exited_child();
  const Child& other = dead == &sup->coordinator() ? sup->workers() : sup->coordinator();
  const char* other_name = &other == &sup->workers() ? "the workers" : "strata-coordinator";
  std::fprintf(stderr, "strata serve: %s, pid %d, %s %s%s\n", dead->name.c_str(), dead->pid,
               DescribeWaitStatus(dead->wait_status).c_str(), phase.c_str(),
               other.running ? absl::StrCat("; stopping ", other_name).c_str() : "");
  sup->StopAll();
  return 1;
}

int Serve(const ServeConfig& cfg, const std::string& coordinator_bin, const std::string& worker_bin,
          const std::string& mpirun) {
  Supervisor sup;
  if (!sup.ok()) return Fail(absl::StrCat("signalfd: ", strerror(errno)), 1);
  sup.drain_timeout_ = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.drain_timeout));
  const auto startup_deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.startup_timeout));
  auto remaining = [&] {
    return std::max<std::chrono::milliseconds>(
        std::chrono::milliseconds(0),
        std::chrono::duration_cast<std::chrono::milliseconds>(startup_deadline - Clock::now()));
  };
  auto startup_timed_out = [&](const std::string& what) {
    std::fprintf(stderr, "strata serve: %s within --startup-timeout %g s; stopping\n", what.c_str(),
                 cfg.startup_timeout);
    sup.StopAll();
    return 1;
  };

  // 1. The coordinator, with its stdout on a pipe: it prints the addresses it bound.
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Fail(absl::StrCat("pipe: ", strerror(errno)), 1);
  std::vector<std::string> coordinator_argv = {coordinator_bin,  "--model", cfg.model,
                                               "--tp",           absl::StrCat(cfg.tp),
                                               "--pp",           absl::StrCat(cfg.pp),
                                               "--listen",       cfg.listen,
                                               "--cluster-listen", "127.0.0.1:0"};
  coordinator_argv.insert(coordinator_argv.end(), cfg.coordinator_limits.begin(), cfg.coordinator_limits.end());
  if (!cfg.tls_cert.empty()) coordinator_argv.insert(coordinator_argv.end(), {"--tls-cert", cfg.tls_cert, "--tls-key", cfg.tls_key});
  if (!cfg.api_keys.empty()) coordinator_argv.insert(coordinator_argv.end(), {"--api-keys", cfg.api_keys});
  if (!cfg.metrics_listen.empty()) {
    coordinator_argv.insert(coordinator_argv.end(), {"--metrics-listen", cfg.metrics_listen});
  }
  // The join token travels in the environment, not argv, which any user can read in ps.
  const std::string token_env = absl::StrCat("STRATA_JOIN_TOKEN=", cfg.join_token);
  std::string error = Spawn(coordinator_argv, {token_env}, out[1], &sup.coordinator());
  close(out[1]);
  if (!error.empty()) {
    close(out[0]);
    return Fail(error, 1);
  }
  fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
  sup.set_coordinator_out(out[0]);
  while (!sup.first_line()) {
    if (remaining().count() == 0) return startup_timed_out("strata-coordinator did not report its addresses");
    const Supervisor::Event e = sup.Wait(std::min(remaining(), std::chrono::milliseconds(500)));
    if (e == Supervisor::Event::kStopRequested) return sup.StopAll(), 0;
    if (e == Supervisor::Event::kChildExited) return ReportChildExit(&sup, "before reporting its addresses");
    if (sup.coordinator_out_closed() && !sup.first_line()) {
      // Most likely it is exiting (it could not bind, say): report how, if it does so soon.
      const auto until = Clock::now() + std::chrono::seconds(3);
      while (Clock::now() < until) {
        const Supervisor::Event e2 = sup.Wait(std::chrono::milliseconds(50));
        if (e2 == Supervisor::Event::kChildExited) return ReportChildExit(&sup, "before reporting its addresses");
        if (e2 == Supervisor::Event::kStopRequested) return sup.StopAll(), 0;
      }
      std::fprintf(stderr, "strata serve: strata-coordinator closed its stdout without reporting its addresses\n");
      sup.StopAll();
      return 1;
    }
  }
  std::string public_addr, cluster_addr, metrics_addr;
  if (!ParseListeningLine(*sup.first_line(), &public_addr, &cluster_addr, &metrics_addr)) {
    std::fprintf(stderr, "strata serve: unexpected first line from strata-coordinator: '%s'\n",
                 sup.first_line()->c_str());
    sup.StopAll();
    return 1;
  }

  std::fprintf(stderr, "strata serve: workers attach at %s (%s, join token required)\n", cluster_addr.c_str(),
               cfg.tls_cert.empty() ? "plaintext" : "TLS");

  // 2. The workers, one MPI job. Their stdout goes to our stderr.
  std::vector<std::string> mpirun_argv = {mpirun, "-np", absl::StrCat(cfg.tp * cfg.pp), "--oversubscribe",
                                          "--bind-to", "none", "-x", "STRATA_JOIN_TOKEN",
                                          worker_bin, "--coordinator", cluster_addr};
  if (!cfg.tls_ca.empty()) mpirun_argv.insert(mpirun_argv.end(), {"--tls-ca", cfg.tls_ca});
  if (!cfg.tls_server_name.empty()) mpirun_argv.insert(mpirun_argv.end(), {"--tls-server-name", cfg.tls_server_name});
  if (cfg.threads > 0) mpirun_argv.insert(mpirun_argv.end(), {"--threads", absl::StrCat(cfg.threads)});
  std::vector<std::string> mpi_env = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", token_env};
  for (const char* key : {"OMPI_MCA_btl_tcp_if_include", "OMPI_MCA_oob_tcp_if_include"}) {
    if (std::getenv(key) == nullptr) mpi_env.push_back(absl::StrCat(key, "=lo"));  // one host: loopback only
  }
  // Spawn prepares everything before fork, so it is safe after gRPC has started threads.
  auto start_workers = [&]() { return Spawn(mpirun_argv, mpi_env, STDERR_FILENO, &sup.workers()); };
  error = start_workers();
  if (!error.empty()) {
    std::fprintf(stderr, "strata serve: %s\n", error.c_str());
    sup.StopAll();
    return 1;
  }

  // 3. Health checks until every worker is attached and ready. No fork happens after this point
  // (gRPC starts threads).
  std::shared_ptr<grpc::Channel> channel;
  if (cfg.tls_cert.empty()) {
    channel = grpc::CreateChannel(LocalDialAddress(public_addr), grpc::InsecureChannelCredentials());
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = cfg.tls_ca_pem;
    grpc::ChannelArguments args;
    if (!cfg.tls_server_name.empty()) args.SetSslTargetNameOverride(cfg.tls_server_name);
    channel = grpc::CreateCustomChannel(LocalDialAddress(public_addr), grpc::SslCredentials(ssl), args);
  }
  std::string last_health = "no answer yet";
  for (;;) {
    const auto call_deadline = std::chrono::system_clock::now() +
                               std::min<std::chrono::milliseconds>(std::chrono::seconds(1),
                                                                   std::max(remaining(), std::chrono::milliseconds(1)));
    HealthStatus health = HealthStatus::kUnknown;
    const grpc::Status s = CheckHealth(channel, "", call_deadline, &health);
    if (s.ok() && health == HealthStatus::kServing) break;
    last_health =
        s.ok() ? HealthStatusName(health) : absl::StrCat(StatusCodeName(s.error_code()), ": ", s.error_message());
    if (remaining().count() == 0) return startup_timed_out(absl::StrCat("not serving (health: ", last_health, ")"));
    const auto wait_until = Clock::now() + kHealthPollInterval;
    for (;;) {
      const Supervisor::Event e = sup.Wait(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(wait_until - Clock::now(), Clock::duration(0))));
      if (e == Supervisor::Event::kStopRequested) return sup.StopAll(), 0;
      if (e == Supervisor::Event::kChildExited) return ReportChildExit(&sup, "before serving");
      if (Clock::now() >= wait_until) break;
    }
  }
  if (!metrics_addr.empty()) std::printf("strata serve: metrics on http://%s/metrics\n", metrics_addr.c_str());
  std::printf("strata serve: serving %s (tp=%lld, pp=%lld) on %s\n", cfg.display_model.c_str(),
              static_cast<long long>(cfg.tp), static_cast<long long>(cfg.pp), public_addr.c_str());
  std::fflush(stdout);

  // 4. Serve until told to stop. A worker group that dies (a rank killed) or breaks (a rank hung:
  // the coordinator drops the group after its step timeout and health stays NOT_SERVING) is
  // killed and relaunched; the coordinator keeps the requests and resumes them by recompute.
  int64_t restarts_left = cfg.restarts;
  bool group_served = true;  // the current group has been SERVING (a relaunched one is loading)
  auto not_serving_since = Clock::time_point::max();
  auto next_health = Clock::now();
  auto relaunch = [&](const std::string& why) -> bool {
    if (restarts_left <= 0) {
      std::fprintf(stderr, "strata serve: the workers %s and no restarts are left (--restart-workers %lld)\n",
                   why.c_str(), static_cast<long long>(cfg.restarts));
      return false;
    }
    --restarts_left;
    std::fprintf(stderr, "strata serve: the workers %s; relaunching them (%lld restarts left)\n", why.c_str(),
                 static_cast<long long>(restarts_left));
    sup.KillWorkers();
    const std::string err = start_workers();
    if (!err.empty()) {
      std::fprintf(stderr, "strata serve: %s\n", err.c_str());
      return false;
    }
    not_serving_since = Clock::time_point::max();
    group_served = false;
    return true;
  };
  for (;;) {
    const Supervisor::Event e = sup.Wait(std::chrono::milliseconds(200));
    if (e == Supervisor::Event::kStopRequested) {
      std::fprintf(stderr, "strata serve: stopping\n");
      sup.StopAll();
      return 0;
    }
    if (e == Supervisor::Event::kChildExited) {
      if (sup.exited_child() != &sup.workers()) return ReportChildExit(&sup, "while serving");
      if (!relaunch(absl::StrCat("exited (", DescribeWaitStatus(sup.workers().wait_status), ")"))) {
        return ReportChildExit(&sup, "while serving");
      }
      continue;
    }
    if (Clock::now() < next_health) continue;
    next_health = Clock::now() + std::chrono::seconds(1);
    HealthStatus health = HealthStatus::kUnknown;
    const grpc::Status hs =
        CheckHealth(channel, "", std::chrono::system_clock::now() + std::chrono::seconds(1), &health);
    if (!hs.ok() || health == HealthStatus::kServing) {
      if (hs.ok()) group_served = true;
      not_serving_since = Clock::time_point::max();
      continue;
    }
    // NOT_SERVING with the group still running: it is loading (just relaunched) or broken.
    if (not_serving_since == Clock::time_point::max()) not_serving_since = Clock::now();
    const double limit = group_served ? cfg.broken_after : cfg.startup_timeout;
    if (Clock::now() - not_serving_since > std::chrono::duration<double>(limit)) {
      if (!relaunch("stopped serving")) {
        sup.StopAll();
        return 1;
      }
    }
  }
}

}  // namespace

int ServeCommand(const std::vector<std::string>& args) {
  ServeConfig cfg;
  double step_timeout = 60;
  FlagSet flags("serve");
  flags.String("model", &cfg.model, "GGUF model file (required)");
  flags.Int("tp", &cfg.tp, "tensor-parallel ranks per pipeline stage (default 1)");
  flags.Int("pp", &cfg.pp, "pipeline stages (default 1)");
  flags.String("listen", &cfg.listen,
               "address of the public gRPC API, HOST:PORT; port 0 picks a free one (default 127.0.0.1:50051)");
  flags.Int("threads", &cfg.threads, "CPU threads per worker (default: cores / workers, at least 1)");
  flags.Float("startup-timeout", &cfg.startup_timeout, "seconds to wait for every worker to be ready (default 120)");
  flags.Int("restart-workers", &cfg.restarts,
            "relaunch a worker group that dies or hangs up to this many times; 0 = stop serving (default 10)");
  flags.Float("drain-timeout", &cfg.drain_timeout,
              "on Ctrl-C or SIGTERM, seconds running requests may take to finish (default 30)");
  flags.Float("step-timeout", &step_timeout, "seconds a step may take before the workers count as hung (default 60)");
  flags.String("tls-cert", &cfg.tls_cert, "PEM certificate: TLS on the public API and the cluster port");
  flags.String("tls-key", &cfg.tls_key, "PEM private key of --tls-cert");
  flags.String("tls-ca", &cfg.tls_ca,
               "PEM CA that signed --tls-cert, trusted by the workers and serve's probe (default: --tls-cert itself)");
  flags.String("tls-server-name", &cfg.tls_server_name,
               "name the workers verify in the certificate (default: the address they dial, 127.0.0.1)");
  flags.String("metrics-listen", &cfg.metrics_listen,
               "serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks one; default: off)");
  flags.String("api-keys", &cfg.api_keys, "file of API keys, one per line; clients send 'authorization: Bearer KEY'");
  // Limits, passed to strata-coordinator as given (it checks them).
  const char* kLimits[][2] = {
      {"max-waiting", "requests queued before new ones are refused with RESOURCE_EXHAUSTED"},
      {"max-running", "requests generating at the same time"},
      {"max-prompt-tokens", "longest prompt accepted, in tokens"},
      {"max-new-tokens", "largest max_new_tokens accepted"},
      {"max-total-tokens", "largest prompt + max_new_tokens accepted"},
      {"kv-blocks", "KV-cache blocks per worker"},
      {"max-batch-tokens", "tokens per step"},
  };
  std::vector<int64_t> limit_values(std::size(kLimits));
  for (size_t i = 0; i < std::size(kLimits); ++i) {
    flags.Int(kLimits[i][0], &limit_values[i], absl::StrCat(kLimits[i][1], " (default: strata-coordinator's)"));
  }
  if (absl::Status s = flags.Parse(args); !s.ok()) return Fail(std::string(s.message()), 2);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (cfg.model.empty()) return Fail("--model is required", 2);
  if (cfg.restarts < 0) return Fail(absl::StrCat("--restart-workers must be >= 0, got ", cfg.restarts), 2);
  if (!(step_timeout > 0)) return Fail(absl::StrCat("--step-timeout must be positive, got ", step_timeout), 2);
  if (!(cfg.drain_timeout >= 0)) return Fail(absl::StrCat("--drain-timeout must be >= 0, got ", cfg.drain_timeout), 2);
  cfg.coordinator_limits.push_back("--drain-timeout");
  cfg.coordinator_limits.push_back(absl::StrCat(cfg.drain_timeout));
  cfg.coordinator_limits.push_back("--step-timeout");
  cfg.coordinator_limits.push_back(absl::StrCat(step_timeout));
  if (cfg.tp < 1 || cfg.tp > 1024) return Fail(absl::StrCat("--tp must be in [1, 1024], got ", cfg.tp), 2);
  if (cfg.pp < 1 || cfg.pp > 1024) return Fail(absl::StrCat("--pp must be in [1, 1024], got ", cfg.pp), 2);
  if (cfg.tp * cfg.pp > 4096)
    return Fail(absl::StrCat("--tp times --pp must be at most 4096, got ", cfg.tp * cfg.pp), 2);
  if (cfg.threads < 0 || cfg.threads > 1024)
    return Fail(absl::StrCat("--threads must be in [0, 1024], got ", cfg.threads), 2);
  if (!(cfg.startup_timeout > 0))
    return Fail(absl::StrCat("--startup-timeout must be positive, got ", cfg.startup_timeout), 2);
  if (cfg.listen.rfind(':') == std::string::npos || cfg.listen.back() == ':') {
    return Fail(absl::StrCat("--listen must be HOST:PORT, got '", cfg.listen, "'"), 2);
  }
  for (size_t i = 0; i < std::size(kLimits); ++i) {
    if (!flags.was_set(kLimits[i][0])) continue;
    if (limit_values[i] < 0) return Fail(absl::StrCat("--", kLimits[i][0], " must be >= 0, got ", limit_values[i]), 2);
    cfg.coordinator_limits.push_back(absl::StrCat("--", kLimits[i][0]));
    cfg.coordinator_limits.push_back(absl::StrCat(limit_values[i]));
  }

  if (cfg.tls_cert.empty() != cfg.tls_key.empty()) return Fail("--tls-cert and --tls-key go together", 2);
  if (cfg.tls_cert.empty() && (!cfg.tls_ca.empty() || !cfg.tls_server_name.empty())) {
    return Fail("--tls-ca and --tls-server-name need --tls-cert and --tls-key", 2);
  }
  if (!cfg.tls_cert.empty() && cfg.tls_ca.empty()) cfg.tls_ca = cfg.tls_cert;
  if (!cfg.tls_ca.empty()) {
    absl::StatusOr<std::string> pem = ReadPemCertificate(cfg.tls_ca);
    if (!pem.ok()) return Fail(absl::StrCat("--tls-ca: ", pem.status().message()), 2);
    cfg.tls_ca_pem = *pem;
  }
  if (const char* env = std::getenv("STRATA_JOIN_TOKEN"); env != nullptr && *env != '\0') {
    cfg.join_token = env;
  } else {
    cfg.join_token = RandomToken();
    if (cfg.join_token.empty()) return Fail("cannot read /dev/urandom for the cluster's join token", 1);
  }

  // Everything that can be checked before starting a process.
  struct stat st;
  if (stat(cfg.model.c_str(), &st) != 0) return Fail(absl::StrCat("model file ", cfg.model, ": ", strerror(errno)), 1);
  if (!S_ISREG(st.st_mode)) return Fail(absl::StrCat("model file ", cfg.model, ": not a regular file"), 1);
  if (access(cfg.model.c_str(), R_OK) != 0)
    return Fail(absl::StrCat("model file ", cfg.model, ": ", strerror(errno)), 1);
  const std::string dir = SelfDirectory();
  const std::string coordinator_bin = dir + "/strata-coordinator", worker_bin = dir + "/strata-worker";
  for (const std::string& bin : {coordinator_bin, worker_bin}) {
    if (access(bin.c_str(), X_OK) != 0) {
      return Fail(
          absl::StrCat("cannot find ", bin, " (", strerror(errno), "); strata serve runs the binaries next to strata"),
          1);
    }
  }
  const std::optional<std::string> mpirun = FindInPath("mpirun");
  if (!mpirun) return Fail("mpirun not found in PATH (Debian: apt-get install openmpi-bin)", 1);
  // The workers resolve the model path themselves: give them an absolute one.
  cfg.display_model = cfg.model;
  if (cfg.model[0] != '/') {
    if (char* abs = realpath(cfg.model.c_str(), nullptr); abs != nullptr) {
      cfg.model = abs;
      std::free(abs);
    }
  }
  return Serve(cfg, coordinator_bin, worker_bin, *mpirun);
}

}  // namespace strata::cli
