#include "storage/writer.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "probes/log.h"
#include "tests/storage/samples.h"
#include "tests/support/fake_clock.h"
#include "tests/support/sqlite_file.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::storage {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::FakeClock;
using gatewatch::testing::TempDir;
using gatewatch::testing::WaitFor;
using testing::kBaseMs;
using testing::Ms;
using testing::Simple;

std::unique_ptr<Writer> StartOrFail(WriterOptions options, const Clock& clock) {
  auto w = Writer::Start(std::move(options), clock);
  INFO((w ? std::string() : w.error()));
  REQUIRE(w.has_value());
  return std::move(*w);
}

std::unique_ptr<SqliteStore> OpenOrFail(const std::string& path, OpenOptions options = {}) {
  auto store = SqliteStore::Open(path, options);
  INFO((store ? std::string() : store.error()));
  REQUIRE(store.has_value());
  return std::move(*store);
}

int64_t RowsIn(SqliteStore& store) {
  auto n = store.QueryIntForTest("SELECT COUNT(*) FROM results");
  REQUIRE(n.has_value());
  return *n;
}

// Captures log lines from any thread; restores stderr logging when destroyed.
class LogCapture {
 public:
  LogCapture() {
    log::SetSinkForTest([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { log::SetSinkForTest(nullptr); }
  bool Contains(std::string_view a, std::string_view b = "") const {
    std::lock_guard lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST_CASE("Writer: batch_rows writes before the interval, Flush writes the rest") {
  TempDir dir;
  FakeClock clock;
  auto writer = StartOrFail(
      {.path = dir.File("gw.db"), .batch_rows = 10, .flush_interval = 1h, .prune_interval = 0ms},
      clock);
  for (int i = 0; i < 25; ++i) REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs + i)));
  REQUIRE(WaitFor([&] { return writer->Stats().rows_written == 20; }, 10s));
  WriterStats s = writer->Stats();
  CHECK(s.batches == 2);
  CHECK(s.queue_depth == 5);  // a partial batch waits for the (one hour) interval
  CHECK(s.rows_accepted == 25);
  REQUIRE(writer->Flush(10s));
  s = writer->Stats();
  CHECK(s.rows_written == 25);
  CHECK(s.batches == 3);
  CHECK(s.queue_depth == 0);
  auto reader = OpenOrFail(dir.File("gw.db"), {.read_only = true});
  CHECK(RowsIn(*reader) == 25);
}

TEST_CASE("Writer: flush_interval writes a partial batch") {
  TempDir dir;
  FakeClock clock;
  auto writer = StartOrFail({.path = dir.File("gw.db"),
                             .batch_rows = 1'000,
                             .flush_interval = 50ms,
                             .prune_interval = 0ms},
                            clock);
  for (int i = 0; i < 7; ++i) REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs + i)));
  REQUIRE(WaitFor([&] { return writer->Stats().rows_written == 7; }, 10s));
  CHECK(writer->Stats().batches == 1);
  CHECK(writer->Stats().last_batch_latency > 0us);
}

TEST_CASE("Writer: Stop flushes everything queued, then Enqueue is refused") {
  TempDir dir;
  FakeClock clock;
  auto writer = StartOrFail(
      {.path = dir.File("gw.db"), .batch_rows = 50, .flush_interval = 1h, .prune_interval = 0ms},
      clock);
  for (int i = 0; i < 123; ++i) REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs + i)));
  writer->Stop();
  CHECK(writer->Stats().rows_written == 123);
  CHECK(writer->Stats().queue_depth == 0);
  CHECK_FALSE(writer->Enqueue(Simple("m", "local", kBaseMs)));
  CHECK_FALSE(writer->HasRoom());
  CHECK(writer->Stats().rows_rejected == 1);
  writer->Stop();  // idempotent
  auto reader = OpenOrFail(dir.File("gw.db"), {.read_only = true});
  CHECK(RowsIn(*reader) == 123);
}

// Whether `path`-wal is gone or empty: the database file alone is the whole database.
bool WalEmpty(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path + "-wal", ec);
  return ec || size == 0;
}

TEST_CASE("Writer: Stop checkpoints: the database file alone has every row, a reader still open") {
  TempDir dir, elsewhere;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  auto writer = StartOrFail(
      {.path = path, .batch_rows = 10, .flush_interval = 5ms, .prune_interval = 0ms}, clock);
  // Like an HTTP thread's connection: open, idle between queries.
  auto reader = OpenOrFail(path, {.read_only = true});
  for (int i = 0; i < 35; ++i) REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs + i)));
  REQUIRE(writer->Flush(10s));
  CHECK(RowsIn(*reader) == 35);
  writer->Stop();
  CHECK(WalEmpty(path));

  // A plain copy of the database file, without its -wal, is complete.
  const std::string copy = elsewhere.File("copy.db");
  std::filesystem::copy_file(path, copy);
  CHECK(gatewatch::testing::IntegrityCheck(copy) == "ok");
  CHECK(gatewatch::testing::QueryFileInt(copy, "SELECT COUNT(*) FROM results") == 35);
  CHECK(RowsIn(*reader) == 35);
}

