// Crash safety (docs/reliability.md): a daemon writing heavily is killed with SIGKILL; after a
// restart the database passes PRAGMA integrity_check, every result older than one flush
// interval before the kill is there, and the daemon resumes writing.

#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "storage/sqlite_store.h"
#include "tests/support/process.h"
#include "tests/support/recording_target.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;
using testing::WaitFor;

constexpr int kMonitors = 500;  // every 1 s: ~500 rows/s

int64_t Count(const std::string& db, const std::string& sql) {
  auto store = storage::SqliteStore::Open(db);
  REQUIRE_MESSAGE(store.has_value(), (store ? std::string() : store.error()));
  auto n = (*store)->QueryIntForTest(sql);
  REQUIRE(n.has_value());
  return *n;
}

std::string IntegrityCheck(const std::string& db) {
  sqlite3* conn = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(conn, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK);
  std::string out;
  while (sqlite3_step(stmt) == SQLITE_ROW) out += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(conn);
  return out;
}

TEST_CASE("Crash: kill -9 while writing heavily loses nothing older than a flush interval") {
  testing::RecordingTarget target;
  REQUIRE(target.port() > 0);
  testing::TempDir dir;
  const std::string db = dir.File("gw.db");
  std::string toml = "[server]\nlisten = \"127.0.0.1:0\"\n[engine]\nmax_in_flight = 256\n";
  toml += "[storage]\npath = \"" + db + "\"\n";
  toml += "[defaults]\ninterval = \"1s\"\ntimeout = \"800ms\"\nretries = 0\n";
  for (int i = 0; i < kMonitors; ++i) {
    toml += "[[monitors]]\nname = \"m" + std::to_string(i) + "\"\nurl = \"http://127.0.0.1:" +
            std::to_string(target.port()) + "/m/m" + std::to_string(i) + "\"\n";
  }
  const std::string config = dir.Write("gatewatch.toml", toml);

  SystemTime killed_at;
  {
    testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out1.log"),
                            dir.File("err1.log"));
    // Let it write for a while (several batches).
    REQUIRE_MESSAGE(WaitFor([&] { return target.Requests().size() >= 4000 || !daemon.Running(); }, 60s),
                    ReadFile(dir.File("err1.log")));
    REQUIRE(daemon.Running());
    killed_at = std::chrono::system_clock::now();
    daemon.Signal(SIGKILL);
    auto code = daemon.Wait(10s);
    REQUIRE(code.has_value());
    CHECK(*code == 128 + SIGKILL);
  }

  CHECK(IntegrityCheck(db) == "ok");
  // Every probe that reached the target more than one flush interval (1 s) plus a
  // margin for the batch commit before the kill has its stored result.
  const SystemTime cut = killed_at - 1s - 1s;
  auto store_or = storage::SqliteStore::Open(db);
  REQUIRE(store_or.has_value());
  auto& store = *store_or;
  std::map<std::string, std::vector<SystemTime>> stored;
  for (int i = 0; i < kMonitors; ++i) {
    storage::ResultQuery q;
    q.monitor = "m" + std::to_string(i);
    q.limit = storage::kMaxResultLimit;
    auto rows = store->Results(q);
    REQUIRE(rows.has_value());
    for (const auto& r : *rows) stored[q.monitor].push_back(r.started_at);
  }
  int checked = 0, missing = 0;
  for (const auto& [monitor, received] : target.Requests()) {
    if (received >= cut) continue;
    ++checked;
    const auto& starts = stored[monitor];
    // The probe started (client side) shortly before the target received it.
    const bool found = std::any_of(starts.begin(), starts.end(), [&](SystemTime s) {
      return s <= received + 50ms && s >= received - 1s;
    });
    missing += !found;
  }
  MESSAGE("checked " << checked << " results older than the cut, missing " << missing);
  CHECK(checked > 1000);
  CHECK(missing == 0);
  const int64_t rows_before_restart = Count(db, "SELECT COUNT(*) FROM results");
  store.reset();

  // Restart on the same database: it opens, resumes writing, and stops cleanly.
  {
    const SystemTime restarted_at = std::chrono::system_clock::now();
    testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out2.log"),
                            dir.File("err2.log"));
    const auto since_ms = std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(restarted_at.time_since_epoch()).count());
    REQUIRE_MESSAGE(WaitFor([&] {
      return !daemon.Running() ||
             Count(db, "SELECT COUNT(*) FROM results WHERE started_at >= " + since_ms) >= 1000;
    }, 60s), ReadFile(dir.File("err2.log")));
    REQUIRE(daemon.Running());
    daemon.Signal(SIGTERM);
    auto code = daemon.Wait(15s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
  }
  CHECK(IntegrityCheck(db) == "ok");
  CHECK(Count(db, "SELECT COUNT(*) FROM results") > rows_before_restart);
}

}  // namespace
}  // namespace gatewatch::daemon
