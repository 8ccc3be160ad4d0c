#pragma once
// The port a `gatewatch run` under test listens on, read from its log line
// `msg=listening addr=127.0.0.1:PORT` (configs use listen = "127.0.0.1:0").

#include <chrono>
#include <regex>
#include <string>

#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::testing {

// Waits up to `timeout` for the line; 0 when it never came.
inline int WaitForListenPort(const std::string& log_path,
                             std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  int port = 0;
  const std::regex line("msg=listening addr=127\\.0\\.0\\.1:(\\d+)");
  WaitFor([&] {
    std::smatch m;
    const std::string text = ReadFile(log_path);
    if (!std::regex_search(text, m, line)) return false;
    port = std::stoi(m[1]);
    return true;
  }, timeout);
  return port;
}

}  // namespace gatewatch::testing
