// daemon/metrics: which series exist when, exact sample lines, escaping, RetainMonitors,
// self metrics, the extension families; render time and Observe cost (printed only).

#include "daemon/metrics.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <thread>

#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using probes::Emitter;
using probes::Outcome;
using probes::Reason;
using testing::WaitFor;
using us = std::chrono::microseconds;

probes::ProbeResult Make(const std::string& monitor, const std::string& region, Outcome outcome,
                         int status, bool confirmed, int attempt = 0) {
  probes::ProbeResult r;
  r.monitor = monitor;
  r.region = region;
  r.outcome = outcome;
  r.http_status = status;
  r.confirmed = confirmed;
  r.attempt = attempt;
  if (status >= 500) {
    r.emitter = Emitter::kNginx;
    r.reason = Reason::kUnknown;
  }
  return r;
}

probes::PhaseTimings AllPhases() {
  return {us(1000), us(2000), us(3000), us(4000), us(500), us(10500)};
}

// Lines of `text` that are samples of `family` (name followed by '{' or ' ').
std::vector<std::string> Samples(const std::string& text, const std::string& family) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(family + "{", 0) == 0 || line.rfind(family + " ", 0) == 0) out.push_back(line);
  }
  return out;
}

bool Has(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST_CASE("Metrics: a series exists only once its value has been seen") {
  Metrics m("1.2.3");
  std::string text = m.Render();
  CHECK(text.find("gatewatch_probe") == std::string::npos);
  CHECK(text.find("# TYPE gatewatch_probes_total") == std::string::npos);  // no empty families
  CHECK(Has(text, "gatewatch_build_info{version=\"1.2.3\"} 1"));
  CHECK(m.ProbeSeriesCountForTest() == 0);

  // An unconfirmed failure: counters only, no gauge yet.
  m.Observe(Make("api", "eu", Outcome::kConnectRefused, 0, false));
  text = m.Render();
  CHECK(Samples(text, "gatewatch_probes_total") ==
        std::vector<std::string>{
            "gatewatch_probes_total{monitor=\"api\",region=\"eu\",outcome=\"connect_refused\"} 1"});
  CHECK(Samples(text, "gatewatch_probe_success").empty());
  CHECK(Samples(text, "gatewatch_probe_http_status_code").empty());
  CHECK(Samples(text, "gatewatch_probe_phase_seconds").empty());
  CHECK(Samples(text, "gatewatch_http_responses_total").empty());  // no response: no code
  CHECK(Samples(text, "gatewatch_probe_emitter_total").empty());
  CHECK(Samples(text, "gatewatch_tls_cert_expiry_timestamp_seconds").empty());

  // A healthy HTTPS monitor x region costs about a dozen series.
  auto ok = Make("web", "eu", Outcome::kOk, 200, true);
  ok.phases = AllPhases();
  ok.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'900'000'000));
  m.Observe(ok);
  CHECK(m.ProbeSeriesCountForTest() == 1 + 11);  // api's counter + web's 11
}

TEST_CASE("Metrics: exact sample lines for a small set of results") {
  Metrics m("1.2.3");
  auto ok = Make("api", "eu", Outcome::kOk, 200, true);
  ok.phases = AllPhases();
  ok.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'900'000'000));
  m.Observe(ok);
  auto first = Make("api", "us", Outcome::kHttp502, 502, false, 0);
  first.phases = {us(100), us(200), std::nullopt, us(300), us(400), us(1000)};
  auto retry = first;
  retry.attempt = 1;
  retry.confirmed = true;
  m.Observe(first);
  m.Observe(retry);
  auto refused = Make("db", "eu", Outcome::kConnectRefused, 0, true);
  refused.phases.resolve = us(50);
  refused.phases.total = us(250);
  m.Observe(refused);

  const std::string expected =
      "# HELP gatewatch_probe_success 1 if the last confirmed probe of the monitor in the region "
      "succeeded (ok or excused), else 0.\n"
      "# TYPE gatewatch_probe_success gauge\n"
      "gatewatch_probe_success{monitor=\"api\",region=\"eu\"} 1\n"
      "gatewatch_probe_success{monitor=\"api\",region=\"us\"} 0\n"
      "gatewatch_probe_success{monitor=\"db\",region=\"eu\"} 0\n"
      "# HELP gatewatch_probe_phase_seconds Phase durations of the last confirmed probe (resolve, "
      "connect, tls, processing, transfer, total); a phase that was not reached has no series.\n"
      "# TYPE gatewatch_probe_phase_seconds gauge\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"resolve\"} 0.001\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"connect\"} 0.002\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"tls\"} 0.003\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"processing\"} 0.004\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"transfer\"} 0.0005\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"total\"} 0.0105\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"us\",phase=\"resolve\"} 0.0001\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"us\",phase=\"connect\"} 0.0002\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"us\",phase=\"processing\"} 0.0003\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"us\",phase=\"transfer\"} 0.0004\n"
      "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"us\",phase=\"total\"} 0.001\n"
      "gatewatch_probe_phase_seconds{monitor=\"db\",region=\"eu\",phase=\"resolve\"} 0.00005\n"
      "gatewatch_probe_phase_seconds{monitor=\"db\",region=\"eu\",phase=\"total\"} 0.00025\n"
      "# HELP gatewatch_probe_http_status_code HTTP status of the last confirmed probe (0 = no "
      "response).\n"
      "# TYPE gatewatch_probe_http_status_code gauge\n"
      "gatewatch_probe_http_status_code{monitor=\"api\",region=\"eu\"} 200\n"
      "gatewatch_probe_http_status_code{monitor=\"api\",region=\"us\"} 502\n"
      "gatewatch_probe_http_status_code{monitor=\"db\",region=\"eu\"} 0\n"
      "# HELP gatewatch_probes_total Probe attempts by outcome class, retries included.\n"
      "# TYPE gatewatch_probes_total counter\n"
      "gatewatch_probes_total{monitor=\"api\",region=\"eu\",outcome=\"ok\"} 1\n"
      "gatewatch_probes_total{monitor=\"api\",region=\"us\",outcome=\"http_502\"} 2\n"
      "gatewatch_probes_total{monitor=\"db\",region=\"eu\",outcome=\"connect_refused\"} 1\n"
      "# HELP gatewatch_http_responses_total HTTP responses received by probes, by status code "
      "(every attempt).\n"
      "# TYPE gatewatch_http_responses_total counter\n"
      "gatewatch_http_responses_total{monitor=\"api\",region=\"eu\",code=\"200\"} 1\n"
      "gatewatch_http_responses_total{monitor=\"api\",region=\"us\",code=\"502\"} 2\n"
      "# HELP gatewatch_probe_emitter_total 5xx responses by the layer that most likely produced "
      "them (emitter) and the reason it gave (every attempt).\n"
      "# TYPE gatewatch_probe_emitter_total counter\n"
      "gatewatch_probe_emitter_total{monitor=\"api\",region=\"us\",emitter=\"nginx\",reason="
      "\"unknown\"} 2\n"
      "# HELP gatewatch_tls_cert_expiry_timestamp_seconds Earliest notAfter in the certificate "
      "chain seen by the last confirmed probes of the monitor (earliest over regions), as a Unix "
      "timestamp.\n"
      "# TYPE gatewatch_tls_cert_expiry_timestamp_seconds gauge\n"
      "gatewatch_tls_cert_expiry_timestamp_seconds{monitor=\"api\"} 1900000000\n"
      "# HELP gatewatch_build_info gatewatch build; the value is always 1.\n"
      "# TYPE gatewatch_build_info gauge\n"
      "gatewatch_build_info{version=\"1.2.3\"} 1\n";
  CHECK(m.Render() == expected);
}

TEST_CASE("Metrics: a phase the last confirmed probe did not reach has no series") {
  Metrics m("1");
  auto ok = Make("api", "eu", Outcome::kOk, 200, true);
  ok.phases = AllPhases();
  m.Observe(ok);
  CHECK(Samples(m.Render(), "gatewatch_probe_phase_seconds").size() == 6);

  // Refused: resolve and total only. The earlier connect/tls/processing/transfer go.
  auto refused = Make("api", "eu", Outcome::kConnectRefused, 0, true);
  refused.phases.resolve = us(10);
  refused.phases.total = us(20);
  m.Observe(refused);
  const std::string text = m.Render();
  CHECK(
      Samples(text, "gatewatch_probe_phase_seconds") ==
      std::vector<std::string>{
          "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"resolve\"} 0.00001",
          "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"total\"} 0.00002"});
  CHECK(Has(text, "gatewatch_probe_http_status_code{monitor=\"api\",region=\"eu\"} 0"));
  CHECK(Has(text, "gatewatch_probe_success{monitor=\"api\",region=\"eu\"} 0"));
  // The counters of what was seen stay.
  CHECK(Has(text, "gatewatch_http_responses_total{monitor=\"api\",region=\"eu\",code=\"200\"} 1"));
}

TEST_CASE("Metrics: counters count every attempt, gauges follow confirmed results only") {
  Metrics m("1");
  auto ok = Make("api", "eu", Outcome::kOk, 200, true);
  ok.phases = AllPhases();
  m.Observe(ok);
  // A failed first attempt, not (yet) confirmed: the gauges keep the last confirmed result.
  auto fail = Make("api", "eu", Outcome::kHttp503, 503, false);
  fail.phases = {us(7), us(7), us(7), us(7), us(7), us(35)};
  m.Observe(fail);
  std::string text = m.Render();
  CHECK(Has(text, "gatewatch_probe_success{monitor=\"api\",region=\"eu\"} 1"));
  CHECK(Has(text, "gatewatch_probe_http_status_code{monitor=\"api\",region=\"eu\"} 200"));
  CHECK(Has(text,
            "gatewatch_probe_phase_seconds{monitor=\"api\",region=\"eu\",phase=\"total\"} 0.0105"));
  CHECK(Has(text, "gatewatch_probes_total{monitor=\"api\",region=\"eu\",outcome=\"http_503\"} 1"));
  CHECK(Has(text, "gatewatch_http_responses_total{monitor=\"api\",region=\"eu\",code=\"503\"} 1"));
  CHECK(Has(text,
            "gatewatch_probe_emitter_total{monitor=\"api\",region=\"eu\",emitter=\"nginx\",reason="
            "\"unknown\"} 1"));

  // The retry succeeds (confirmed): success stays 1, counters add up.
  auto retry_ok = ok;
  retry_ok.attempt = 1;
  m.Observe(retry_ok);
  text = m.Render();
  CHECK(Has(text, "gatewatch_probes_total{monitor=\"api\",region=\"eu\",outcome=\"ok\"} 2"));
  CHECK(Has(text, "gatewatch_http_responses_total{monitor=\"api\",region=\"eu\",code=\"200\"} 2"));

  // Excused counts as success; non-5xx never touch the emitter counter.
  m.Observe(Make("api", "eu", Outcome::kExcused, 503, true));
  m.Observe(Make("api", "eu", Outcome::kHttp4xx, 404, true));
  text = m.Render();
  CHECK(Has(text, "gatewatch_probe_success{monitor=\"api\",region=\"eu\"} 0"));
  CHECK(Has(text,
            "gatewatch_probe_emitter_total{monitor=\"api\",region=\"eu\",emitter=\"nginx\",reason="
            "\"unknown\"} 2"));
  CHECK(Samples(text, "gatewatch_probe_emitter_total").size() == 1);
  m.Observe(Make("api", "eu", Outcome::kExcused, 503, true));
  CHECK(Has(m.Render(), "gatewatch_probe_success{monitor=\"api\",region=\"eu\"} 1"));
}

TEST_CASE(
    "Metrics: TLS expiry is the earliest over regions and stays known when a probe fails early") {
  Metrics m("1");
  auto eu = Make("api", "eu", Outcome::kOk, 200, true);
  eu.tls.earliest_expiry = SystemTime(std::chrono::seconds(2'000'000'000));
  auto us_ = Make("api", "us", Outcome::kOk, 200, true);
  us_.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'950'000'000));
  m.Observe(eu);
  m.Observe(us_);
  CHECK(Samples(m.Render(), "gatewatch_tls_cert_expiry_timestamp_seconds") ==
        std::vector<std::string>{
            "gatewatch_tls_cert_expiry_timestamp_seconds{monitor=\"api\"} 1950000000"});
  // Unconfirmed attempts do not move the gauge; a refused confirmed probe keeps it.
  auto other = eu;
  other.confirmed = false;
  other.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'000'000'000));
  m.Observe(other);
  m.Observe(Make("api", "us", Outcome::kConnectRefused, 0, true));
  CHECK(Samples(m.Render(), "gatewatch_tls_cert_expiry_timestamp_seconds") ==
        std::vector<std::string>{
            "gatewatch_tls_cert_expiry_timestamp_seconds{monitor=\"api\"} 1950000000"});
}

TEST_CASE("Metrics: RetainMonitors drops removed monitors' series and their late results") {
  Metrics m("1");
  for (const char* name : {"a", "b", "c"}) {
    auto r = Make(name, "eu", Outcome::kHttp502, 502, true);
    r.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'900'000'000));
    m.Observe(r);
  }
  auto* alert_state = m.AddGaugeFamily("gatewatch_alert_state", "Alert state.").value();
  alert_state->Set({{"alert", "down"}, {"monitor", "b"}}, 2);
  alert_state->Set({{"alert", "down"}, {"monitor", "c"}}, 1);
  CHECK(m.Render().find("monitor=\"b\"") != std::string::npos);

  m.RetainMonitors({"a", "c", "new"});
  std::string text = m.Render();
  CHECK(text.find("monitor=\"b\"") == std::string::npos);
  CHECK(text.find("monitor=\"a\"") != std::string::npos);
  CHECK(Has(text, "gatewatch_alert_state{alert=\"down\",monitor=\"c\"} 1"));

  // A probe of "b" still in flight during the reload finishes afterwards: ignored.
  m.Observe(Make("b", "eu", Outcome::kOk, 200, true));
  m.Observe(Make("new", "eu", Outcome::kOk, 200, true));
  text = m.Render();
  CHECK(text.find("monitor=\"b\"") == std::string::npos);
  CHECK(Has(text, "gatewatch_probe_success{monitor=\"new\",region=\"eu\"} 1"));
}

TEST_CASE("Metrics: label values are escaped (backslash, double quote, newline)") {
  Metrics m("v\"1\\\n");
  m.Observe(Make("a\"b\\c\nd", "r\\1", Outcome::kOk, 200, true));
  const std::string text = m.Render();
  CHECK(Has(text, "gatewatch_probe_success{monitor=\"a\\\"b\\\\c\\nd\",region=\"r\\\\1\"} 1"));
  CHECK(Has(text, "gatewatch_build_info{version=\"v\\\"1\\\\\\n\"} 1"));
  // No raw newline inside any sample line: every line is a comment or a whole sample.
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    CHECK((line.rfind("# ", 0) == 0 || line.rfind("gatewatch_", 0) == 0));
  }
}

TEST_CASE("Metrics: self metrics from the SelfStats source") {
  Metrics m("1.2.3");
  SelfStats s;
  s.probes_in_flight = 7;
  s.probes_queued = 3;
  s.skipped_overload = 4;
  s.skipped_backpressure = 5;
  s.skipped_missed = 6;
  s.lag_buckets = {10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  s.lag_sum_seconds = 0.25;
  s.db_rows_written = 1000;
  s.db_batches = 10;
  s.db_last_batch_seconds = 0.0125;
  s.db_queue_depth = 42;
  s.db_rows_lost = 1;
  s.db_write_errors = 2;
  s.start_time = SystemTime(std::chrono::seconds(1'800'000'000));
  m.SetSelfStats([s] { return s; });
  const std::string text = m.Render();
  for (const char* line : {
           "gatewatch_scheduler_lag_seconds_bucket{le=\"0.001\"} 10",
           "gatewatch_scheduler_lag_seconds_bucket{le=\"0.005\"} 15",
           "gatewatch_scheduler_lag_seconds_bucket{le=\"5\"} 15",
           "gatewatch_scheduler_lag_seconds_bucket{le=\"+Inf\"} 17",
           "gatewatch_scheduler_lag_seconds_count 17",
           "gatewatch_scheduler_lag_seconds_sum 0.25",
           "gatewatch_probes_in_flight 7",
           "gatewatch_probes_queued 3",
           "gatewatch_probes_skipped_total{reason=\"overload\"} 4",
           "gatewatch_probes_skipped_total{reason=\"backpressure\"} 5",
           "gatewatch_probes_skipped_total{reason=\"missed\"} 6",
           "gatewatch_db_write_batch_seconds 0.0125",
           "gatewatch_db_write_batches_total 10",
           "gatewatch_db_rows_written_total 1000",
           "gatewatch_db_queue_depth 42",
           "gatewatch_db_rows_lost_total 1",
           "gatewatch_db_write_errors_total 2",
           "gatewatch_build_info{version=\"1.2.3\"} 1",
           "process_start_time_seconds 1800000000",
       }) {
    CHECK_MESSAGE(Has(text, line), line);
  }
  CHECK(text.find("# TYPE gatewatch_scheduler_lag_seconds histogram") != std::string::npos);
  CHECK(text.find("# TYPE gatewatch_probes_skipped_total counter") != std::string::npos);
  // No alert/incident/notification families until their modules set values.
  CHECK(text.find("gatewatch_alert") == std::string::npos);
  CHECK(text.find("gatewatch_notifications_total") == std::string::npos);

  m.SetSelfStats(nullptr);
  CHECK(m.Render().find("gatewatch_probes_in_flight") == std::string::npos);
}

TEST_CASE("Metrics: extension families are set, removed, and reject taken or invalid names") {
  Metrics m("1");
  auto gauge = m.AddGaugeFamily("gatewatch_outbox_pending", "Notifications waiting.");
  REQUIRE(gauge.has_value());
  CHECK(m.Render().find("gatewatch_outbox_pending") == std::string::npos);  // nothing set yet
  (*gauge)->Set({}, 3);
  CHECK(Has(m.Render(), "gatewatch_outbox_pending 3"));
  auto counter = m.AddCounterFamily("gatewatch_notifications_total", "Notifications sent.");
  REQUIRE(counter.has_value());
  (*counter)->Increment({{"notifier", "slack"}, {"result", "ok"}});
  (*counter)->Increment({{"notifier", "slack"}, {"result", "ok"}}, 2);
  std::string text = m.Render();
  CHECK(Has(text, "gatewatch_notifications_total{notifier=\"slack\",result=\"ok\"} 3"));
  CHECK(text.find("# TYPE gatewatch_notifications_total counter") != std::string::npos);
  (*counter)->Remove({{"notifier", "slack"}, {"result", "ok"}});
  (*counter)->Remove({{"notifier", "absent"}});
  CHECK(m.Render().find("gatewatch_notifications_total{") == std::string::npos);

  // The same registration again is the same family.
  auto again = m.AddGaugeFamily("gatewatch_outbox_pending", "Notifications waiting.");
  REQUIRE(again.has_value());
  CHECK(*again == *gauge);
  CHECK_FALSE(m.AddGaugeFamily("gatewatch_outbox_pending", "other help").has_value());
  CHECK_FALSE(m.AddCounterFamily("gatewatch_outbox_pending", "Notifications waiting.").has_value());
  CHECK_FALSE(m.AddGaugeFamily("gatewatch_probe_success", "taken").has_value());
  CHECK_FALSE(m.AddGaugeFamily("gatewatch_db_queue_depth", "taken").has_value());
  auto invalid = m.AddGaugeFamily("0-bad name", "x");
  REQUIRE_FALSE(invalid.has_value());
  CHECK(invalid.error().find("0-bad name") != std::string::npos);

  // Label values are escaped, label names checked, and RetainMonitors drops the series of
  // removed monitors (by their `monitor` label) and keeps the rest.
  auto state = m.AddGaugeFamily("gatewatch_alert_state", "State of an alert x monitor.");
  REQUIRE(state.has_value());
  (*state)->Set({{"alert", "a\"b\\c\nd"}, {"monitor", "shop"}}, 2);
  (*state)->Set({{"alert", "x"}, {"monitor", "gone"}}, 1);
  (*state)->Set({{"0bad", "x"}}, 1);  // rejected (logged), never rendered
  text = m.Render();
  CHECK(Has(text, "gatewatch_alert_state{alert=\"a\\\"b\\\\c\\nd\",monitor=\"shop\"} 2"));
  CHECK(Has(text, "gatewatch_alert_state{alert=\"x\",monitor=\"gone\"} 1"));
  CHECK(text.find("0bad") == std::string::npos);
  CHECK(text.find("# TYPE gatewatch_alert_state gauge") != std::string::npos);
  m.RetainMonitors({"shop"});
  text = m.Render();
  CHECK(text.find("monitor=\"gone\"") == std::string::npos);
  CHECK(Has(text, "gatewatch_outbox_pending 3"));  // no monitor label: kept
  CHECK(text.find("monitor=\"shop\"} 2") != std::string::npos);
}

TEST_CASE("Metrics: Render while Observe runs on another thread") {
  Metrics m("1");
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> observed{0};
  std::thread engine([&] {
    uint64_t i = 0;
    while (!stop.load()) {
      auto r = Make("m" + std::to_string(i % 500), "eu", i % 3 ? Outcome::kOk : Outcome::kHttp502,
                    i % 3 ? 200 : 502, true);
      m.Observe(r);
      if (i % 1000 == 999) m.RetainMonitors({"m1", "m2"});
      if (i % 1000 == 0) m.RetainMonitors({});  // empty set: everything goes
      ++i;
      observed.store(i);
    }
  });
  REQUIRE(WaitFor([&] { return observed.load() > 2000; }));
  for (int k = 0; k < 20; ++k) {
    const std::string text = m.Render();
    CHECK(text.find("gatewatch_build_info") != std::string::npos);
  }
  stop.store(true);
  engine.join();
  CHECK(observed.load() > 0);
}

// Typical results for `monitors` monitors in one region: HTTPS, all phases, a TLS expiry;
// every tenth monitor also had a 502 attempt before its confirmed ok.
std::vector<probes::ProbeResult> TypicalResults(int monitors) {
  std::vector<probes::ProbeResult> out;
  out.reserve(static_cast<size_t>(monitors) * 11 / 10);
  for (int i = 0; i < monitors; ++i) {
    const std::string name = "monitor-" + std::to_string(i);
    if (i % 10 == 0) {
      auto bad = Make(name, "local", Outcome::kHttp502, 502, false);
      bad.phases = {us(120 + i % 7), us(300), us(2000), us(1500), std::nullopt, us(3920)};
      out.push_back(bad);
    }
    auto ok = Make(name, "local", Outcome::kOk, 200, true, i % 10 == 0 ? 1 : 0);
    ok.phases = {us(100 + i % 13), us(250 + i % 17), us(1800 + i % 101),
                 us(900 + i % 37), us(40 + i % 5),   us(3100 + i % 211)};
    ok.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'900'000'000 + i));
    out.push_back(ok);
  }
  return out;
}

TEST_CASE("Metrics: render time for 10,000 monitors and Observe cost (printed, not asserted)") {
  Metrics m("1");
  SelfStats s;
  m.SetSelfStats([s] { return s; });
  const auto results = TypicalResults(10'000);

  auto t0 = std::chrono::steady_clock::now();
  for (const auto& r : results) m.Observe(r);  // first sight: allocates the state
  auto t1 = std::chrono::steady_clock::now();
  for (int round = 0; round < 5; ++round) {
    for (const auto& r : results) m.Observe(r);  // steady state
  }
  auto t2 = std::chrono::steady_clock::now();

  std::string text;
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    const auto a = std::chrono::steady_clock::now();
    text = m.Render();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(ms.begin(), ms.end());
  const double first_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() /
                          static_cast<double>(results.size());
  const double steady_ns = std::chrono::duration<double, std::nano>(t2 - t1).count() /
                           static_cast<double>(results.size() * 5);
  // The longest an Observe() waits while scrapes run on another thread (one slice).
  std::atomic<bool> rendering{true};
  std::thread scraper([&] {
    for (int i = 0; i < 3; ++i) (void)m.Render();
    rendering.store(false);
  });
  double worst_us = 0;
  uint64_t during = 0;
  for (size_t i = 0; rendering.load(); i = (i + 1) % results.size(), ++during) {
    const auto a = std::chrono::steady_clock::now();
    m.Observe(results[i]);
    worst_us = std::max(
        worst_us,
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  scraper.join();
  // The same without scrapes: what the machine's scheduling alone costs (shared cores).
  double baseline_us = 0;
  for (uint64_t i = 0; i < during; ++i) {
    const auto a = std::chrono::steady_clock::now();
    m.Observe(results[i % results.size()]);
    baseline_us = std::max(
        baseline_us,
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  const size_t series = m.ProbeSeriesCountForTest();
  MESSAGE("metrics: " << series << " probe series, " << text.size() / 1024 << " KiB; Render "
                      << "median " << ms[2] << " ms (min " << ms[0] << ", max " << ms[4]
                      << "); Observe " << steady_ns << " ns/result (first sight " << first_ns
                      << " ns); during 3 renders " << during << " Observe calls, the slowest "
                      << worst_us << " us (without scrapes " << baseline_us << " us)");
  CHECK(series > 100'000);
  CHECK(ms[2] < 5000);  // sanity only: timings are measured, never asserted tightly
}

}  // namespace
}  // namespace gatewatch::daemon
