// `strata`: the user's command line. Dispatches to a subcommand.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: strata COMMAND [flags]\n"
    "\n"
    "commands:\n"
    "  serve        serve a model over gRPC: a coordinator and a local worker group (mpirun)\n"
    "  generate     stream a generation from a strata server\n"
    "  bench        load-test a strata server: throughput, latency percentiles, goodput\n"
    "  run          generate text in this process (no server)\n"
    "  make-model   write a model file with random weights of a named shape\n"
    "\n"
    "`strata COMMAND --help` lists a command's flags.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "serve") return strata::cli::ServeCommand(args);
  if (command == "generate") return strata::cli::GenerateCommand(args);
  if (command == "bench") return strata::cli::BenchCommand(args);
  if (command == "run") return strata::cli::RunCommand(args);
  if (command == "make-model") return strata::cli::MakeModelCommand(args);
  std::fprintf(stderr, "strata: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}
