#include "daemon/cli.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "daemon/app.h"
#include "daemon/check.h"
#include "daemon/config.h"
#include "daemon/demo.h"
#include "daemon/notify_command.h"
#include "gatewatch_version.h"
#include "probes/log.h"
#include "storage/backup.h"

namespace gatewatch::daemon {
namespace {

constexpr const char* kAbout =
    "Know where your 502s come from: synthetic HTTP(S) probes from several regions,\n"
    "stored in SQLite, exposed to Prometheus, alerts with a diagnosis.";

std::string Footer() {
  return std::string("The config file: FILE or --config FILE, else $GATEWATCH_CONFIG, else ") +
         kDefaultConfigPath +
         ".\nRun 'gatewatch COMMAND --help' for a command's options.\n"
         "Exit codes: 0 success, 1 a check or start-up failed, 2 bad usage or invalid config.\n";
}

// One line per command, shown with a usage error so that it stays short.
struct Command {
  const char* name;
  const char* synopsis;
};
constexpr Command kCommands[] = {
    {"run", "run [FILE | --config FILE]"},
    {"validate", "validate [FILE | --config FILE]"},
    {"check", "check URL [--upstream URL]... [--region NAME]... [--config FILE] [--timeout D] "
              "[--ca-file FILE] [--insecure] [--json]"},
    {"demo", "demo [--listen HOST:PORT] [--phase D] [--keep]"},
    {"backup", "backup [--config FILE] DEST [--force]"},
    {"notify-test", "notify-test [--config FILE] --notifier NAME"},
    {"version", "version"},
    {"help", "help"},
};

const Command* FindCommand(const std::string& name) {
  for (const Command& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

// A usage error: the problem, then the synopsis of the command (or the command list).
int Usage(std::ostream& err, const std::string& problem, const Command* command) {
  err << "gatewatch: " << problem << "\n";
  if (command != nullptr) {
    err << "usage: gatewatch " << command->synopsis << "\n"
        << "Run 'gatewatch " << command->name << " --help' for more.\n";
  } else {
    err << "usage: gatewatch <command> [options]; commands:";
    for (const Command& c : kCommands) err << " " << c.name;
    err << "\nRun 'gatewatch --help' for more.\n";
  }
  return kExitUsage;
}

// The command word: the first argument that is neither an option of the top level nor its
// value. Empty when there is none.
std::string CommandWord(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--log-level") {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    return a;
  }
  return "";
}

// The config file of run, validate, backup and notify-test: a positional FILE or --config,
// else $GATEWATCH_CONFIG, else the packaged default path.
std::optional<std::string> ConfigPath(const std::optional<std::string>& flag,
                                      const std::optional<std::string>& positional,
                                      std::string* problem) {
  if (flag && positional) {
    *problem = "the config file is given twice (FILE and --config); give it once";
    return std::nullopt;
  }
  if (flag) return flag;
  if (positional) return positional;
  if (const char* env = std::getenv("GATEWATCH_CONFIG"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  return std::string(kDefaultConfigPath);
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

// CLI11's message, worded like the rest of gatewatch's errors ("--region needs a value").
std::string ParseProblem(const CLI::ParseError& e) {
  std::string text = e.what();
  if (const size_t colon = text.find(": "); dynamic_cast<const CLI::ArgumentMismatch*>(&e) &&
                                            colon != std::string::npos &&
                                            text.find("required", colon) != std::string::npos) {
    return text.substr(0, colon) + " needs a value";
  }
  // "The following argument ..." reads as one of ours in lower case; "DEST is required" stays.
  if (text.size() > 1 && std::isupper(static_cast<unsigned char>(text[0])) &&
      std::islower(static_cast<unsigned char>(text[1]))) {
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  }
  return text;
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string word = CommandWord(args);
  const Command* command = FindCommand(word);
  if (!word.empty() && command == nullptr) {
    return Usage(err, "unknown command \"" + word + "\"", nullptr);
  }

  CLI::App app{kAbout, "gatewatch"};
  app.footer(Footer());
  app.set_help_flag("-h,--help", "print this help (per command: gatewatch COMMAND --help)");
  std::string log_level;
  app.add_option("--log-level", log_level, "debug, info (default), warn or error; logs are logfmt on stderr")
      ->option_text("LEVEL");

  std::optional<std::string> config, config_file, timeout, ca_file, notifier, listen, phase;
  std::string url, dest;
  std::vector<std::string> upstreams, regions;
  bool json = false, keep = false, force = false, insecure = false;
  const auto add_config = [&](CLI::App* sub, const char* what) {
    sub->add_option("-c,--config", config, what)->option_text("FILE");
  };

  CLI::App* run = app.add_subcommand("run", "run the daemon (SIGHUP reloads, SIGTERM stops)");
  add_config(run, "the TOML config file");
  run->add_option("FILE", config_file, "the TOML config file (instead of --config)");
  CLI::App* validate =
      app.add_subcommand("validate", "check a config file; print a summary, or every error");
  add_config(validate, "the TOML config file");
  validate->add_option("FILE", config_file, "the TOML config file (instead of --config)");
  CLI::App* check = app.add_subcommand(
      "check",
      "probe URL and its upstreams once now and state the diagnosis (exit 0: healthy)");
  check->add_option("URL", url, "the target");
  check->add_option("--upstream", upstreams, "an upstream behind the target; repeatable")
      ->option_text("URL")->allow_extra_args(false);
  check->add_option("--region", regions,
                    "probe from this region of the config (proxy, resolvers); repeatable; "
                    "default: the config's own region (server.region)")
      ->option_text("NAME")->allow_extra_args(false);
  check->add_option("-c,--config", config, "probe defaults and regions from this file")
      ->option_text("FILE");
  check->add_option("--timeout", timeout, "whole-probe limit, e.g. 5s (default: the config's)")
      ->option_text("DURATION");
  check->add_option("--ca-file", ca_file, "CA bundle to verify with (default: the system's)")
      ->option_text("FILE");
  check->add_flag("--insecure", insecure, "do not verify TLS certificates");
  check->add_flag("--json", json, "machine-readable output");
  CLI::App* demo = app.add_subcommand(
      "demo",
      "watch a loopback gateway and upstreams that fail on purpose; Ctrl-C stops");
  demo->add_option("--listen", listen, "where the demo daemon listens (default 127.0.0.1:9464)")
      ->option_text("HOST:PORT");
  demo->add_option("--phase", phase, "how long each failure scenario lasts (default 20s)")
      ->option_text("DURATION");
  demo->add_flag("--keep", keep, "keep the temporary config and database on exit");
  CLI::App* backup = app.add_subcommand(
      "backup",
      "copy the database to DEST, also while the daemon runs (one checked snapshot)");
  add_config(backup, "the TOML config file (its storage.path is copied)");
  backup->add_option("DEST", dest, "the copy to write")->required();
  backup->add_flag("--force", force, "replace an existing DEST");
  CLI::App* notify = app.add_subcommand(
      "notify-test",
      "send a sample firing and resolved message through one notifier");
  add_config(notify, "the TOML config file");
  notify->add_option("--notifier", notifier, "a [[notifiers]] name of the config")
      ->option_text("NAME")->required();
  check->footer(
      "Probes the target and each upstream once from every region given (TLS facts, phases,\n"
      "outcome, responder fingerprint per probe), then runs the diagnosis on those results.\n"
      "One probe each: the verdict is the current state (never transient, which needs history).\n"
      "Exit codes: 0 the verdict is healthy, 1 any other verdict, 2 bad usage or config.\n");
  backup->footer(
      "Uses SQLite's online backup, checks the copy with integrity_check, and refuses an\n"
      "existing DEST without --force. Restore: stop the daemon, put DEST at storage.path,\n"
      "remove any -wal and -shm files beside it, start.\n");
  app.add_subcommand("version", "print the version");
  app.add_subcommand("help", "print this help");
  for (CLI::App* sub : app.get_subcommands({})) sub->fallthrough();  // --log-level anywhere
  app.require_subcommand(0, 1);

  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    return Usage(err, ParseProblem(e), command);
  }

  if (!log_level.empty()) {
    log::Level level;
    if (!log::ParseLevel(log_level, &level)) {
      return Usage(err, "--log-level must be debug, info, warn or error", command);
    }
    log::SetMinLevel(level);
  }
  if (command == nullptr) return Usage(err, "no command given", nullptr);
  const std::string name = command->name;
  if (name == "help") return RunCli({"--help"}, out, err);
  if (name == "version") {
    out << "gatewatch " << kVersion << "\n";
    return kExitOk;
  }
  if (name == "check") {
    if (url.empty()) return Usage(err, "check needs a URL", command);
    CheckOptions o;
    o.url = url;
    o.upstreams = upstreams;
    o.config = config;
    o.regions = regions;
    o.ca_file = ca_file;
    o.json = json;
    o.insecure = insecure;
    if (timeout) {
      auto d = ParseDuration(*timeout);
      if (!d) return Usage(err, "--timeout: " + d.error(), command);
      if (d->count() <= 0) return Usage(err, "--timeout must be positive", command);
      o.timeout = *d;
    }
    return RunCheck(o, out, err);
  }
  if (name == "demo") {
    DemoOptions o;
    if (listen) {
      if (auto hp = ParseHostPort(*listen); !hp) return Usage(err, "--listen: " + hp.error(), command);
      o.listen = *listen;
    }
    if (phase) {
      auto d = ParseDuration(*phase);
      if (!d) return Usage(err, "--phase: " + d.error(), command);
      if (*d < std::chrono::seconds(1)) return Usage(err, "--phase must be at least 1s", command);
      o.phase_length = *d;
    }
    o.keep = keep;
    return RunDemo(o);
  }
  std::string problem;
  const std::optional<std::string> path = ConfigPath(config, config_file, &problem);
  if (!path) return Usage(err, problem, command);
  if (name == "backup") return Backup(*path, dest, force, out, err);
  if (name == "notify-test") return RunNotifyTest({*path, *notifier}, out, err);
  return name == "validate" ? Validate(*path, out, err) : RunDaemon(*path);
}

}  // namespace gatewatch::daemon
