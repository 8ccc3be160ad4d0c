// Readiness (/readyz): a locked database shows within one commit attempt, not after the
// writer's busy timeout; the reasons by the writer's activity and the scheduler's last tick.

#include "daemon/readiness.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "storage/sqlite_store.h"
#include "storage/writer.h"
#include "tests/storage/samples.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::WaitFor;

TEST_CASE("Readiness: a locked database turns it false within one commit attempt, true after") {
  testing::TempDir dir;
  RealClock clock;
  const std::string path = dir.File("gw.db");
  // A busy timeout far longer than the bounds below: a commit attempt waits for the lock all
  // along, and has not failed yet when readiness must already say so.
  auto writer_or = storage::Writer::Start(
      {.path = path, .open = {.busy_timeout = 60s}, .flush_interval = 10ms, .prune_interval = 0ms},
      clock);
  REQUIRE(writer_or.has_value());
  auto& writer = *writer_or;
  Readiness readiness(*writer, [&] { return clock.Now(); }, clock);
  std::string why;
  CHECK(readiness.Ready(&why));

  // Another connection holds the database exclusively; the next batch waits for it.
  auto blocker = storage::SqliteStore::Open(path);
  REQUIRE(blocker.has_value());
  REQUIRE((*blocker)->ExecForTest("BEGIN EXCLUSIVE").has_value());
  REQUIRE(writer->Enqueue(storage::testing::Simple("m", "local", storage::testing::kBaseMs)));
  const auto locked_at = std::chrono::steady_clock::now();
  CHECK(WaitFor([&] { return !readiness.Ready(&why); }, 10s));
  MESSAGE("not ready " << std::chrono::duration<double>(std::chrono::steady_clock::now() - locked_at).count()
                       << " s after the lock (printed, not asserted): " << why);
  // The attempt waits for the lock: that shows after kMaxLockWait, before a slow write would.
  CHECK(why.find("database writes are failing: the database is locked") == 0);
  CHECK(writer->Stats().write_errors == 0);  // the attempt is still waiting, not failed

  REQUIRE((*blocker)->ExecForTest("ROLLBACK").has_value());
  CHECK(WaitFor([&] { return readiness.Ready(&why); }, 30s));
  REQUIRE(writer->Flush(30s));
  CHECK(writer->Stats().rows_written == 1);
}

TEST_CASE("Readiness: the reasons, by the writer's activity and the scheduler's last tick") {
  testing::FakeClock clock;
  const SteadyTime steady = clock.Steady();
  const SystemTime now = clock.Now();
  struct Row {
    const char* name;
    storage::WriteActivity writes;
    SystemTime last_tick;
    std::string reason;
  };
  const std::string locked = "database writes are failing: a write has waited ";
  const std::string lock_wait =
      "database writes are failing: the database is locked (a write has waited ";
  const std::vector<Row> rows = {
      {"idle", {}, now - 1s, ""},
      {"a commit under way", {.writing_since = steady - 999ms}, now, ""},
      {"exactly the bound", {.writing_since = steady - kMaxWriteWait}, now, ""},
      {"past the bound", {.writing_since = steady - 1001ms}, now, locked + "1.0s"},
      {"long past", {.writing_since = steady - 4200ms}, now, locked + "4.2s"},
      {"the last commit failed", {.last_commit_failed = true}, now,
       "database writes are failing: the last commit failed"},
      {"a retry under way after a failure", {steady - 10ms, true}, now,
       "database writes are failing: the last commit failed"},
      {"a stalled write goes first", {steady - 2s, true}, now - 1min, locked + "2.0s"},
      {"waiting for the lock", {steady - 400ms, false, steady - 400ms}, now, ""},
      {"the lock wait at its bound", {steady - kMaxLockWait, false, steady - kMaxLockWait}, now,
       ""},
      {"the lock wait past its bound", {steady - 501ms, false, steady - 501ms}, now,
       lock_wait + "0.5s for another connection's lock)"},
      {"a lock wait goes first", {steady - 3s, true, steady - 2900ms}, now - 1min,
       lock_wait + "2.9s"},
      {"the lock taken, the write slow", {steady - 1200ms, false, std::nullopt}, now,
       locked + "1.2s"},
      {"scheduler at the bound", {}, now - kMaxTickAge, ""},
      {"scheduler stuck", {}, now - kMaxTickAge - 1ms,
       "the scheduler loop has not run for more than 5s"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    const std::string reason = NotReadyReason(row.writes, steady, row.last_tick, now);
    CHECK(reason.rfind(row.reason, 0) == 0);
    CHECK(reason.empty() == row.reason.empty());
  }
}

TEST_CASE("Readiness: Ready() follows the writer's activity through the injected clock") {
  testing::TempDir dir;
  testing::FakeClock clock;
  auto writer = storage::Writer::Start({.path = dir.File("gw.db"), .prune_interval = 0ms}, clock);
  REQUIRE(writer.has_value());
  SystemTime tick = clock.Now();
  Readiness readiness(**writer, [&] { return tick; }, clock);
  std::string why;
  CHECK(readiness.Ready(&why));
  CHECK(why.empty());
  clock.Advance(6s);
  CHECK_FALSE(readiness.Ready(&why));
  CHECK(why == "the scheduler loop has not run for more than 5s");
  tick = clock.Now();
  CHECK(readiness.Ready(&why));
}

}  // namespace
}  // namespace gatewatch::daemon
