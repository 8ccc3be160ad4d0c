// `gatewatch backup`: a copy of a running daemon's database, taken by a second process
// while the daemon writes; an existing DEST only with --force; errors leave nothing behind.

#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>

#include "daemon/cli.h"
#include "tests/support/process.h"
#include "tests/support/recording_target.h"
#include "tests/support/sqlite_file.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;
using testing::RunCommand;
using testing::WaitFor;

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

TEST_CASE("Backup CLI: copies a running daemon's database, an existing DEST only with --force") {
  testing::RecordingTarget target;
  testing::TempDir dir, out;
  const std::string db = dir.File("gw.db");
  std::string toml = "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"" + db +
                     "\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nretries = 0\n";
  for (const char* name : {"a", "b", "c"}) {
    toml +=
        "[[monitors]]\nname = \"" + std::string(name) + "\"\nurl = \"" + target.Url(name) + "\"\n";
  }
  const std::string config = dir.Write("gw.toml", toml);
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  // Results are committed (the writer flushes at least every second).
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        return Exists(db) &&
                               testing::QueryFileInt(db, "SELECT COUNT(*) FROM results") >= 6;
                      },
                      20s),
                  ReadFile(dir.File("err.log")));

  const std::string dest = out.File("backup.db");
  auto first = RunCommand({GATEWATCH_BINARY, "backup", "--config", config, dest});
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(first.out.rfind("backup OK: " + dest + "\n  database:  " + db + "\n  results:   ", 0) == 0);
  CHECK(first.out.find("\n  integrity: ok\n") != std::string::npos);
  CHECK(daemon.Running());
  CHECK(testing::IntegrityCheck(dest) == "ok");
  const int64_t copied = testing::QueryFileInt(dest, "SELECT COUNT(*) FROM results");
  CHECK(copied >= 6);
  CHECK(first.out.find("results:   " + std::to_string(copied) + " rows") != std::string::npos);

  // DEST exists: refused, the file is untouched.
  const auto size = std::filesystem::file_size(dest);
  auto again = RunCommand({GATEWATCH_BINARY, "backup", "--config", config, dest});
  CHECK(again.exit_code == 1);
  CHECK(again.out.empty());
  CHECK(again.err == "gatewatch: backup: " + dest + " exists (--force replaces it)\n");
  CHECK(std::filesystem::file_size(dest) == size);
  CHECK(testing::QueryFileInt(dest, "SELECT COUNT(*) FROM results") == copied);

  // --force replaces it with a newer snapshot.
  REQUIRE(WaitFor(
      [&] { return testing::QueryFileInt(db, "SELECT COUNT(*) FROM results") > copied; }, 20s));
  auto forced = RunCommand({GATEWATCH_BINARY, "backup", "--force", "--config", config, dest});
  INFO(forced.err);
  CHECK(forced.exit_code == 0);
  CHECK(testing::IntegrityCheck(dest) == "ok");
  CHECK(testing::QueryFileInt(dest, "SELECT COUNT(*) FROM results") > copied);

  // A DEST in a missing directory: a clear error, nothing written anywhere.
  const std::string bad = out.File("no/such/dir/backup.db");
  auto missing = RunCommand({GATEWATCH_BINARY, "backup", "--config", config, bad});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err == "gatewatch: backup: cannot write " + bad + ": directory " +
                           out.File("no/such/dir") + " does not exist (create it first)\n");
  CHECK_FALSE(Exists(out.File("no")));
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(out.path())) {
    CAPTURE(e.path().string());
    CHECK(e.path().string() == dest);
    ++entries;
  }
  CHECK(entries == 1);

  daemon.Signal(SIGTERM);
  CHECK(daemon.Wait(15s) == std::optional<int>(0));
}

TEST_CASE("Backup CLI: usage errors exit 2") {
  testing::TempDir dir;
  const std::string config =
      dir.Write("gw.toml", "[storage]\npath = \"" + dir.File("gw.db") + "\"\n");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"backup", "--config", config}, "DEST is required"},
      {{"backup", "--config", config, "a.db", "b.db"},
       "the following argument was not expected: b.db"},
      {{"validate", "--config", config, "--force"},
       "the following argument was not expected: --force"},
  };
  for (const auto& [args, message] : cases) {
    std::vector<std::string> argv = {GATEWATCH_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = RunCommand(argv);
    CAPTURE(message);
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind("gatewatch: " + message + "\n", 0) == 0);
  }
  // Without --config: $GATEWATCH_CONFIG, else the default path (absent on a test machine).
  if (!std::filesystem::exists(kDefaultConfigPath)) {
    auto no_config = RunCommand({"/usr/bin/env", "-u", "GATEWATCH_CONFIG", GATEWATCH_BINARY,
                                 "backup", dir.File("x.db")});
    CHECK(no_config.exit_code == 2);
    CHECK(no_config.err.rfind(std::string(kDefaultConfigPath) + ": ", 0) == 0);
  }
  // A config that does not load is a usage error too; no database: a failure.
  const std::string broken = dir.Write("broken.toml", "[storage]\npath = 1\n");
  auto bad_config = RunCommand({GATEWATCH_BINARY, "backup", "--config", broken, dir.File("x.db")});
  CHECK(bad_config.exit_code == 2);
  CHECK(bad_config.err.find("storage.path") != std::string::npos);
  auto no_db = RunCommand({GATEWATCH_BINARY, "backup", "--config", config, dir.File("x.db")});
  CHECK(no_db.exit_code == 1);
  CHECK(no_db.err ==
        "gatewatch: backup: no database at " + dir.File("gw.db") + " (has the daemon run yet?)\n");
  CHECK_FALSE(Exists(dir.File("x.db")));
}

}  // namespace
}  // namespace gatewatch::daemon
