#include "tests/support/upstream_process.h"

#include <signal.h>

#include <doctest/doctest.h>

#include <chrono>
#include <regex>

#include "tests/support/wait.h"

namespace gatewatch::testing {
namespace {

using namespace std::chrono_literals;

// The last number after `key ` on a line of `text`, or -1.
int LastValue(const std::string& text, const std::string& key) {
  const std::regex line("(^|\n)" + key + " (\\d+)");
  int value = -1;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), line); it != std::sregex_iterator(); ++it) {
    value = std::stoi((*it)[2]);
  }
  return value;
}

}  // namespace

UpstreamProcess::UpstreamProcess(const TempDir& dir, std::string name) : dir_(dir), name_(std::move(name)) {
  Spawn(0);
}

UpstreamProcess::~UpstreamProcess() = default;  // Process SIGKILLs and reaps a running child

std::string UpstreamProcess::Url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

std::string UpstreamProcess::OutFile(int incarnation) const {
  return dir_.File(name_ + "-" + std::to_string(incarnation) + ".out");
}

int UpstreamProcess::RequestCount() const {
  int total = 0;
  for (int i = 1; i <= incarnations_; ++i) total += std::max(0, LastValue(ReadFile(OutFile(i)), "requests"));
  return total;
}

void UpstreamProcess::Spawn(int port) {
  ++incarnations_;
  const std::string out = OutFile(incarnations_);
  const std::string err = dir_.File(name_ + "-" + std::to_string(incarnations_) + ".err");
  std::vector<std::string> argv = {GATEWATCH_TEST_UPSTREAM};
  if (port != 0) argv.push_back(std::to_string(port));
  process_ = std::make_unique<Process>(argv, out, err);
  int listening = -1;
  const bool up = WaitFor([&] {
    listening = LastValue(ReadFile(out), "port");
    return listening > 0 || !process_->Running();
  }, 10s);
  REQUIRE_MESSAGE((up && listening > 0), name_ << " did not start: " << ReadFile(err));
  REQUIRE(((port == 0) || listening == port));
  port_ = listening;
}

void UpstreamProcess::Kill() {
  if (!process_) return;
  process_->Signal(SIGKILL);
  REQUIRE(process_->Wait(10s) == std::optional<int>(128 + SIGKILL));
  process_.reset();
}

void UpstreamProcess::Restart() {
  REQUIRE_FALSE(Running());
  Spawn(port_);
}

}  // namespace gatewatch::testing
