// The `strata` subcommands. Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace strata::cli {

int RunCommand(const std::vector<std::string>& args);        // strata run
int MakeModelCommand(const std::vector<std::string>& args);  // strata make-model
int ServeCommand(const std::vector<std::string>& args);      // strata serve
int GenerateCommand(const std::vector<std::string>& args);   // strata generate
int BenchCommand(const std::vector<std::string>& args);      // strata bench

}  // namespace strata::cli
