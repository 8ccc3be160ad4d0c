#include "storage/backup.h"

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "storage/writer.h"
#include "tests/storage/samples.h"
#include "tests/support/fake_clock.h"
#include "tests/support/sqlite_file.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::storage {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::FakeClock;
using gatewatch::testing::IntegrityCheck;
using gatewatch::testing::QueryFile;
using gatewatch::testing::QueryFileInt;
using gatewatch::testing::TempDir;
using testing::kBaseMs;
using testing::Simple;
namespace fs = std::filesystem;

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// Nothing named dest, dest.tmp or their -journal, -wal, -shm files exists.
bool NothingAt(const std::string& dest) {
  for (const std::string& base : {dest, dest + ".tmp"}) {
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
      if (Exists(base + suffix)) return false;
    }
  }
  return true;
}

// A gatewatch database with `rows` results, closed.
void MakeDatabase(const std::string& path, int rows) {
  FakeClock clock;
  auto writer = Writer::Start({.path = path, .prune_interval = 0ms}, clock);
  REQUIRE(writer.has_value());
  for (int i = 0; i < rows; ++i) REQUIRE((*writer)->Enqueue(Simple("m", "local", kBaseMs + i)));
  REQUIRE((*writer)->Flush(30s));
}

TEST_CASE("Backup: a copy taken while the writer keeps committing is one consistent snapshot") {
  TempDir dir, out;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  auto writer_or = Writer::Start(
      {.path = path, .batch_rows = 20, .flush_interval = 1ms, .prune_interval = 0ms}, clock);
  REQUIRE(writer_or.has_value());
  auto& writer = *writer_or;
  for (int i = 0; i < 20'000; ++i) REQUIRE(writer->Enqueue(testing::FullResult()));
  REQUIRE(writer->Flush(60s));

  // Commits keep coming, one small batch after the other, for the whole backup.
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    int64_t t = kBaseMs;
    while (!stop.load()) {
      for (int i = 0; i < 20; ++i) (void)writer->Enqueue(Simple("live", "local", ++t));
      (void)writer->Flush(10s);
    }
  });
  const uint64_t before = writer->Stats().rows_written;
  const std::string dest = out.File("backup.db");
  auto report = BackupDatabase(path, dest, {.pages_per_step = 16});
  stop.store(true);
  producer.join();
  // Read once every commit is counted: a commit is counted just after it returns.
  REQUIRE(writer->Flush(10s));
  const uint64_t after = writer->Stats().rows_written;

  REQUIRE_MESSAGE(report.has_value(), (report ? std::string() : report.error()));
  MESSAGE("backup: " << report->pages << " pages in " << report->steps << " steps, "
                     << report->bytes << " bytes, " << report->result_rows << " rows; "
                     << (after - before) << " rows committed meanwhile");
  CHECK(report->steps > 1);
  CHECK(report->result_rows >= static_cast<int64_t>(before));
  CHECK(report->result_rows <= static_cast<int64_t>(after));
  CHECK(report->schema_version == SqliteStore::LatestSchemaVersion());
  CHECK(report->bytes == static_cast<int64_t>(fs::file_size(dest)));
  CHECK(report->bytes == report->pages * 4096);

  // The copy alone, as the backup left it: a single file, sound, with the rows it reports,
  // and rollups that agree with them (one transaction's rows and rollups, never half).
  CHECK_FALSE(Exists(dest + ".tmp"));
  CHECK_FALSE(Exists(dest + "-wal"));
  CHECK(QueryFile(dest, "PRAGMA journal_mode") == "delete");
  CHECK(IntegrityCheck(dest) == "ok");
  CHECK(QueryFileInt(dest, "SELECT COUNT(*) FROM results") == report->result_rows);
  CHECK(QueryFileInt(dest, "SELECT SUM(attempts) FROM rollup_minute") == report->result_rows);
  // gatewatch opens the copy as it is (and turns WAL back on).
  auto reopened = SqliteStore::Open(dest);
  REQUIRE(reopened.has_value());
  CHECK((*reopened)->QueryIntForTest("SELECT COUNT(*) FROM results").value() ==
        report->result_rows);
}

