// Every real gateway of tests/gateways/ (Debian 12 packages, started from its manifest by
// tests/support/gateway_manifest.h) in every situation its manifest defines, watched by the
// real gatewatch binary on loopback:
//  - `gatewatch check GATEWAY_URL --json --timeout 6s`, once with `--upstream` the
//    situation's upstream (probed directly) and once alone, both at the same time;
//  - one `gatewatch run` daemon per gateway with a monitor per situation, its upstream
//    linked through a monitor of its own (interval = timeout = 6 s: the config allows no
//    timeout above the interval), read back through the HTTP API once every monitor has two
//    results: the latest result's status, outcome, emitter and reason, and the verdict of the
//    open incident (none open: healthy).
// What each must say is the table of tests/support/gateway_expectations.h: the target's
// status, outcome, emitter and reason, and the verdict linked and alone (the daemon: linked).
// Each check case prints one line "gateway situation -> status outcome emitter/reason
// verdict_linked verdict_alone" of what gatewatch said (the table quoted in the closing note);
// the daemon cases print "... verdict (daemon; was V1 -> V2)" with the verdicts it went
// through.
//
// A gateway that is not installed ends its test with exit code 77 (ctest SKIP_RETURN_CODE:
// reported as skipped, naming the package); CI installs them all. 127.0.0.1 only; every wait
// is bounded.

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/gateway_expectations.h"
#include "tests/support/gateway_manifest.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using testing::GatewayCase;
using testing::ManifestGateway;

// The probe timeout of every check and monitor here: above the slow upstream's 4 s, so that
// probed directly it answers, and above every gateway's own 2-3 s upstream timeout.
constexpr const char* kTimeout = "6s";

// ---- gatewatch check ----

struct CheckRun {
  std::string url;
  std::string upstream;  // "" = the gateway alone
  testing::RunResult result;
  double seconds = 0;
  json j;  // stdout parsed; null when it is not a JSON object

  // Fields of the target (defaults as the JSON leaves them out: emitter and reason are only
  // given for a status >= 500).
  const json& Target() const {
    static const json empty = json::object();
    return j.is_object() && j.contains("target") && j["target"].is_object() ? j["target"] : empty;
  }
  int Status() const { return Target().value("http_status", -1); }
  std::string Outcome() const { return Target().value("outcome", "(none)"); }
  std::string Emitter() const { return Target().value("emitter", "none"); }
  std::string Reason() const { return Target().value("reason", "unknown"); }
  std::string Verdict() const { return j.is_object() ? j.value("verdict", "(none)") : "(none)"; }
  std::string Summary() const { return j.is_object() ? j.value("summary", "") : ""; }
  std::string Describe() const {
    return "gatewatch check " + url + (upstream.empty() ? "" : " --upstream " + upstream) +
           ": exit " + std::to_string(result.exit_code) + " after " + std::to_string(seconds) +
           " s\nstdout:\n" + result.out + "\nstderr:\n" + result.err;
  }
};

// Runs `gatewatch check URL [--upstream U] --json --timeout T` (killed after 30 s). Only runs
// the process: no doctest assertion, so it may run on any thread.
CheckRun RunCheck(const std::string& url, const std::string& upstream,
                  const std::string& timeout = kTimeout) {
  std::vector<std::string> argv = {GATEWATCH_BINARY, "check", url, "--json", "--timeout", timeout};
  if (!upstream.empty()) {
    argv.push_back("--upstream");
    argv.push_back(upstream);
  }
  CheckRun run;
  run.url = url;
  run.upstream = upstream;
  const auto start = Clock::now();
  run.result = testing::RunCommand(argv, 30s);
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  run.j = json::parse(run.result.out, nullptr, /*allow_exceptions=*/false);
  if (!run.j.is_object()) run.j = nullptr;
  return run;
}

bool Contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

// The expectation rows of one gateway.
std::vector<GatewayCase> CasesOf(std::string_view gateway) {
  std::vector<GatewayCase> out;
  for (const GatewayCase& c : testing::GatewayCases()) {
    if (c.gateway == gateway) out.push_back(c);
  }
  return out;
}

const GatewayCase* CaseOf(const std::vector<GatewayCase>& cases, std::string_view situation) {
  for (const GatewayCase& c : cases) {
    if (c.situation == situation) return &c;
  }
  return nullptr;
}

