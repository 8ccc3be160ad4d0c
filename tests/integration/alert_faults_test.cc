// Delivery faults through the daemon (docs/reliability.md): gatewatch is killed with SIGKILL while
// a notification is enqueued but not delivered (its receiver answers 503); after a restart the
// message arrives, exactly once, and so does the "resolved" — nothing lost, nothing doubled.
// (Retry, 429, hanging receivers and give-ups are covered thread-level in
// tests/alerting/delivery_test.cc.)
#include <signal.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fleet/raw_server.h"
#include "storage/sqlite_store.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"
#include "tests/support/webhook_receiver.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::ReadFile;
using testing::WaitFor;

int64_t Query(const std::string& db, const std::string& sql) {
  storage::OpenOptions ro;
  ro.read_only = true;
  auto store = storage::SqliteStore::Open(db, ro);
  REQUIRE_MESSAGE(store.has_value(), (store ? std::string() : store.error()));
  auto n = (*store)->QueryIntForTest(sql);
  REQUIRE_MESSAGE(n.has_value(), (n ? std::string() : n.error()));
  return *n;
}

std::vector<std::string> Statuses(const std::vector<testing::WebhookReceiver::Request>& requests) {
  std::vector<std::string> out;
  for (const auto& r : requests) out.push_back(json::parse(r.body)["status"]);
  return out;
}

TEST_CASE("Alert faults: kill -9 between enqueue and delivery, then a restart delivers every message once") {
  fleet::RawHttpServer site;
  site.Route("/healthz", fleet::Behavior::Status(502));
  testing::WebhookReceiver hook;
  std::vector<testing::WebhookReceiver::Answer> refusals(100, {503, "busy"});
  hook.Script(refusals);
  testing::TempDir dir;
  const std::string db = dir.File("gw.db");
  const std::string config = dir.Write("gatewatch.toml", R"(
[server]
listen = "127.0.0.1:0"
[storage]
path = ")" + db + R"("
[defaults]
interval = "1s"
timeout = "800ms"
retries = 0

[[monitors]]
name = "shop"
url = ")" + site.Url("/healthz") + R"("

[[alerts]]
name = "shop-down"
monitors = ["shop"]
kind = "down"
after = 2
for = "0s"
resolve_for = "0s"
notify = ["hook"]

[[notifiers]]
name = "hook"
type = "webhook"
url = ")" + hook.Url("/hook") + R"("
)");
  {
    testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out1.log"), dir.File("err1.log"));
    // The firing is in the outbox and its delivery was attempted (and refused) at least once.
    REQUIRE_MESSAGE(WaitFor([&] { return hook.Count() >= 2 || !daemon.Running(); }, 30s), ReadFile(dir.File("err1.log")));
    REQUIRE(daemon.Running());
    daemon.Signal(SIGKILL);
    REQUIRE(daemon.Wait(10s) == std::optional<int>(128 + SIGKILL));
  }
  CHECK(hook.Delivered().empty());
  CHECK(Query(db, "SELECT count(*) FROM outbox WHERE kind = 'firing' AND delivered_ms IS NULL AND given_up_ms IS NULL") == 1);
  CHECK(Query(db, "SELECT max(attempts) FROM outbox") >= 1);

  // The killed daemon's last request may have been sent but not yet handled: let the
  // receiver answer it as it was scripted then (503), or it would be answered 200 below and
  // count as a delivery the dead daemon never recorded (CI saw firing, firing, resolved).
  std::this_thread::sleep_for(1s);
  for (size_t seen = hook.Count(), i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(250ms);
    if (hook.Count() == seen) break;
    seen = hook.Count();
  }
  CHECK(hook.Delivered().empty());
  hook.Script({});  // the receiver is back
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out2.log"), dir.File("err2.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return hook.Delivered().size() >= 1 || !daemon.Running(); }, 30s),
                  ReadFile(dir.File("err2.log")));
  site.Route("/healthz", fleet::Behavior::Ok());
  REQUIRE_MESSAGE(WaitFor([&] { return hook.Delivered().size() >= 2 || !daemon.Running(); }, 30s),
                  ReadFile(dir.File("err2.log")));
  std::this_thread::sleep_for(3s);
  daemon.Signal(SIGTERM);
  REQUIRE(daemon.Wait(20s) == std::optional<int>(0));
  // Exactly one firing (the restart did not fire again: the state was restored) and one
  // resolved, in that order.
  std::string got;
  for (const auto& st : Statuses(hook.Delivered())) got += st + " ";
  const std::vector<std::string> expected = {"firing", "resolved"};
  const std::string context = "delivered: " + got + "\n" + ReadFile(dir.File("err2.log"));
  CHECK_MESSAGE(Statuses(hook.Delivered()) == expected, context);
  CHECK(Query(db, "SELECT count(*) FROM outbox WHERE delivered_ms IS NULL AND given_up_ms IS NULL") == 0);
}

}  // namespace
}  // namespace gatewatch::daemon
