// A strict command-line flag parser for the strata commands: every flag must be declared, values
// are checked when parsed, and any problem becomes a message naming the flag.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace strata::cli {

class FlagSet {
 public:
  explicit FlagSet(std::string command) : command_(std::move(command)) {}

  // Declarations: `help` is shown by --help. Values are written to *out when the flag is given.
  void String(const std::string& name, std::string* out, const std::string& help);
  void StringList(const std::string& name, std::vector<std::string>* out, const std::string& help);  // repeatable
  void Int(const std::string& name, int64_t* out, const std::string& help);
  void Float(const std::string& name, double* out, const std::string& help);
  void Bool(const std::string& name, bool* out, const std::string& help);  // --name or --name=true/false

  // Parses argv (the arguments after the command). --help sets help_requested().
  absl::Status Parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_; }
  bool was_set(const std::string& name) const { return set_.count(name) > 0; }
  std::string Usage() const;

 private:
  struct Flag {
    std::string help;
    bool is_bool = false;
    std::function<absl::Status(const std::string&)> set;
  };
  void Add(const std::string& name, Flag flag);

  std::string command_;
  std::map<std::string, Flag> flags_;
  std::vector<std::string> order_;
  std::map<std::string, int> set_;
  bool help_ = false;
};

}  // namespace strata::cli