// The manifest and the table describe the same situations; a situation the manifest leaves
// out says why in "absent".
void CheckSituationsAgree(const ManifestGateway& gw, const std::vector<GatewayCase>& cases) {
  CHECK_MESSAGE(!cases.empty(), "no rows for " << gw.name() << " in gateway_expectations.cc");
  for (const GatewayCase& c : cases) {
    CHECK_MESSAGE(gw.Has(c.situation), gw.name() << ": the table has situation " << c.situation
                                                 << " but the manifest does not");
  }
  for (std::string_view s : testing::AllSituations()) {
    if (!gw.Has(s)) {
      CHECK_MESSAGE(!gw.manifest().AbsentReason(s).empty(),
                    gw.name() << ": situation " << s << " is neither defined nor \"absent\"");
    }
  }
}

// What a summary must never be: empty, the engine's fallback text, or (for a failure the
// application or nobody generated, probed alone) a claim about "the gateway".
void CheckSummary(const CheckRun& run, bool alone, std::string_view expected_emitter) {
  const std::string summary = run.Summary();
  CHECK_FALSE(summary.empty());
  CHECK_FALSE(Contains(summary, "no verdict row matched"));
  if (alone) {
    const bool nobody_gateway = expected_emitter == "application" || expected_emitter == "none" ||
                                run.Emitter() == "application" || run.Emitter() == "none";
    if (nobody_gateway) CHECK_FALSE(Contains(summary, "the gateway"));
  }
  // The exit code follows the verdict.
  CHECK(run.result.exit_code == (run.Verdict() == "healthy" ? 0 : 1));
}

void CheckTarget(const CheckRun& run, const GatewayCase& row) {
  CHECK(run.Status() == row.status);
  CHECK(run.Outcome() == std::string(row.outcome));
  CHECK(run.Emitter() == std::string(row.emitter));
  CHECK(run.Reason() == std::string(row.reason));
}

// Both checks of every situation of gateway `name`, all at once (each takes up to ~7 s).
void CheckGatewayLive(std::string_view name) {
  const auto started = Clock::now();
  ManifestGateway gw(name);  // first: a missing binary skips before anything else starts
  MESSAGE(gw.name() << ": " << gw.binary() << " (" << gw.version() << ")");
  const std::vector<GatewayCase> cases = CasesOf(name);
  CheckSituationsAgree(gw, cases);

  struct Pending {
    std::string situation;
    std::future<CheckRun> linked, alone;
  };
  std::vector<Pending> pending;
  for (const std::string& s : gw.Situations()) {
    pending.push_back(
        {s, std::async(std::launch::async, RunCheck, gw.Url(s), gw.UpstreamUrl(s), kTimeout),
         std::async(std::launch::async, RunCheck, gw.Url(s), std::string(), kTimeout)});
  }
  for (Pending& p : pending) {
    const CheckRun linked = p.linked.get();
    const CheckRun alone = p.alone.get();
    MESSAGE(gw.name() << " " << p.situation << " -> " << linked.Status() << " " << linked.Outcome()
                      << " " << linked.Emitter() << "/" << linked.Reason() << " "
                      << linked.Verdict() << " " << alone.Verdict());
    CAPTURE(p.situation);
    INFO("gateway log:\n" << gw.Log());
    const GatewayCase* row = CaseOf(cases, p.situation);
    CHECK_MESSAGE(row != nullptr, "no row for " << gw.name() << " " << p.situation
                                                << " in gateway_expectations.cc");
    {
      INFO("linked: " << linked.Describe());
      CHECK_MESSAGE(linked.j.is_object(), "check --upstream printed no JSON object");
      CheckSummary(linked, false, row != nullptr ? row->emitter : "");
      if (row != nullptr) {
        CheckTarget(linked, *row);
        CHECK(linked.Verdict() == std::string(row->verdict_linked));
      }
    }
    {
      INFO("alone: " << alone.Describe());
      CHECK_MESSAGE(alone.j.is_object(), "check printed no JSON object");
      CheckSummary(alone, true, row != nullptr ? row->emitter : "");
      if (row != nullptr) {
        CheckTarget(alone, *row);
        CHECK(alone.Verdict() == std::string(row->verdict_alone));
      }
    }
  }
  MESSAGE(gw.name() << ": " << pending.size() << " situations checked in "
                    << std::chrono::duration<double>(Clock::now() - started).count() << " s");
}

// ---- the daemon ----

