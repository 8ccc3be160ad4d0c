// `gatewatch demo` as a newcomer runs it: probes, failures with emitters, phases, and a
// clean exit that removes its temporary files.

#include <signal.h>
#include <sys/stat.h>

#include <doctest/doctest.h>

#include <regex>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;

TEST_CASE("Demo: shows upstream and gateway failures with emitters, then exits cleanly") {
  testing::TempDir logs;
  testing::Process demo({GATEWATCH_BINARY, "demo", "--listen", "127.0.0.1:0", "--phase", "4s"},
                        logs.File("out.log"), logs.File("err.log"));
  const std::vector<std::string> expected = {
      "msg=\"demo phase\" phase=\"one upstream down\"",
      "msg=\"probe failed\" monitor=api-1 region=local outcome=connect_refused",
      "msg=\"demo phase\" phase=\"both upstreams down\"",
      "msg=\"probe failed\" monitor=shop region=local outcome=http_502 status=502 emitter=nginx",
      "msg=\"demo phase\" phase=\"gateway misrouted\"",
      "msg=\"monitor state changed\" monitor=api-1 region=local from=failing to=ok",
  };
  const bool all = testing::WaitFor([&] {
    const std::string text = ReadFile(logs.File("err.log"));
    for (const auto& line : expected) {
      if (text.find(line) == std::string::npos) return false;
    }
    return true;
  }, 90s);
  const std::string text = ReadFile(logs.File("err.log"));
  for (const auto& line : expected) {
    CAPTURE(line);
    CHECK(text.find(line) != std::string::npos);
  }
  REQUIRE(all);
  // The alerts reach the console notifier (stdout) with their verdicts: the first upstream
  // down leads with its own diagnosis and names the degraded pool it causes in front, and it
  // resolves when the upstream is back.
  const auto printed = [&](const std::string& needle) {
    return testing::WaitFor([&] { return ReadFile(logs.File("out.log")).find(needle) != std::string::npos; }, 60s);
  };
  CHECK(printed("[FIRING] api-down on api-1"));
  CHECK(printed("Verdict: not_listening"));
  CHECK(printed("(partial_upstream_failure): 1/2 upstreams failing"));
  CHECK(printed("[RESOLVED] api-down on api-1"));
  std::smatch m;
  REQUIRE(std::regex_search(text, m, std::regex("msg=\"demo started\".* dir=(\\S+)")));
  const std::string dir = m[1];
  struct stat st {};
  CHECK(stat((dir + "/gatewatch.db").c_str(), &st) == 0);

  demo.Signal(SIGINT);
  auto code = demo.Wait(15s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(stat(dir.c_str(), &st) != 0);  // temporary files removed
}

}  // namespace
}  // namespace gatewatch::daemon
