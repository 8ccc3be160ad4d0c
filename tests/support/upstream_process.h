#pragma once
// An upstream that a test can kill for real: gatewatch_test_upstream (upstream_main.cc) in a
// child process. Kill() sends SIGKILL and reaps it, so its port refuses connections as a
// crashed service's does; Restart() starts a new process on the same port. The interface
// mirrors fleet::RawHttpServer's where tests use both (port, Url, RequestCount).

#include <memory>
#include <string>
#include <string_view>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::testing {

class UpstreamProcess {
 public:
  // Starts the first process (REQUIREs it listens within 10 s). Its output files go to `dir`,
  // named after `name`, which must outlive this object.
  explicit UpstreamProcess(const TempDir& dir, std::string name = "upstream");
  ~UpstreamProcess();
  UpstreamProcess(const UpstreamProcess&) = delete;
  UpstreamProcess& operator=(const UpstreamProcess&) = delete;

  int port() const { return port_; }
  std::string Url(std::string_view path = "/") const;  // http://127.0.0.1:PORT/path
  // Requests answered so far by every process started (as far as they reported them).
  int RequestCount() const;
  bool Running() const { return process_ != nullptr; }

  // SIGKILL, then reaped (REQUIREd within 10 s). No-op when not running.
  void Kill();
  // A new process on the same port (REQUIREs it listens within 10 s). REQUIRES: killed.
  void Restart();

 private:
  void Spawn(int port);
  std::string OutFile(int incarnation) const;

  const TempDir& dir_;
  std::string name_;
  int port_ = 0;
  int incarnations_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace gatewatch::testing
