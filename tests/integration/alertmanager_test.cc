// A real Alertmanager (Debian's prometheus-alertmanager, started on loopback by the test)
// receives gatewatch's alert through `type = "alertmanager"`: its API lists the alert as
// active while it fires — still after the endsAt of any single post (the re-posts keep it
// alive) and after Alertmanager's resolve_timeout — and no longer once gatewatch resolves it.
#include <httplib.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fleet/raw_server.h"
#include "tests/support/gateways.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::ReadFile;
using testing::WaitFor;

constexpr const char* kAlertmanagerBinary = "/usr/bin/prometheus-alertmanager";

// Alertmanager on 127.0.0.1 with clustering off and a receiver that sends nowhere.
class Alertmanager {
 public:
  explicit Alertmanager(testing::TempDir& dir) : port_(testing::FreePort()) {
    testing::RequireBinary(kAlertmanagerBinary);
    const std::string config = dir.Write("alertmanager.yml", R"(global:
  resolve_timeout: 5s
route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
)");
    process_ = std::make_unique<testing::Process>(
        std::vector<std::string>{kAlertmanagerBinary, "--config.file=" + config,
                                 "--storage.path=" + dir.File("am-data"),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                 "--cluster.listen-address=", "--log.level=warn"},
        dir.File("am.out"), dir.File("am.err"));
    REQUIRE_MESSAGE(WaitFor([&] {
                      auto r = Client().Get("/-/ready");
                      return (r && r->status == 200) || !process_->Running();
                    }, 20s),
                    ReadFile(dir.File("am.err")));
    REQUIRE_MESSAGE(process_->Running(), ReadFile(dir.File("am.err")));
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Active alerts with alertname = `name` (Alertmanager's own view).
  std::vector<json> Active(const std::string& name) {
    auto r = Client().Get("/api/v2/alerts?active=true&silenced=true&inhibited=true");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    std::vector<json> out;
    for (const json& a : json::parse(r->body)) {
      if (a["labels"].value("alertname", "") == name && a["status"]["state"] == "active") out.push_back(a);
    }
    return out;
  }

 private:
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    return c;
  }

  uint16_t port_;
  std::unique_ptr<testing::Process> process_;
};

TEST_CASE("Alertmanager: a real Alertmanager lists the alert while it fires and not after it resolves") {
  testing::TempDir dir;
  Alertmanager am(dir);
  fleet::RawHttpServer site;
  site.Route("/healthz", fleet::Behavior::Status(502));
  const std::string config = dir.Write("gatewatch.toml", R"(
[server]
listen = "127.0.0.1:0"
[storage]
path = ")" + dir.File("gw.db") + R"("
[defaults]
interval = "1s"
timeout = "800ms"
retries = 0

[[monitors]]
name = "shop"
url = ")" + site.Url("/healthz") + R"("

[[alerts]]
name = "shop-502"
monitors = ["shop"]
kind = "status_rate"
codes = [502]
above = 0.5
window = "10s"
min_samples = 3
for = "0s"
below = 0.1
resolve_for = "1s"
severity = "critical"
notify = ["am"]

[[notifiers]]
name = "am"
type = "alertmanager"
url = ")" + am.Url() + R"("
repost = "2s"
)");
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"), dir.File("err.log"));

  REQUIRE_MESSAGE(WaitFor([&] { return !am.Active("shop-502").empty() || !daemon.Running(); }, 30s),
                  ReadFile(dir.File("err.log")));
  REQUIRE_MESSAGE(daemon.Running(), ReadFile(dir.File("err.log")));
  const json first = am.Active("shop-502").at(0);
  CHECK(first["labels"]["monitor"] == "shop");
  CHECK(first["labels"]["severity"] == "critical");
  CHECK_FALSE(first["labels"].contains("verdict"));  // an annotation, never a label
  CHECK(first["annotations"].contains("summary"));
  const std::string first_ends = first["endsAt"];

  // Each post says endsAt = now + 5 x repost (10 s); 25 s later the alert is still active
  // only because gatewatch re-posted it (and resolve_timeout, 5 s, passed long ago).
  std::this_thread::sleep_for(25s);
  const auto still = am.Active("shop-502");
  REQUIRE(still.size() == 1);
  CHECK(std::string(still[0]["endsAt"]) > first_ends);  // RFC 3339 UTC: compares as text
  CHECK(still[0]["startsAt"] == first["startsAt"]);      // the same episode

  site.Route("/healthz", fleet::Behavior::Ok());  // the site recovers
  CHECK_MESSAGE(WaitFor([&] { return am.Active("shop-502").empty(); }, 30s), ReadFile(dir.File("err.log")));
  std::this_thread::sleep_for(5s);  // and no re-post brings it back
  CHECK(am.Active("shop-502").empty());
  daemon.Signal(SIGTERM);
  CHECK(daemon.Wait(20s) == std::optional<int>(0));
}

}  // namespace
}  // namespace gatewatch::daemon
