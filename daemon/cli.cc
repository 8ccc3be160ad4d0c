#include "daemon/cli.h"

#include <map>
#include <optional>

#include "daemon/app.h"
#include "daemon/config.h"
#include "gatewatch_version.h"
#include "probes/log.h"

namespace gatewatch::daemon {
namespace {

constexpr const char* kUsage = R"(usage: gatewatch <command> [options]

Know where your 502s come from: synthetic HTTP(S) probes from several regions,
stored in SQLite, exposed to Prometheus, alerts with a diagnosis.

commands:
  run --config FILE        run the daemon (SIGHUP reloads, SIGTERM stops)
  validate --config FILE   check a config file; print a summary, or every error
  version                  print the version

options:
  -c, --config FILE        the TOML config file
  --log-level LEVEL        debug, info (default), warn or error; logs are logfmt on stderr
  -h, --help               this text

exit codes: 0 success, 1 a check or start-up failed, 2 bad usage or invalid config
)";

struct Parsed {
  std::string command;
  std::optional<std::string> config;
  std::optional<std::string> log_level;
  bool help = false;
};

// Parses the flags every command shares. Returns an error message on bad usage.
std::optional<std::string> Parse(const std::vector<std::string>& args, Parsed& p) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const auto take_value = [&](std::string_view flag, std::optional<std::string>& into)
        -> std::optional<std::string> {
      if (a.size() > flag.size() && a.compare(0, flag.size(), flag) == 0 && a[flag.size()] == '=') {
        into = a.substr(flag.size() + 1);
        return std::nullopt;
      }
      if (i + 1 >= args.size()) return std::string(flag) + " needs a value";
      into = args[++i];
      return std::nullopt;
    };
    if (a == "-h" || a == "--help") {
      p.help = true;
    } else if (a == "-c" || a == "--config" || a.rfind("--config=", 0) == 0) {
      if (auto e = take_value(a == "-c" ? "-c" : "--config", p.config)) return e;
    } else if (a == "--log-level" || a.rfind("--log-level=", 0) == 0) {
      if (auto e = take_value("--log-level", p.log_level)) return e;
    } else if (!a.empty() && a[0] == '-') {
      return "unknown option " + a;
    } else if (p.command.empty()) {
      p.command = a;
    } else {
      return "unexpected argument " + a;
    }
  }
  return std::nullopt;
}

int Usage(std::ostream& err, const std::string& problem) {
  err << "gatewatch: " << problem << "\n\n" << kUsage;
  return kExitUsage;
}

int Validate(const std::string& path, std::ostream& out, std::ostream& err) {
  auto config = LoadConfigFile(path);
  if (!config) {
    for (const ConfigError& e : config.error()) err << e.ToString() << "\n";
    err << config.error().size() << (config.error().size() == 1 ? " error" : " errors")
        << " in " << path << "\n";
    return kExitUsage;
  }
  out << Summarize(*config);
  return kExitOk;
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Parsed p;
  if (auto problem = Parse(args, p)) return Usage(err, *problem);
  if (p.help || p.command == "help") {
    out << kUsage;
    return kExitOk;
  }
  if (p.log_level) {
    log::Level level;
    if (!log::ParseLevel(*p.log_level, &level)) {
      return Usage(err, "--log-level must be debug, info, warn or error");
    }
    log::SetMinLevel(level);
  }
  if (p.command.empty()) return Usage(err, "no command given");
  if (p.command == "version") {
    out << "gatewatch " << kVersion << "\n";
    return kExitOk;
  }
  if (p.command == "validate" || p.command == "run") {
    if (!p.config) return Usage(err, p.command + " needs --config FILE");
    return p.command == "validate" ? Validate(*p.config, out, err) : RunDaemon(*p.config);
  }
  return Usage(err, "unknown command \"" + p.command + "\"");
}

}  // namespace gatewatch::daemon
