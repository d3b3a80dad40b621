#include "cli/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace strata::cli {

void FlagSet::Add(const std::string& name, Flag flag) {
  order_.push_back(name);
  flags_[name] = std::move(flag);
}

void FlagSet::String(const std::string& name, std::string* out, const std::string& help) {
  Add(name, {help, false, [out](const std::string& v) {
               *out = v;
               return absl::OkStatus();
             }});
}

void FlagSet::StringList(const std::string& name, std::vector<std::string>* out, const std::string& help) {
  Add(name, {help, false, [out](const std::string& v) {
               out->push_back(v);
               return absl::OkStatus();
             }});
}

void FlagSet::Int(const std::string& name, int64_t* out, const std::string& help) {
  Add(name, {help, false, [name, out](const std::string& v) {
               char* end = nullptr;
               errno = 0;
               const long long x = std::strtoll(v.c_str(), &end, 10);
               if (v.empty() || *end != '\0' || errno == ERANGE) {
                 return absl::InvalidArgumentError(absl::StrCat("--", name, " expects an integer, got '", v, "'"));
               }
               *out = x;
               return absl::OkStatus();
             }});
}

void FlagSet::Float(const std::string& name, double* out, const std::string& help) {
  Add(name, {help, false, [name, out](const std::string& v) {
               char* end = nullptr;
               errno = 0;
               const double x = std::strtod(v.c_str(), &end);
               if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x)) {
                 return absl::InvalidArgumentError(absl::StrCat("--", name, " expects a number, got '", v, "'"));
               }
               *out = x;
               return absl::OkStatus();
             }});
}

void FlagSet::Bool(const std::string& name, bool* out, const std::string& help) {
  Add(name, {help, true, [name, out](const std::string& v) {
               if (v == "true" || v == "1") *out = true;
               else if (v == "false" || v == "0") *out = false;
               else return absl::InvalidArgumentError(absl::StrCat("--", name, " expects true or false, got '", v, "'"));
               return absl::OkStatus();
             }});
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", a, "' (flags start with --; see strata ",
                                                     command_, " --help)"));
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = flags_.find(name);
    if (it == flags_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " for strata ", command_,
                                                     " (see strata ", command_, " --help)"));
    }
    if (!has_value) {
      if (it->second.is_bool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (absl::Status s = it->second.set(value); !s.ok()) return s;
    ++set_[name];
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string u = absl::StrCat("usage: strata ", command_, " [flags]\n");
  for (const std::string& name : order_) {
    const Flag& f = flags_.at(name);
    absl::StrAppend(&u, "  --", name, f.is_bool ? "" : " VALUE", "\n      ", f.help, "\n");
  }
  return u;
}

}  // namespace strata::cli