// `gatewatch run` on a config in `dir`; the API port from its log. SIGTERM on destruction.
class Daemon {
 public:
  Daemon(testing::TempDir& dir, const std::string& toml)
      : dir_(dir),
        process_({GATEWATCH_BINARY, "run", "--config", dir.Write("gatewatch.toml", toml)},
                 dir.File("out.log"), dir.File("err.log")) {
    port_ = testing::WaitForListenPort(dir.File("err.log"));
    REQUIRE_MESSAGE(port_ > 0, "gatewatch run did not listen; its log:\n" << Log());
  }
  ~Daemon() {
    process_.Signal(SIGTERM);
    (void)process_.Wait(20s);  // Process's destructor SIGKILLs it after that
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  std::string Log() const { return testing::ReadFile(dir_.File("err.log")); }

  // GET path as JSON; null on any failure (not running yet, error status, not JSON).
  json Get(const std::string& path) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    auto r = c.Get(path);
    if (!r || r->status != 200) return nullptr;
    return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }

 private:
  testing::TempDir& dir_;
  testing::Process process_;
  int port_ = 0;
};

// What the daemon says of one situation.
struct Observed {
  int status = -1;
  std::string outcome = "(none)", emitter = "none", reason = "unknown";
  std::string verdict = "healthy";  // no open incident: healthy
  std::string summary;
  size_t gateway_results = 0, upstream_results = 0;
  json monitor, incident;  // as the API gave them

  bool Ready() const { return gateway_results >= 2 && upstream_results >= 2; }
  bool Matches(const GatewayCase& row) const {
    return status == row.status && outcome == row.outcome && emitter == row.emitter &&
           reason == row.reason && verdict == row.verdict_linked;
  }
};

std::string GatewayMonitor(const std::string& situation) { return "gw-" + situation; }
std::string UpstreamMonitor(const std::string& situation) { return "up-" + situation; }

size_t ResultCount(const Daemon& d, const std::string& monitor) {
  const json r = d.Get("/api/v1/monitors/" + monitor + "/results?limit=5");
  return r.is_object() && r.contains("results") && r["results"].is_array() ? r["results"].size()
                                                                           : 0;
}

std::map<std::string, Observed> Observe(const Daemon& d,
                                        const std::vector<std::string>& situations) {
  std::map<std::string, Observed> out;
  const json monitors = d.Get("/api/v1/monitors");
  const json incidents = d.Get("/api/v1/incidents?open=true");
  for (const std::string& s : situations) {
    Observed& o = out[s];
    if (monitors.is_object() && monitors["monitors"].is_array()) {
      for (const json& m : monitors["monitors"]) {
        if (m.value("name", "") != GatewayMonitor(s)) continue;
        o.monitor = m;
        if (m["current"].is_array() && !m["current"].empty()) {
          const json& cur = m["current"][0];
          o.status = cur.value("http_status", -1);
          o.outcome = cur.value("outcome", "(none)");
          o.emitter = cur.value("emitter", "none");
          o.reason = cur.value("reason", "unknown");
        }
      }
    }
    if (incidents.is_object() && incidents["incidents"].is_array()) {
      for (const json& inc : incidents["incidents"]) {
        if (inc.value("monitor", "") != GatewayMonitor(s)) continue;
        o.incident = inc;
        o.verdict = inc.value("verdict", "(none)");
        o.summary = inc.value("summary", "");
      }
    }
    o.gateway_results = ResultCount(d, GatewayMonitor(s));
    o.upstream_results = ResultCount(d, UpstreamMonitor(s));
  }
  return out;
}