TEST_CASE("Writer: a read transaction open at Stop leaves the checkpoint incomplete, logged") {
  TempDir dir;
  FakeClock clock;
  LogCapture logs;
  const std::string path = dir.File("gw.db");
  auto writer = StartOrFail(
      {.path = path, .open = {.busy_timeout = 10ms}, .flush_interval = 5ms, .prune_interval = 0ms},
      clock);
  auto reader = OpenOrFail(path, {.read_only = true});
  for (int i = 0; i < 5; ++i) REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs + i)));
  REQUIRE(writer->Flush(10s));
  REQUIRE(reader->ExecForTest("BEGIN").has_value());
  CHECK(RowsIn(*reader) == 5);  // the read transaction now holds its snapshot
  writer->Stop();
  CHECK(logs.Contains("storage checkpoint at stop incomplete", "path="));
  CHECK_FALSE(WalEmpty(path));  // nothing lost: the WAL keeps the rows
  REQUIRE(reader->ExecForTest("COMMIT").has_value());
  CHECK(RowsIn(*reader) == 5);
}

TEST_CASE("Writer: Activity shows a commit waiting for a lock, then the outcome of the last one") {
  TempDir dir;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  auto blocker = OpenOrFail(path);
  auto writer = StartOrFail({.path = path,
                             .open = {.busy_timeout = 200ms},
                             .flush_interval = 1ms,
                             .prune_interval = 0ms,
                             .max_attempts = 100'000,  // keep retrying until unblocked
                             .retry_backoff = 1ms},
                            clock);
  WriteActivity idle = writer->Activity();
  CHECK_FALSE(idle.writing_since.has_value());
  CHECK_FALSE(idle.lock_wait_since.has_value());
  CHECK_FALSE(idle.last_commit_failed);

  REQUIRE(blocker->ExecForTest("BEGIN IMMEDIATE").has_value());
  REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs)));
  // The attempt waits for the lock, timed by the injected clock.
  WriteActivity waiting;
  REQUIRE(WaitFor([&] { return (waiting = writer->Activity()).lock_wait_since.has_value(); }, 10s));
  CHECK(waiting.writing_since == std::optional<SteadyTime>(clock.Steady()));
  CHECK(waiting.lock_wait_since == std::optional<SteadyTime>(clock.Steady()));
  // After busy_timeout it fails, and stays failed through the retries.
  REQUIRE(WaitFor([&] { return writer->Activity().last_commit_failed; }, 10s));
  CHECK(writer->Activity().last_commit_failed);

  REQUIRE(blocker->ExecForTest("COMMIT").has_value());
  REQUIRE(writer->Flush(20s));
  const WriteActivity after = writer->Activity();
  CHECK_FALSE(after.writing_since.has_value());
  CHECK_FALSE(after.lock_wait_since.has_value());
  CHECK_FALSE(after.last_commit_failed);
  CHECK(writer->Stats().rows_written == 1);
}

TEST_CASE("Writer: a missing directory fails Start with a clear error") {
  TempDir dir;
  FakeClock clock;
  auto w = Writer::Start({.path = dir.File("missing/gw.db")}, clock);
  REQUIRE_FALSE(w.has_value());
  CHECK(w.error().find("does not exist") != std::string::npos);
}

TEST_CASE("Writer: backpressure while the database is locked, then everything is written") {
  TempDir dir;
  FakeClock clock;
  LogCapture logs;
  const std::string path = dir.File("gw.db");
  auto blocker = OpenOrFail(path);  // creates the schema, then holds the write lock
  REQUIRE(blocker->ExecForTest("BEGIN IMMEDIATE").has_value());

  auto writer = StartOrFail({.path = path,
                             .open = {.busy_timeout = 10ms},
                             .queue_capacity = 10,
                             .batch_rows = 4,
                             .flush_interval = 10ms,
                             .prune_interval = 0ms,
                             .max_attempts = 100'000,  // keep retrying until unblocked
                             .retry_backoff = 5ms},
                            clock);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 50; ++i) {
    if (writer->Enqueue(Simple("m", "local", kBaseMs + i))) {
      ++accepted;
    } else {
      ++rejected;
    }
    CHECK(writer->Stats().queue_depth <= 10);  // memory bounded: queued + in flight
  }
  // Nothing can commit while the lock is held, so exactly the capacity was accepted.
  CHECK(accepted == 10);
  CHECK(rejected == 40);
  CHECK_FALSE(writer->HasRoom());
  REQUIRE(WaitFor([&] { return writer->Stats().write_errors >= 2; }, 10s));
  CHECK(writer->Stats().rows_written == 0);
  CHECK(logs.Contains("storage batch write failed", "rows=4"));

  REQUIRE(blocker->ExecForTest("COMMIT").has_value());
  REQUIRE(writer->Flush(20s));
  WriterStats s = writer->Stats();
  CHECK(s.rows_written == 10);
  CHECK(s.rows_lost == 0);
  CHECK(s.rows_rejected == 40);
  CHECK(RowsIn(*blocker) == 10);
  CHECK(writer->HasRoom(10));
  CHECK(writer->Enqueue(Simple("m", "local", kBaseMs + 100)));
}