TEST_CASE("Backup: an existing dest is replaced only with overwrite, never the database itself") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  MakeDatabase(path, 3);
  const std::string dest = dir.File("copy.db");
  const std::string before = "someone's file\n";
  dir.Write("copy.db", before);
  auto refused = BackupDatabase(path, dest);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == "backup: " + dest + " exists (--force replaces it)");
  CHECK(gatewatch::testing::ReadFile(dest) == before);
  CHECK_FALSE(Exists(dest + ".tmp"));

  // Stale files of the database dest was would be applied to the copy: they go.
  dir.Write("copy.db-wal", "stale");
  dir.Write("copy.db-shm", "stale");
  dir.Write("copy.db.tmp", "left by an interrupted backup");
  auto replaced = BackupDatabase(path, dest, {.overwrite = true});
  REQUIRE_MESSAGE(replaced.has_value(), (replaced ? std::string() : replaced.error()));
  CHECK(replaced->result_rows == 3);
  CHECK(IntegrityCheck(dest) == "ok");
  CHECK_FALSE(Exists(dest + "-wal"));
  CHECK_FALSE(Exists(dest + "-shm"));
  CHECK_FALSE(Exists(dest + ".tmp"));

  // The database was closed: the backup leaves nothing beside it either.
  CHECK_FALSE(Exists(path + "-wal"));
  CHECK_FALSE(Exists(path + "-shm"));

  for (const bool overwrite : {false, true}) {
    auto itself = BackupDatabase(path, path, {.overwrite = overwrite});
    REQUIRE_FALSE(itself.has_value());
    CHECK(itself.error() == "backup: " + path + " is the database itself: name another file");
  }
  CHECK(QueryFileInt(path, "SELECT COUNT(*) FROM results") == 3);
}

TEST_CASE("Backup: bad paths and sources fail with a clear error and leave nothing") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  MakeDatabase(path, 2);
  struct Row {
    std::string source, dest, error;
  };
  const std::string not_sqlite = dir.Write("text.db", std::string(8192, 'x'));
  const std::string other = dir.File("other.db");
  {
    // An SQLite database that gatewatch did not make.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(other.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE t (x)", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  const std::vector<Row> rows = {
      {path, dir.File("missing/copy.db"),
       "backup: cannot write " + dir.File("missing/copy.db") + ": directory " +
           dir.File("missing") + " does not exist (create it first)"},
      {path, dir.path(),
       "backup: " + dir.path() + " is a directory: name the backup file, e.g. " +
           dir.File("gatewatch-backup.db")},
      {dir.File("nope.db"), dir.File("copy.db"),
       "backup: no database at " + dir.File("nope.db") + " (has the daemon run yet?)"},
      {other, dir.File("copy.db"),
       "backup: " + other + " is not a gatewatch database (it has no results table)"},
      {not_sqlite, dir.File("copy.db"),
       "backup: cannot read " + not_sqlite + ": file is not a database"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.dest);
    auto r = BackupDatabase(row.source, row.dest);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().rfind(row.error, 0) == 0);
    CHECK(NothingAt(dir.File("copy.db")));
    CHECK(NothingAt(dir.File("missing/copy.db")));
    CHECK_FALSE(Exists(dir.path() + ".tmp"));
  }
  CHECK(QueryFileInt(path, "SELECT COUNT(*) FROM results") == 2);
}

TEST_CASE("Backup: a lock that outlasts max_lock_wait fails the backup, nothing left") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  MakeDatabase(path, 2);
  // Exclusive locking mode keeps even WAL readers out until the connection closes.
  auto holder = SqliteStore::Open(path);
  REQUIRE(holder.has_value());
  REQUIRE((*holder)->ExecForTest("PRAGMA locking_mode=EXCLUSIVE").has_value());
  REQUIRE(
      (*holder)->ExecForTest("BEGIN EXCLUSIVE; DELETE FROM results WHERE 0; COMMIT").has_value());
  const std::string dest = dir.File("copy.db");
  auto r = BackupDatabase(path, dest, {.max_lock_wait = 200ms});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().find("stayed locked for") != std::string::npos);
  CHECK(NothingAt(dest));
  holder->reset();
  auto ok = BackupDatabase(path, dest, {.max_lock_wait = 200ms});
  REQUIRE_MESSAGE(ok.has_value(), (ok ? std::string() : ok.error()));
  CHECK(ok->result_rows == 2);
}

}  // namespace
}  // namespace gatewatch::storage