// One daemon watching every situation of gateway `name`: each situation a monitor of the
// gateway URL with the situation's upstream linked (a monitor of its own). Waits until every
// monitor has results and every diagnosis matches the table, or (bounded) until they had 20 s
// after the last one got its results to settle; then CHECKs what the API says.
void CheckGatewayDaemon(std::string_view name) {
  const auto started = Clock::now();
  ManifestGateway gw(name);  // first: a missing binary skips before anything else starts
  MESSAGE(gw.name() << ": " << gw.binary() << " (" << gw.version() << ")");
  const std::vector<GatewayCase> cases = CasesOf(name);
  CheckSituationsAgree(gw, cases);
  const std::vector<std::string> situations = gw.Situations();

  testing::TempDir dir;
  std::string toml = "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"" +
                     dir.File("gw.db") + "\"\n[defaults]\ninterval = \"" + kTimeout +
                     "\"\ntimeout = \"" + kTimeout + "\"\nretries = 0\n\n";
  for (const std::string& s : situations) {
    toml += "[[monitors]]\nname = \"" + GatewayMonitor(s) + "\"\nurl = \"" + gw.Url(s) +
            "\"\nupstreams = [\"" + UpstreamMonitor(s) + "\"]\n\n";
    toml += "[[monitors]]\nname = \"" + UpstreamMonitor(s) + "\"\nurl = \"" + gw.UpstreamUrl(s) +
            "\"\n\n";
  }
  Daemon daemon(dir, toml);
  INFO("gatewatch.toml:\n" << toml);

  const auto all = [&](const std::map<std::string, Observed>& seen, auto&& pred) {
    for (const std::string& s : situations) {
      if (!pred(s, seen.at(s))) return false;
    }
    return true;
  };
  std::map<std::string, Observed> seen;
  // Per situation, every state the API showed, in order, with the seconds since the daemon
  // started: how the diagnosis got where it ended.
  std::map<std::string, std::vector<std::string>> history;
  const auto daemon_started = Clock::now();
  std::optional<Clock::time_point> ready_at;
  std::optional<double> matched_after;  // seconds after the start, when everything matched
  const auto deadline = Clock::now() + 90s;
  for (int round = 0; round < 400 && Clock::now() < deadline; ++round) {
    seen = Observe(daemon, situations);
    const double t = std::chrono::duration<double>(Clock::now() - daemon_started).count();
    for (const std::string& s : situations) {
      const Observed& o = seen.at(s);
      const std::string state = std::to_string(o.status) + " " + o.outcome + " " + o.emitter + "/" +
                                o.reason + " " +
                                (o.incident.is_null() ? std::string("no_incident") : o.verdict);
      std::vector<std::string>& h = history[s];
      if (o.gateway_results == 0) continue;  // nothing to diagnose yet
      if (h.empty() || !h.back().ends_with("s " + state)) {
        char at[32];
        std::snprintf(at, sizeof at, "+%.1fs ", t);
        h.push_back(at + state);
      }
    }
    const bool ready = all(seen, [](const std::string&, const Observed& o) { return o.Ready(); });
    if (ready && !ready_at) ready_at = Clock::now();
    const bool matched = ready && all(seen, [&](const std::string& s, const Observed& o) {
                           const GatewayCase* row = CaseOf(cases, s);
                           return row != nullptr && o.Matches(*row);
                         });
    if (matched) matched_after = t;
    if (matched || (ready_at && Clock::now() - *ready_at > 20s)) break;
    std::this_thread::sleep_for(500ms);
  }

  INFO("daemon log:\n" << daemon.Log());
  for (const std::string& s : situations) {
    const Observed& o = seen.at(s);
    std::string verdicts;  // the verdicts it went through, when more than one
    for (const std::string& state : history[s]) {
      const std::string v = state.substr(state.rfind(' ') + 1);
      if (!verdicts.ends_with(v)) verdicts += (verdicts.empty() ? "" : " -> ") + v;
    }
    MESSAGE(gw.name() << " " << s << " -> " << o.status << " " << o.outcome << " " << o.emitter
                      << "/" << o.reason << " " << o.verdict << " (daemon"
                      << (verdicts.find(" -> ") == std::string::npos ? "" : "; was " + verdicts)
                      << ")");
    CAPTURE(s);
    INFO("states seen:\n"
         << [&] {
              std::string text;
              for (const std::string& state : history[s]) text += "  " + state + "\n";
              return text;
            }());
    INFO("monitor: " << o.monitor.dump());
    INFO("incident: " << o.incident.dump());
    INFO("gateway log:\n" << gw.Log());
    CHECK_MESSAGE(o.Ready(), GatewayMonitor(s) << " has " << o.gateway_results << " results, "
                                               << UpstreamMonitor(s) << " " << o.upstream_results);
    const GatewayCase* row = CaseOf(cases, s);
    CHECK_MESSAGE(row != nullptr, "no row for " << gw.name() << " " << s);
    if (row == nullptr) continue;
    CHECK(o.status == row->status);
    CHECK(o.outcome == std::string(row->outcome));
    CHECK(o.emitter == std::string(row->emitter));
    CHECK(o.reason == std::string(row->reason));
    CHECK(o.verdict == std::string(row->verdict_linked));
    if (o.verdict != "healthy") {
      CHECK_FALSE(o.summary.empty());
      CHECK_FALSE(Contains(o.summary, "no verdict row matched"));
    }
  }
  MESSAGE(gw.name() << ": daemon checked in "
                    << std::chrono::duration<double>(Clock::now() - started).count() << " s; "
                    << (matched_after
                            ? "every diagnosis matched " + std::to_string(*matched_after) +
                                  " s after the daemon started"
                            : std::string("not every diagnosis matched")));
}

}  // namespace

