// Lifecycle of the real daemon: a SIGHUP reload adds, removes and changes monitors while
// unchanged ones keep their schedule (same offset, no gap, nothing twice); SIGTERM drains
// in-flight probes within shutdown_grace, flushes the writer and exits 0.

#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fleet/raw_server.h"
#include "storage/sqlite_store.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/recording_target.h"
#include "tests/support/sqlite_file.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"
#include "tests/support/webhook_receiver.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;
using testing::WaitFor;

std::string Monitor(const testing::RecordingTarget& t, const std::string& name, const std::string& extra = "",
                    bool slow = false) {
  return "[[monitors]]\nname = \"" + name + "\"\nurl = \"" + t.Url(name, slow) + "\"\n" + extra;
}

std::string Header(const testing::TempDir& dir, const std::string& extra = "") {
  return "[server]\nlisten = \"127.0.0.1:0\"\n" + extra + "[storage]\npath = \"" + dir.File("gw.db") +
         "\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nretries = 0\n";
}

std::vector<SystemTime> StoredStarts(const std::string& db, const std::string& monitor) {
  auto store = storage::SqliteStore::Open(db);
  REQUIRE(store.has_value());
  storage::ResultQuery q;
  q.monitor = monitor;
  q.limit = storage::kMaxResultLimit;
  auto rows = (*store)->Results(q);
  REQUIRE(rows.has_value());
  std::vector<SystemTime> out;
  for (const auto& r : *rows) out.push_back(r.started_at);
  std::sort(out.begin(), out.end());
  return out;
}

int64_t OffsetMs(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
}

TEST_CASE("Lifecycle: SIGHUP reload keeps unchanged monitors' schedule with no gap") {
  testing::RecordingTarget target;
  testing::TempDir dir;
  const std::string config =
      dir.Write("gw.toml", Header(dir) + Monitor(target, "keep") + Monitor(target, "drop") +
                               Monitor(target, "change"));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return target.RequestsOf("keep").size() >= 4; }, 20s),
                  ReadFile(dir.File("err.log")));

  // keep: unchanged; drop: removed; change: new timeout, same interval; add: new.
  dir.Write("gw.toml", Header(dir) + Monitor(target, "keep") + Monitor(target, "change", "timeout = \"500ms\"\n") +
                           Monitor(target, "add"));
  const SystemTime reloaded_at = std::chrono::system_clock::now();
  daemon.Signal(SIGHUP);
  REQUIRE(WaitFor([&] { return ReadFile(dir.File("err.log")).find("msg=\"config reloaded\"") != std::string::npos; }));
  REQUIRE(WaitFor([&] {
    return target.RequestsOf("keep").size() >= 9 && target.RequestsOf("add").size() >= 3;
  }, 20s));
  daemon.Signal(SIGTERM);
  auto code = daemon.Wait(15s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);

  for (const std::string name : {"keep", "change"}) {
    CAPTURE(name);
    const auto runs = target.RequestsOf(name);
    REQUIRE(runs.size() >= 8);
    // Every interval exactly once across the reload: no gap, no double run...
    for (size_t i = 1; i < runs.size(); ++i) {
      const auto gap = runs[i] - runs[i - 1];
      CAPTURE(i);
      CHECK(gap > 600ms);
      CHECK(gap < 1400ms);
    }
    // ...at the same offset within the second before and after the reload.
    const int64_t first = OffsetMs(runs.front());
    for (SystemTime t : runs) {
      const int64_t diff = std::abs(OffsetMs(t) - first);
      CHECK(std::min<int64_t>(diff, 1000 - diff) < 300);
    }
    // The stored results show the same continuity.
    const auto stored = StoredStarts(dir.File("gw.db"), name);
    CHECK(stored.size() >= runs.size() - 1);
    for (size_t i = 1; i < stored.size(); ++i) CHECK(stored[i] - stored[i - 1] < 1400ms);
  }
  for (SystemTime t : target.RequestsOf("drop")) CHECK(t < reloaded_at + 200ms);
  for (SystemTime t : target.RequestsOf("add")) CHECK(t > reloaded_at);
  CHECK(StoredStarts(dir.File("gw.db"), "add").size() >= 3);
}

