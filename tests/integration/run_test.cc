// `gatewatch run` as a real process: start-up, /healthz, SIGHUP reload (good and bad
// files), SIGTERM shutdown with exit 0.

#include <httplib.h>
#include <signal.h>

#include <doctest/doctest.h>

#include <regex>

#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;
using testing::WaitFor;

std::string Config(const testing::TempDir& dir, int monitors) {
  std::string toml =
      "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"" + dir.File("gw.db") + "\"\n";
  for (int i = 0; i < monitors; ++i) {
    toml += "[[monitors]]\nname = \"m" + std::to_string(i) + "\"\nurl = \"http://127.0.0.1:1/\"\n";
  }
  return toml;
}

int CountLines(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

TEST_CASE("Run: serves /healthz, reloads on SIGHUP, keeps the old config on a bad file, exits 0 on SIGTERM") {
  testing::TempDir dir;
  const std::string config = dir.Write("gatewatch.toml", Config(dir, 1));
  const std::string log = dir.File("stderr.log");
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("stdout.log"), log);

  const int port = testing::WaitForListenPort(log);
  REQUIRE_MESSAGE(port > 0, testing::ReadFile(log));
  CHECK(ReadFile(log).find("msg=\"config loaded\"") != std::string::npos);

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(2);
  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body == "ok\n");
  auto ready = client.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);

  // A broken file: every error is logged, the daemon keeps running on the old config.
  dir.Write("gatewatch.toml", "[server]\nlisten = \"127.0.0.1:0\"\n[defaults]\ntimout = \"1s\"\nretries = 99\n");
  daemon.Signal(SIGHUP);
  REQUIRE(WaitFor([&] { return CountLines(ReadFile(log), "config reload failed") == 2; }));
  const std::string text = ReadFile(log);
  CHECK(text.find("gatewatch.toml:4:1: defaults.timout: unknown key") != std::string::npos);
  CHECK(text.find("gatewatch.toml:5:11: defaults.retries: must be from 0 to 10") != std::string::npos);
  CHECK(daemon.Running());
  auto still = client.Get("/healthz");
  REQUIRE(still);
  CHECK(still->status == 200);

  // A good file swaps in.
  dir.Write("gatewatch.toml", Config(dir, 3));
  daemon.Signal(SIGHUP);
  REQUIRE(WaitFor([&] { return ReadFile(log).find("msg=\"config reloaded\"") != std::string::npos; }));
  CHECK(ReadFile(log).find("msg=\"config reloaded\" config=" + config + " regions=1 monitors=3") !=
        std::string::npos);

  daemon.Signal(SIGTERM);
  auto code = daemon.Wait(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(ReadFile(log).find("msg=stopped") != std::string::npos);
}

TEST_CASE("Run: an invalid config stops start-up with exit 2 and the errors") {
  testing::TempDir dir;
  const std::string config = dir.Write("bad.toml", "[engine]\nmax_in_flight = \"many\"\n");
  auto r = testing::RunCommand({GATEWATCH_BINARY, "run", "--config", config}, 10s);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(config + ":2:17: engine.max_in_flight: expected an integer") != std::string::npos);
}

TEST_CASE("Run: a port already in use is a start-up failure with exit 1") {
  testing::TempDir dir;
  httplib::Server blocker;
  const int port = blocker.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  const std::string config =
      dir.Write("c.toml", "allow_empty = true\n[server]\nlisten = \"127.0.0.1:" + std::to_string(port) +
                              "\"\n[storage]\npath = \"" + dir.File("gw.db") + "\"\n");
  auto r = testing::RunCommand({GATEWATCH_BINARY, "run", "--config", config}, 10s);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("msg=\"start-up failed\" error=\"cannot listen on 127.0.0.1:" + std::to_string(port)) !=
        std::string::npos);
}

TEST_CASE("Run: a file that is not a database stops start-up with exit 1 and one line naming it") {
  testing::TempDir dir;
  dir.Write("gw.db", std::string(64 * 1024, '\x5a'));
  auto r = testing::RunCommand({GATEWATCH_BINARY, "run", "--config", dir.Write("c.toml", Config(dir, 1))}, 10s);
  CHECK(r.exit_code == 1);
  CAPTURE(r.err);
  CHECK(r.err.find("msg=\"start-up failed\" error=\"storage: " + dir.File("gw.db") +
                   ": PRAGMA journal_mode=WAL: file is not a database\"") != std::string::npos);
}

}  // namespace
}  // namespace gatewatch::daemon