TEST_CASE("Gateways live: nginx") { CheckGatewayLive("nginx"); }
TEST_CASE("Gateways live: haproxy") { CheckGatewayLive("haproxy"); }
TEST_CASE("Gateways live: apache2") { CheckGatewayLive("apache2"); }
TEST_CASE("Gateways live: lighttpd") { CheckGatewayLive("lighttpd"); }
TEST_CASE("Gateways live: caddy") { CheckGatewayLive("caddy"); }
TEST_CASE("Gateways live: varnish") { CheckGatewayLive("varnish"); }
TEST_CASE("Gateways live: h2o") { CheckGatewayLive("h2o"); }
TEST_CASE("Gateways live: squid") { CheckGatewayLive("squid"); }
TEST_CASE("Gateways live: trafficserver") { CheckGatewayLive("trafficserver"); }

TEST_CASE("Gateways live: every manifest has a test case above") {
  const std::vector<std::string> tested = {"apache2", "caddy",    "h2o",
                                           "haproxy", "lighttpd", "nginx",
                                           "squid",   "varnish",  "trafficserver"};
  for (const std::string& name : testing::ManifestNames()) {
    CAPTURE(name);
    CHECK(std::find(tested.begin(), tested.end(), name) != tested.end());
  }
}

// HAProxy keeps retrying a refused server (3 retries, about a second apart) before its 503:
// a probe that gives up after 1.5 s sees no answer at all (timeout_ttfb). With the refused
// upstream linked that is still upstream_down: the gateway was waiting on a dead upstream.
TEST_CASE("Gateways live: HAProxy retrying a refused server outlasts a 1.5 s probe") {
  ManifestGateway gw("haproxy");
  auto linked = std::async(std::launch::async, RunCheck, gw.Url("refused"),
                           gw.UpstreamUrl("refused"), "1s500ms");
  auto alone =
      std::async(std::launch::async, RunCheck, gw.Url("refused"), std::string(), "1s500ms");
  const CheckRun l = linked.get();
  const CheckRun a = alone.get();
  MESSAGE("haproxy refused (timeout 1.5s) -> " << l.Status() << " " << l.Outcome() << " "
                                               << l.Emitter() << "/" << l.Reason() << " "
                                               << l.Verdict() << " " << a.Verdict());
  INFO("gateway log:\n" << gw.Log());
  {
    INFO("linked: " << l.Describe());
    REQUIRE(l.j.is_object());
    CHECK(l.Outcome() == "timeout_ttfb");
    CHECK(l.Verdict() == "upstream_down");
    CheckSummary(l, false, "none");
  }
  {
    INFO("alone: " << a.Describe());
    REQUIRE(a.j.is_object());
    CHECK(a.Outcome() == "timeout_ttfb");
    CheckSummary(a, true, "none");
  }
}

TEST_CASE("Gateways daemon: nginx") { CheckGatewayDaemon("nginx"); }
TEST_CASE("Gateways daemon: haproxy") { CheckGatewayDaemon("haproxy"); }
TEST_CASE("Gateways daemon: apache2") { CheckGatewayDaemon("apache2"); }
TEST_CASE("Gateways daemon: lighttpd") { CheckGatewayDaemon("lighttpd"); }
TEST_CASE("Gateways daemon: caddy") { CheckGatewayDaemon("caddy"); }
TEST_CASE("Gateways daemon: varnish") { CheckGatewayDaemon("varnish"); }
TEST_CASE("Gateways daemon: h2o") { CheckGatewayDaemon("h2o"); }
TEST_CASE("Gateways daemon: squid") { CheckGatewayDaemon("squid"); }
TEST_CASE("Gateways daemon: trafficserver") { CheckGatewayDaemon("trafficserver"); }

}  // namespace gatewatch::daemon