TEST_CASE("Lifecycle: SIGTERM lets an in-flight probe finish, stores it, exits 0") {
  testing::RecordingTarget target(1500ms);  // /slow answers after 1.5 s
  testing::TempDir dir;
  const std::string config = dir.Write(
      "gw.toml", "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n[storage]\npath = \"" +
                     dir.File("gw.db") + "\"\n[defaults]\ninterval = \"5s\"\ntimeout = \"4s\"\nretries = 0\n" +
                     Monitor(target, "slow", "", /*slow=*/true));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return !target.RequestsOf("slow").empty(); }, 20s), ReadFile(dir.File("err.log")));
  const auto signalled = std::chrono::steady_clock::now();
  daemon.Signal(SIGTERM);  // the probe is in flight: the target answers 1.5 s later
  auto code = daemon.Wait(15s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  const auto took = std::chrono::steady_clock::now() - signalled;
  CHECK(took >= 1s);  // it waited for the probe...
  CHECK(took < 5s);   // ...not for the whole grace period
  auto store = storage::SqliteStore::Open(dir.File("gw.db"));
  REQUIRE(store.has_value());
  storage::ResultQuery q;
  q.monitor = "slow";
  auto rows = (*store)->Results(q);
  REQUIRE(rows.has_value());
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].outcome == probes::Outcome::kOk);
  CHECK(ReadFile(dir.File("err.log")).find("msg=stopped probes=1 results=1") != std::string::npos);
}

TEST_CASE("Lifecycle: SIGTERM drops a probe that outlives shutdown_grace and still exits fast") {
  testing::RecordingTarget target(30s);  // never answers in time
  testing::TempDir dir;
  const std::string config = dir.Write(
      "gw.toml", "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"500ms\"\n[storage]\npath = \"" +
                     dir.File("gw.db") + "\"\n[defaults]\ninterval = \"20s\"\ntimeout = \"15s\"\nretries = 0\n" +
                     Monitor(target, "stuck", "", /*slow=*/true));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return !target.RequestsOf("stuck").empty(); }, 30s), ReadFile(dir.File("err.log")));
  const auto signalled = std::chrono::steady_clock::now();
  daemon.Signal(SIGTERM);
  auto code = daemon.Wait(15s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(std::chrono::steady_clock::now() - signalled < 4s);
  auto store = storage::SqliteStore::Open(dir.File("gw.db"));
  REQUIRE(store.has_value());
  storage::ResultQuery q;
  q.monitor = "stuck";
  auto rows = (*store)->Results(q);
  REQUIRE(rows.has_value());
  CHECK(rows->empty());  // dropped, not stored half-done
}

TEST_CASE("Lifecycle: SIGTERM ends within shutdown_grace and a second while a probe and a webhook both hang") {
  testing::RecordingTarget target(30s);  // the probe never answers in time
  fleet::RawHttpServer site;
  site.Route("/healthz", fleet::Behavior::Status(502));
  testing::WebhookReceiver hook;
  hook.Script({{200, "ok", "", 60s}, {200, "ok", "", 60s}, {200, "ok", "", 60s}});  // deliveries hang (and time out)
  testing::TempDir dir;
  const std::string config = dir.Write(
      "gw.toml", "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"3s\"\n[storage]\npath = \"" +
                     dir.File("gw.db") + "\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"800ms\"\nretries = 0\n" +
                     Monitor(target, "stuck", "interval = \"20s\"\ntimeout = \"15s\"\n", /*slow=*/true) +
                     "[[monitors]]\nname = \"shop\"\nurl = \"" + site.Url("/healthz") + "\"\n" +
                     "[[alerts]]\nname = \"shop-down\"\nmonitors = [\"shop\"]\nkind = \"down\"\nafter = 2\n"
                     "for = \"0s\"\nnotify = [\"hook\"]\n"
                     "[[notifiers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"" + hook.Url("/hook") + "\"\n");
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return !target.RequestsOf("stuck").empty() && hook.Arrived() >= 1; }, 30s),
                  ReadFile(dir.File("err.log")));
  const auto signalled = std::chrono::steady_clock::now();
  daemon.Signal(SIGTERM);
  auto code = daemon.Wait(20s);
  const auto took = std::chrono::steady_clock::now() - signalled;
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(took >= 2500ms);  // the probe had the grace...
  CHECK(took < 4500ms);   // ...and the webhook no second one (grace + 1 s, with slack for a busy machine)
  MESSAGE("SIGTERM to exit: " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  // The notification was not delivered: it waits in the outbox for the next start.
  storage::OpenOptions ro;
  ro.read_only = true;
  auto store = storage::SqliteStore::Open(dir.File("gw.db"), ro);
  REQUIRE(store.has_value());
  auto pending = (*store)->QueryIntForTest(
      "SELECT count(*) FROM outbox WHERE kind = 'firing' AND delivered_ms IS NULL AND given_up_ms IS NULL");
  REQUIRE(pending.has_value());
  CHECK(*pending == 1);

}

