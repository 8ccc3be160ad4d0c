#pragma once
// `gatewatch <command>`: argument parsing and dispatch. Exit codes: 0 success,
// 1 a check failed (or a start-up failure), 2 bad usage or invalid config.

#include <ostream>
#include <string>
#include <vector>

namespace gatewatch::daemon {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// The config file of run, validate, backup and notify-test when neither FILE, --config nor
// $GATEWATCH_CONFIG names one.
inline constexpr const char* kDefaultConfigPath = "/etc/gatewatch/gatewatch.toml";

// args excludes argv[0]. `out` gets results, `err` gets errors and usage text.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gatewatch::daemon