TEST_CASE("Writer: a batch that keeps failing is logged as lost after max_attempts") {
  TempDir dir;
  FakeClock clock;
  LogCapture logs;
  const std::string path = dir.File("gw.db");
  auto blocker = OpenOrFail(path);
  REQUIRE(blocker->ExecForTest("BEGIN IMMEDIATE").has_value());
  auto writer = StartOrFail({.path = path,
                             .open = {.busy_timeout = 10ms},
                             .batch_rows = 100,
                             .flush_interval = 10ms,
                             .prune_interval = 0ms,
                             .max_attempts = 2,
                             .retry_backoff = 1ms},
                            clock);
  for (int i = 0; i < 3; ++i) REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs + i)));
  REQUIRE(writer->Flush(20s));  // done = committed or lost
  WriterStats s = writer->Stats();
  CHECK(s.rows_lost == 3);
  CHECK(s.write_errors == 2);
  CHECK(s.rows_written == 0);
  CHECK(s.queue_depth == 0);
  CHECK(logs.Contains("storage batch lost after retries", "rows=3"));
  REQUIRE(blocker->ExecForTest("ROLLBACK").has_value());
  CHECK(RowsIn(*blocker) == 0);  // nothing half-written
}

TEST_CASE("Writer: a reader connection reads while the writer writes (WAL)") {
  TempDir dir;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  auto writer = StartOrFail(
      {.path = path, .batch_rows = 100, .flush_interval = 5ms, .prune_interval = 0ms}, clock);
  auto reader = OpenOrFail(path, {.read_only = true, .busy_timeout = 0ms});
  int64_t last = 0;
  int reads = 0;
  for (int i = 0; i < 5'000; ++i) {
    REQUIRE(writer->Enqueue(Simple("m" + std::to_string(i % 10), "local", kBaseMs + i)));
    if (i % 250 == 0) {
      const int64_t n = RowsIn(*reader);  // never "database is locked", even with no wait
      CHECK(n >= last);
      last = n;
      ++reads;
    }
  }
  REQUIRE(writer->Flush(30s));
  CHECK(RowsIn(*reader) == 5'000);
  CHECK(reads == 20);
  auto latest = reader->Latest({});
  REQUIRE(latest.has_value());
  CHECK(latest->size() == 10);
}

TEST_CASE("Writer: prunes old rows in small steps between batches") {
  TempDir dir;
  FakeClock clock(Ms(kBaseMs));
  const std::string path = dir.File("gw.db");
  {
    auto store = OpenOrFail(path);
    std::vector<probes::ProbeResult> old;
    for (int i = 0; i < 30; ++i) old.push_back(Simple("m", "local", kBaseMs - 48 * 3'600'000 - i));
    REQUIRE(store->Insert(old).has_value());
  }
  WriterOptions options{.path = path, .prune_interval = 10ms, .prune_max_rows = 7};
  options.retention.raw_retention = 24h;
  auto writer = StartOrFail(options, clock);
  REQUIRE(WaitFor([&] { return writer->Stats().rows_pruned == 30; }, 10s));
  CHECK(writer->Stats().prune_steps >= 5);  // 7 + 7 + 7 + 7 + 2
  CHECK(writer->Stats().prune_errors == 0);
  // Recent rows written meanwhile are not touched.
  REQUIRE(writer->Enqueue(Simple("m", "local", kBaseMs)));
  REQUIRE(writer->Flush(10s));
  writer->Stop();
  auto reader = OpenOrFail(path, {.read_only = true});
  CHECK(RowsIn(*reader) == 1);
}

TEST_CASE("Writer: rows per second for 50,000 rows in batches of 1,000 (printed, not asserted)") {
  TempDir dir;
  FakeClock clock;
  auto rows = testing::Generate(1, 50'000, kBaseMs, 3'600'000);
  for (size_t i = 0; i < rows.size(); ++i) {
    // Like 1,000 monitors every 10 s: each batch touches ~1,000 series in one or two minutes.
    rows[i].monitor = "monitor-" + std::to_string(i % 1'000);
    rows[i].started_at = Ms(kBaseMs + static_cast<int64_t>(i) * 10);
    rows[i].headers = {{"server", "nginx"}, {"x-cache", "MISS"}};
    rows[i].resolved = {"192.0.2.1", "192.0.2.2"};
  }
  auto writer = StartOrFail(
      {.path = dir.File("gw.db"), .batch_rows = 1'000, .flush_interval = 1s, .prune_interval = 0ms},
      clock);
  const auto start = std::chrono::steady_clock::now();
  for (auto& r : rows) REQUIRE(writer->Enqueue(std::move(r)));
  REQUIRE(writer->Flush(300s));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const WriterStats s = writer->Stats();
  CHECK(s.rows_written == 50'000);
  CHECK(s.batches >= 50);
  MESSAGE("writer: 50000 rows in " << s.batches << " batches, " << seconds << " s, "
                                   << static_cast<int64_t>(50'000 / seconds)
                                   << " rows/s; last batch "
                                   << s.last_batch_latency.count() / 1000.0 << " ms");
}

}  // namespace
}  // namespace gatewatch::storage