TEST_CASE("Lifecycle: /readyz fails while the database cannot be written, recovers after") {
  testing::RecordingTarget target;
  testing::TempDir dir;
  const std::string config =
      dir.Write("gw.toml", Header(dir) + Monitor(target, "a") + Monitor(target, "b"));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  const int port = testing::WaitForListenPort(dir.File("err.log"));
  REQUIRE_MESSAGE(port > 0, ReadFile(dir.File("err.log")));
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5, 0);
  const auto ready = [&] {
    auto r = client.Get("/readyz");
    return r ? r->status : 0;
  };
  REQUIRE(WaitFor([&] { return ready() == 200 && !target.RequestsOf("a").empty(); }, 20s));

  // Another process holds the write lock: the writer's commit attempts wait for it, then fail.
  sqlite3* lock = nullptr;
  REQUIRE(sqlite3_open(dir.File("gw.db").c_str(), &lock) == SQLITE_OK);
  REQUIRE(sqlite3_exec(lock, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
  std::string body;
  const bool not_ready = WaitFor([&] {
    auto r = client.Get("/readyz");
    if (r && r->status == 503) body = r->body;
    return r && r->status == 503;
  }, 30s);
  sqlite3_exec(lock, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(lock);
  CHECK(not_ready);
  CHECK(body.find("database writes are failing") != std::string::npos);
  CHECK(WaitFor([&] { return ready() == 200; }, 30s));

  daemon.Signal(SIGTERM);
  CHECK(daemon.Wait(30s) == 0);
}

TEST_CASE("Lifecycle: after SIGTERM the database file alone is complete, though the API was read") {
  testing::RecordingTarget target;
  testing::TempDir dir, elsewhere;
  const std::string config = dir.Write("gw.toml", Header(dir) + Monitor(target, "a"));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  const int port = testing::WaitForListenPort(dir.File("err.log"));
  REQUIRE_MESSAGE(port > 0, ReadFile(dir.File("err.log")));
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5, 0);
  // The API's and the status page's reads open the HTTP threads' read connections.
  size_t served = 0;
  REQUIRE(WaitFor(
      [&] {
        auto r = client.Get("/api/v1/monitors/a/results");
        if (!r || r->status != 200) return false;
        served = nlohmann::json::parse(r->body).at("results").size();
        return served >= 2;
      },
      20s));
  auto page = client.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  auto list = client.Get("/api/v1/monitors");
  REQUIRE(list);
  CHECK(list->status == 200);

  daemon.Signal(SIGTERM);
  REQUIRE(daemon.Wait(15s) == std::optional<int>(0));
  const std::string db = dir.File("gw.db");
  std::error_code ec;
  const auto wal_size = std::filesystem::file_size(db + "-wal", ec);
  CHECK((ec || wal_size == 0));  // gone, or empty
  const std::string log = ReadFile(dir.File("err.log"));
  CHECK(log.find("storage checkpoint at stop") == std::string::npos);

  // Only the database file, as a plain copy would take it.
  const std::string copy = elsewhere.File("copy.db");
  std::filesystem::copy_file(db, copy);
  CHECK(testing::IntegrityCheck(copy) == "ok");
  const int64_t rows = testing::QueryFileInt(copy, "SELECT COUNT(*) FROM results");
  CHECK(rows >= static_cast<int64_t>(served));
  MESSAGE("after stop: database file "
          << std::filesystem::file_size(db) << " bytes, -wal "
          << (ec ? std::string("gone") : std::to_string(wal_size) + " bytes")
          << "; the file alone has " << rows << " results (the API had served " << served << ")");
}

TEST_CASE("Lifecycle: a config without monitors does not start, and a reload to one is refused") {
  testing::RecordingTarget target;
  testing::TempDir dir;
  // Start: an empty file is an error (exit 2), unless it says allow_empty = true.
  const std::string empty = dir.Write("empty.toml", "");
  auto refused = testing::RunCommand({GATEWATCH_BINARY, "run", "--config", empty}, 20s);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("monitors: no monitors") != std::string::npos);

  // Reload: a truncated file keeps the monitors running, with a log line that says why.
  const std::string config = dir.Write("gw.toml", Header(dir) + Monitor(target, "keep"));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return target.RequestsOf("keep").size() >= 2; }, 20s),
                  ReadFile(dir.File("err.log")));
  dir.Write("gw.toml", Header(dir));  // every monitor gone
  daemon.Signal(SIGHUP);
  REQUIRE(WaitFor([&] {
    return ReadFile(dir.File("err.log")).find("msg=\"config reload refused, keeping the previous config: the new "
                                              "file has no monitors\"") != std::string::npos;
  }));
  const size_t before = target.RequestsOf("keep").size();
  CHECK(WaitFor([&] { return target.RequestsOf("keep").size() >= before + 2; }, 10s));  // still probing
  CHECK(ReadFile(dir.File("err.log")).find("msg=\"config reloaded\"") == std::string::npos);

  // Said explicitly, an empty config is taken.
  dir.Write("gw.toml", "allow_empty = true\n" + Header(dir));
  daemon.Signal(SIGHUP);
  CHECK(WaitFor([&] { return ReadFile(dir.File("err.log")).find("msg=\"config reloaded\"") != std::string::npos; }));
  daemon.Signal(SIGTERM);
  CHECK(daemon.Wait(15s) == std::optional<int>(0));
}

