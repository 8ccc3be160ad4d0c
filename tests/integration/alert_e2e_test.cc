// Alerting end to end (docs/alerts-and-diagnosis.md): the gatewatch binary watches a real nginx in front
// of an upstream process on loopback; the test kills the upstream (SIGKILL: its port refuses
// connections, nginx answers 502) and starts it again; a recording webhook receiver
// gets exactly one firing and one resolved message, each with a valid HMAC signature. The
// time from the first 502 at the gateway to the webhook POST is printed.
#include <openssl/hmac.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "storage/sqlite_store.h"
#include "tests/support/gateways.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/upstream_process.h"
#include "tests/support/wait.h"
#include "tests/support/webhook_receiver.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::ReadFile;
using testing::WaitFor;

constexpr const char* kSecret = "e2e-hook-secret";

std::string HmacHex(const std::string& key, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
               reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len) != nullptr);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", mac[i]);
    hex += buf;
  }
  return hex;
}

// The start of the n-th (0-based) stored result of `monitor` with `status` (unix ms), or -1.
int64_t NthWithStatus(const std::string& db, const std::string& monitor, int status, int n) {
  storage::OpenOptions ro;
  ro.read_only = true;
  auto store = storage::SqliteStore::Open(db, ro);
  REQUIRE_MESSAGE(store.has_value(), (store ? std::string() : store.error()));
  auto at = (*store)->QueryIntForTest(
      "SELECT coalesce((SELECT started_at FROM results WHERE monitor = '" + monitor +
      "' AND http_status = " + std::to_string(status) + " ORDER BY started_at LIMIT 1 OFFSET " +
      std::to_string(n) + "), -1)");
  REQUIRE(at.has_value());
  return *at;
}

int64_t UnixMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TEST_CASE("Alert e2e: upstream killed behind nginx, then restarted -> one firing, one resolved, signed") {
  testing::TempDir dir;
  testing::UpstreamProcess upstream(dir, "shop-api");
  testing::NginxGateway nginx({{.location = "/", .servers = {static_cast<uint16_t>(upstream.port())}}});
  testing::WebhookReceiver hook;
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
url = ")" + nginx.Url("/healthz") + R"("
upstreams = ["shop-api"]

[[monitors]]
name = "shop-api"
url = ")" + upstream.Url("/healthz") + R"("

[[alerts]]
name = "shop-502"
monitors = ["shop"]
kind = "status_rate"
codes = [502]
above = 0.2
window = "10s"
min_samples = 3
for = "0s"
below = 0.05
resolve_for = "2s"
severity = "critical"
notify = ["hook"]

[[notifiers]]
name = "hook"
type = "webhook"
url = ")" + hook.Url("/hook") + R"("
secret = ")" + kSecret + R"("
)");
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"), dir.File("err.log"));
  // Healthy first, for a whole window (10 s: ~10 probes of each monitor reach the upstream),
  // so that the alert needs 3 of 10 probes to fire, as it would in production.
  REQUIRE_MESSAGE(WaitFor([&] { return upstream.RequestCount() >= 24 || !daemon.Running(); }, 40s),
                  ReadFile(dir.File("err.log")));
  REQUIRE(daemon.Running());
  CHECK(hook.Count() == 0);

  upstream.Kill();  // the upstream dies: nginx answers 502
  REQUIRE_MESSAGE(WaitFor([&] { return hook.Count() >= 1; }, 40s), ReadFile(dir.File("err.log")));
  const auto firing_at = hook.Requests()[0].at;
  upstream.Restart();  // back, on the same port
  REQUIRE_MESSAGE(WaitFor([&] { return hook.Count() >= 2; }, 60s), ReadFile(dir.File("err.log")));
  std::this_thread::sleep_for(3s);  // nothing more may come (no flapping, no duplicate)
  daemon.Signal(SIGTERM);
  REQUIRE(daemon.Wait(20s) == std::optional<int>(0));

  const auto requests = hook.Requests();
  REQUIRE(requests.size() == 2);
  const char* want[] = {"firing", "resolved"};
  for (size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    const auto& r = requests[i];
    CHECK(r.path == "/hook");
    REQUIRE(r.headers.contains("X-Gatewatch-Signature"));
    CHECK(r.headers.at("X-Gatewatch-Signature") == "sha256=" + HmacHex(kSecret, r.body));
    const json body = json::parse(r.body);
    CHECK(body["version"] == "4");
    CHECK(body["status"] == want[i]);
    REQUIRE(body["alerts"].size() == 1);
    CHECK(body["alerts"][0]["labels"]["alertname"] == "shop-502");
    CHECK(body["alerts"][0]["labels"]["monitor"] == "shop");
    CHECK(body["alerts"][0]["labels"]["severity"] == "critical");
    CHECK(r.body.find(hook.Url("/hook")) == std::string::npos);  // no secret url in the payload
    CHECK(r.body.find(kSecret) == std::string::npos);
  }
  // The firing names the gateway's emitter.
  CHECK(requests[0].body.find("nginx") != std::string::npos);

  const int64_t first_502 = NthWithStatus(db, "shop", 502, 0);
  const int64_t third_502 = NthWithStatus(db, "shop", 502, 2);
  REQUIRE(first_502 > 0);
  REQUIRE(third_502 > first_502);
  const int64_t latency_ms = UnixMs(firing_at) - first_502;
  CHECK(latency_ms > 0);
  // The rule needs 3 of the window's ~10 probes: the third 502 fires it; the rest is the
  // pipeline (evaluation, outbox commit) and delivery.
  MESSAGE("first 502 at the gateway -> webhook POST: " << latency_ms << " ms, of which "
          << UnixMs(firing_at) - third_502 << " ms after the 502 that crossed the threshold "
          << "(interval 1s, window 10s, above 0.2)");
  // The outbox recorded both deliveries: a restart sends nothing again.
  auto store = storage::SqliteStore::Open(db);
  REQUIRE(store.has_value());
  CHECK((*store)->QueryIntForTest("SELECT count(*) FROM outbox WHERE delivered_ms IS NOT NULL").value() == 2);
}

}  // namespace
}  // namespace gatewatch::daemon
