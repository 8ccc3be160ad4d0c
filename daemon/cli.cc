#include "daemon/cli.h"

#include <cstdio>
#include <map>
#include <optional>

#include "daemon/app.h"
#include "daemon/check.h"
#include "daemon/config.h"
#include "daemon/demo.h"
#include "daemon/notify_test.h"
#include "gatewatch_version.h"
#include "probes/log.h"
#include "storage/backup.h"

namespace gatewatch::daemon {
namespace {

constexpr const char* kUsage = R"(usage: gatewatch <command> [options]

Know where your 502s come from: synthetic HTTP(S) probes from several regions,
stored in SQLite, exposed to Prometheus, alerts with a diagnosis.

commands:
  demo [--listen ADDR] [--phase 20s] [--keep]
                           a gateway and two upstreams on loopback that fail on purpose,
                           watched by the daemon (temporary database); Ctrl-C stops
  run --config FILE        run the daemon (SIGHUP reloads, SIGTERM stops)
  check URL [--upstream URL]... [--region NAME]... [--config FILE] [--json]
                           probe the target and its upstreams once now from each region
                           and state the diagnosis verdict with its evidence (phases,
                           outcome, responder fingerprint, TLS facts per probe); exit 0
                           only when the verdict is healthy. One probe each: the verdict
                           is the current state (never transient, which needs history)
  validate --config FILE   check a config file; print a summary, or every error
  backup --config FILE DEST [--force]
                           copy the database (storage.path) to DEST, also while the
                           daemon runs: one consistent snapshot, checked with
                           integrity_check; an existing DEST only with --force
  notify-test --config FILE --notifier NAME
                           send a sample firing and resolved message through one
                           notifier and print the receiver's answers
  version                  print the version

options:
  -c, --config FILE        the TOML config file
  --notifier NAME          (notify-test) a [[notifiers]] name of the config
  --upstream URL           (check) an upstream behind the target; repeatable
  --region NAME            (check) probe from this region of the config (proxy, resolvers);
                           repeatable; default: the config's own region (server.region)
  --timeout DURATION       (check) whole-probe limit, e.g. "5s" (default: the config's)
  --ca-file FILE           (check) CA bundle to verify with (default: the system's)
  --insecure               (check) do not verify TLS certificates
  --json                   (check) machine-readable output
  --listen HOST:PORT       (demo) where the demo daemon listens (default 127.0.0.1:9464)
  --phase DURATION         (demo) how long each failure scenario lasts (default 20s)
  --keep                   (demo) keep the temporary config and database on exit
  --force                  (backup) replace an existing DEST
  --log-level LEVEL        debug, info (default), warn or error; logs are logfmt on stderr
  -h, --help               this text

exit codes: 0 success, 1 a check or start-up failed, 2 bad usage or invalid config
)";

struct Parsed {
  std::vector<std::string> positional;  // the command, then its arguments
  std::optional<std::string> config;
  std::optional<std::string> log_level;
  std::optional<std::string> timeout;
  std::optional<std::string> ca_file;
  std::optional<std::string> listen;
  std::optional<std::string> phase;
  std::optional<std::string> notifier;
  std::vector<std::string> upstreams;
  std::vector<std::string> regions;  // check: repeatable
  bool json = false;
  bool keep = false;
  bool force = false;
  bool insecure = false;
  bool help = false;
};

// Parses the flags. Returns an error message on bad usage.
std::optional<std::string> Parse(const std::vector<std::string>& args, Parsed& p) {
  const std::map<std::string, std::optional<std::string> Parsed::*> valued = {
      {"--config", &Parsed::config},   {"-c", &Parsed::config},
      {"--log-level", &Parsed::log_level},
      {"--timeout", &Parsed::timeout}, {"--ca-file", &Parsed::ca_file},
      {"--listen", &Parsed::listen},   {"--phase", &Parsed::phase},
      {"--notifier", &Parsed::notifier}};
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (const size_t eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    const auto value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    if (flag == "-h" || flag == "--help") {
      p.help = true;
    } else if (flag == "--json" || flag == "--insecure" || flag == "--keep" || flag == "--force") {
      (flag == "--json"    ? p.json
       : flag == "--keep"  ? p.keep
       : flag == "--force" ? p.force
                           : p.insecure) = true;
    } else if (auto it = valued.find(flag); it != valued.end()) {
      auto v = value();
      if (!v) return flag + " needs a value";
      p.*(it->second) = *v;
    } else if (flag == "--upstream" || flag == "--region") {
      auto v = value();
      if (!v) return flag + (flag == "--upstream" ? " needs a URL" : " needs a value");
      (flag == "--upstream" ? p.upstreams : p.regions).push_back(*v);
    } else if (!flag.empty() && flag[0] == '-') {
      return "unknown option " + flag;
    } else {
      p.positional.push_back(args[i]);
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
  if (auto empty = RequireMonitors(*config)) {
    err << empty->ToString() << "\n1 error in " << path << "\n";
    return kExitUsage;
  }
  out << Summarize(*config);
  return kExitOk;
}

std::string Mebibytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

int Backup(const std::string& config_path, const std::string& dest, bool force, std::ostream& out,
           std::ostream& err) {
  auto config = LoadConfigFile(config_path);
  if (!config) {
    for (const ConfigError& e : config.error()) err << e.ToString() << "\n";
    err << config.error().size() << (config.error().size() == 1 ? " error" : " errors") << " in "
        << config_path << "\n";
    return kExitUsage;
  }
  const std::string& source = config->storage.path;
  auto report = storage::BackupDatabase(source, dest, {.overwrite = force});
  if (!report) {
    err << "gatewatch: " << report.error() << "\n";
    return kExitFailed;
  }
  out << "backup OK: " << dest << "\n"
      << "  database:  " << source << "\n"
      << "  results:   " << report->result_rows << " rows (schema version "
      << report->schema_version << ")\n"
      << "  size:      " << Mebibytes(report->bytes) << " (" << report->bytes << " bytes, "
      << report->pages << " pages)\n"
      << "  integrity: ok\n";
  return kExitOk;
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Parsed p;
  if (auto problem = Parse(args, p)) return Usage(err, *problem);
  const std::string command = p.positional.empty() ? "" : p.positional.front();
  if (p.help || command == "help") {
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
  if (command.empty()) return Usage(err, "no command given");
  const size_t max_args = command == "check" || command == "backup" ? 2 : 1;
  if (p.positional.size() > max_args) return Usage(err, "unexpected argument " + p.positional[max_args]);
  if (command != "check" && (!p.upstreams.empty() || !p.regions.empty() || p.timeout || p.ca_file || p.json || p.insecure)) {
    return Usage(err, "--upstream, --region, --timeout, --ca-file, --json and --insecure go with check");
  }
  if (command != "demo" && (p.listen || p.phase || p.keep)) {
    return Usage(err, "--listen, --phase and --keep go with demo");
  }
  if (command != "notify-test" && p.notifier) return Usage(err, "--notifier goes with notify-test");
  if (command != "backup" && p.force) return Usage(err, "--force goes with backup");
  if (command == "backup") {
    if (!p.config) return Usage(err, "backup needs --config FILE");
    if (p.positional.size() < 2) return Usage(err, "backup needs a DEST file");
    return Backup(*p.config, p.positional[1], p.force, out, err);
  }
  if (command == "notify-test") {
    if (!p.config) return Usage(err, "notify-test needs --config FILE");
    if (!p.notifier) return Usage(err, "notify-test needs --notifier NAME");
    return RunNotifyTest({*p.config, *p.notifier}, out, err);
  }
  if (command == "demo") {
    if (p.config) return Usage(err, "demo writes its own config; run --config FILE for yours");
    DemoOptions o;
    if (p.listen) {
      if (auto hp = ParseHostPort(*p.listen); !hp) return Usage(err, "--listen: " + hp.error());
      o.listen = *p.listen;
    }
    if (p.phase) {
      auto d = ParseDuration(*p.phase);
      if (!d) return Usage(err, "--phase: " + d.error());
      if (*d < std::chrono::seconds(1)) return Usage(err, "--phase must be at least 1s");
      o.phase_length = *d;
    }
    o.keep = p.keep;
    return RunDemo(o);
  }
  if (command == "version") {
    out << "gatewatch " << kVersion << "\n";
    return kExitOk;
  }
  if (command == "validate" || command == "run") {
    if (!p.config) return Usage(err, command + " needs --config FILE");
    return command == "validate" ? Validate(*p.config, out, err) : RunDaemon(*p.config);
  }
  if (command == "check") {
    if (p.positional.size() < 2) return Usage(err, "check needs a URL");
    CheckOptions o;
    o.url = p.positional[1];
    o.upstreams = p.upstreams;
    o.config = p.config;
    o.regions = p.regions;
    o.ca_file = p.ca_file;
    o.json = p.json;
    o.insecure = p.insecure;
    if (p.timeout) {
      auto d = ParseDuration(*p.timeout);
      if (!d) return Usage(err, "--timeout: " + d.error());
      if (d->count() <= 0) return Usage(err, "--timeout must be positive");
      o.timeout = *d;
    }
    return RunCheck(o, out, err);
  }
  return Usage(err, "unknown command \"" + command + "\"");
}

}  // namespace gatewatch::daemon