TEST_CASE("Lifecycle: a reload to a key of 40,000 dotted parts is refused, and probing goes on") {
  testing::RecordingTarget target;
  testing::TempDir dir;
  const std::string config = dir.Write("gw.toml", Header(dir) + Monitor(target, "keep"));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return target.RequestsOf("keep").size() >= 2; }, 20s),
                  ReadFile(dir.File("err.log")));

  // The old monitor, then a key of 40,000 dotted parts (80 KB on one line).
  std::string key = "a";
  for (int i = 1; i < 40'000; ++i) key += ".a";
  const std::string kept = Header(dir) + Monitor(target, "keep");
  dir.Write("gw.toml", kept + key + " = 1\n");
  const auto key_line = std::count(kept.begin(), kept.end(), '\n') + 1;
  daemon.Signal(SIGHUP);
  const std::string refusal = "msg=\"config reload failed, keeping the previous config\" error=\"" +
                              config + ":" + std::to_string(key_line) +
                              ":129: a key has more than 64 dotted parts (the limit)\"";
  REQUIRE_MESSAGE(
      WaitFor([&] { return ReadFile(dir.File("err.log")).find(refusal) != std::string::npos; }),
      ReadFile(dir.File("err.log")));
  CHECK(daemon.Running());
  const size_t before = target.RequestsOf("keep").size();
  CHECK(WaitFor([&] { return target.RequestsOf("keep").size() >= before + 2; }, 10s));
  CHECK(daemon.Running());
  CHECK(ReadFile(dir.File("err.log")).find("msg=\"config reloaded\"") == std::string::npos);
  daemon.Signal(SIGTERM);
  CHECK(daemon.Wait(15s) == std::optional<int>(0));
}

}  // namespace
}  // namespace gatewatch::daemon
