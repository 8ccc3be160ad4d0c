#pragma once
// A child process for integration tests: started with fork/exec, its stdout and
// stderr appended to files, signalled and reaped with deadlines.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace gatewatch::testing {

class Process {
 public:
  // argv[0] is the program path. Output goes to stdout_path / stderr_path.
  Process(std::vector<std::string> argv, std::string stdout_path, std::string stderr_path,
          std::vector<std::string> extra_env = {});
  ~Process();  // SIGKILLs and reaps the child if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs a command to completion (bounded), capturing stdout and stderr.
struct RunResult {
  int exit_code = -1;  // -1 on timeout (the child is killed)
  std::string out;
  std::string err;
};
RunResult RunCommand(const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30),
                     std::vector<std::string> extra_env = {});

}  // namespace gatewatch::testing
