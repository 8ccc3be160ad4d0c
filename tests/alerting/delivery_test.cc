// Tests alerting/message_json.cc, http_post.cc, delivery.cc and alertmanager_repost.cc: the
// outbox message format, one POST (Send), and the delivery thread with its Alertmanager
// re-posts against real receivers on 127.0.0.1 (cpp-httplib servers in this file) with a
// real SQLite file in a temp dir. Real time with small durations; every wait is bounded
// (WaitFor), timing checks are generous lower bounds.
#include "alerting/delivery.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "alerting/message_json.h"
#include "alerting/notifiers/webhook.h"
#include "probes/log.h"
#include "storage/alert_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/httplib_listen.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::alerting {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::TempDir;
using gatewatch::testing::WaitFor;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

// --- Helpers ---------------------------------------------------------------------------------

// One canned answer of a Receiver.
struct Reply {
  int status = 200;
  std::string body = "ok";
  std::vector<std::pair<std::string, std::string>> headers{};
  std::chrono::milliseconds delay{0};  // before answering (a hanging receiver)
};

struct Received {
  std::string path;
  std::string body;
  httplib::Headers headers;
  Steady::time_point at;
};

// A recording HTTP receiver on 127.0.0.1: answers POSTs from a script, then with a default.
class Receiver {
 public:
  Receiver() {
    server_.new_task_queue = [] { return new httplib::ThreadPool(8); };
    server_.set_tcp_nodelay(true);  // else Nagle + delayed ACK hold each answer ~40 ms
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Reply reply;
      {
        std::lock_guard lock(mu_);
        requests_.push_back({req.path, req.body, req.headers, Steady::now()});
        if (!script_.empty()) {
          reply = script_.front();
          script_.pop_front();
        } else {
          reply = default_;
        }
      }
      if (reply.delay > 0ms) {  // woken on destruction
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, reply.delay, [this] { return stopping_; });
      }
      res.status = reply.status;
      for (const auto& [k, v] : reply.headers) res.set_header(k, v);
      res.set_content(reply.body, "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = testing::ListenInBackground(server_);
    REQUIRE(server_.is_running());
  }
  ~Receiver() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    server_.stop();
    thread_.join();
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  std::string Base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void Script(std::vector<Reply> replies) {
    std::lock_guard lock(mu_);
    for (Reply& r : replies) script_.push_back(std::move(r));
  }
  void SetDefault(Reply r) {
    std::lock_guard lock(mu_);
    default_ = std::move(r);
  }
  std::vector<Received> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  size_t Count() {
    std::lock_guard lock(mu_);
    return requests_.size();
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool stopping_ = false;
  std::deque<Reply> script_;
  Reply default_;
  std::vector<Received> requests_;
};

// Collects log lines (process-wide sink) for the life of the object.
class LogCapture {
 public:
  LogCapture() {
    log::SetSinkForTest([this](std::string_view l) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(l);
    });
  }
  ~LogCapture() { log::SetSinkForTest(nullptr); }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  std::string All() {
    std::string out;
    for (const auto& l : Lines()) out += l + "\n";
    return out;
  }
  size_t CountWith(std::string_view needle) {
    size_t n = 0;
    for (const auto& l : Lines()) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

constexpr std::string_view kToken = "T000-B000-URLTOKEN123";  // the secret part of every url
constexpr std::string_view kSecret = "hmac-secret-xyz";

NotifierConfig Hook(const std::string& name, const Receiver& r,
                    NotifierType type = NotifierType::kWebhook) {
  NotifierConfig c;
  c.name = name;
  c.type = type;
  c.url = type == NotifierType::kAlertmanager
              ? r.Base()
              : r.Base() + "/hook/" + name + "/" + std::string(kToken);
  c.min_interval = 0ms;
  c.timeout = 2s;
  return c;
}

const SystemTime kT0 = SystemTime(std::chrono::seconds(1'800'000'000));

Message Sample(Message::Kind kind, const std::string& alert = "shop-502",
               const std::string& monitor = "shop") {
  Message m;
  m.kind = kind;
  m.alert = alert;
  m.monitor = monitor;
  m.severity = "critical";
  m.summary = monitor + ": 502 share 12.5% over 5m";
  m.ratio = 0.125;
  m.samples = 80;
  m.regions = {"local"};
  m.emitters = {{"nginx/upstream_connect_error", 9}};
  m.at = kT0 + 12min;
  m.started = kT0;
  if (kind == Message::Kind::kResolved) m.ended = m.at;
  m.fingerprint = AlertFingerprint(alert, monitor);
  return m;
}

// The test thread's own connection to the database the delivery thread uses. Messages are
// stamped with `clock` (the Delivery's), or the real time.
class Outbox {
 public:
  explicit Outbox(const std::string& path, const Clock* clock = nullptr)
      : clock_(clock != nullptr ? *clock : real_clock_) {
    auto s = storage::AlertStore::Open(path, clock_);
    INFO((s ? std::string() : s.error()));
    REQUIRE(s.has_value());
    store_ = std::move(*s);
  }
  // Enqueues messages (kind from the message), created `age` ago, due now.
  void Add(const std::vector<std::pair<std::string, Message>>& messages,
           std::chrono::milliseconds age = 0ms) {
    std::vector<storage::OutboxMessage> rows;
    const SystemTime now = clock_.Now();
    for (const auto& [notifier, m] : messages) {
      rows.push_back({.notifier = notifier,
                      .alert = m.alert,
                      .monitor = m.monitor,
                      .kind = std::string(ToString(m.kind)),
                      .message = MessageToJson(m),
                      .created_at = now - age,
                      .next_attempt_at = now});
    }
    auto r = store_->Commit({}, {}, rows);
    INFO((r ? std::string() : r.error()));
    REQUIRE(r.has_value());
  }
  int64_t Query(const std::string& sql) {
    auto n = store_->QueryIntForTest(sql);
    INFO(sql << (n ? std::string() : ": " + n.error()));
    REQUIRE(n.has_value());
    return *n;
  }
  int64_t Pending() {
    return Query(
        "SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL AND "
        "given_up_ms IS NULL");
  }

 private:
  RealClock real_clock_;
  const Clock& clock_;
  std::unique_ptr<storage::AlertStore> store_;
};

DeliveryOptions Options(const std::string& path, std::vector<NotifierConfig> notifiers) {
  DeliveryOptions o;
  o.db_path = path;
  o.notifiers = std::move(notifiers);
  o.base_backoff = 100ms;
  o.max_backoff = 30s;
  return o;
}

std::unique_ptr<Delivery> StartOrFail(DeliveryOptions o, const Clock& clock) {
  auto d = Delivery::Start(std::move(o), clock);
  INFO((d ? std::string() : d.error()));
  REQUIRE(d.has_value());
  return std::move(*d);
}

uint64_t Counted(const Delivery& d, const std::string& notifier, const std::string& word) {
  const auto stats = d.Stats();
  auto it = stats.find(notifier);
  if (it == stats.end()) return 0;
  auto w = it->second.results.find(word);
  return w == it->second.results.end() ? 0 : w->second;
}

double Millis(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Kind and alertname of a webhook body.
std::string Describe(const std::string& body) {
  const json j = json::parse(body);
  return j["status"].get<std::string>() + ":" +
         j["alerts"][0]["labels"]["alertname"].get<std::string>();
}

// --- Message JSON ----------------------------------------------------------------------------

TEST_CASE("MessageJson: every field round-trips") {
  Message m = Sample(Message::Kind::kResolved);
  m.description = {"upstream shop-api-1: connect_refused", "line \"two\"\nwith newline", ""};
  m.verdict = "partial_upstream_failure";
  m.ratio = 0.1 + 0.2;  // not exactly representable in decimal: must come back bit-identical
  m.samples = std::numeric_limits<int64_t>::max();
  m.regions = {"eu-proxy", "local", "\xc3\xbc"};
  m.emitters = {{"nginx/upstream_timeout", 12}, {"envoy/UF", -1}, {"", 0}};
  m.at = kT0 + 1234ms;
  m.started = SystemTime(std::chrono::milliseconds(-5'000));  // before 1970
  m.ended = kT0 + 99'999ms;
  m.summary = std::string("nul \0 inside", 12);
  m.value = "830ms";

  for (auto kind : {Message::Kind::kFiring, Message::Kind::kResolved, Message::Kind::kReminder,
                    Message::Kind::kTest}) {
    m.kind = kind;
    CAPTURE(ToString(kind));
    const std::string text = MessageToJson(m);
    auto back = MessageFromJson(text);
    INFO(text << (back ? std::string() : "\n" + back.error()));
    REQUIRE(back.has_value());
    CHECK(back->kind == m.kind);
    CHECK(back->alert == m.alert);
    CHECK(back->monitor == m.monitor);
    CHECK(back->severity == m.severity);
    CHECK(back->summary == m.summary);
    CHECK(back->description == m.description);
    CHECK(back->verdict == m.verdict);
    CHECK(back->ratio == m.ratio);
    CHECK(back->samples == m.samples);
    CHECK(back->regions == m.regions);
    CHECK(back->emitters == m.emitters);
    CHECK(back->at == m.at);
    CHECK(back->started == m.started);
    CHECK(back->ended == m.ended);
    CHECK(back->fingerprint == m.fingerprint);
    CHECK(back->value == m.value);
    CHECK(MessageToJson(*back) == text);
  }

  SUBCASE("no end, sub-millisecond times, non-finite ratios") {
    m.ended.reset();
    m.at = kT0 + 1500us;  // stored at millisecond precision
    for (double r :
         {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
      m.ratio = r;
      auto back = MessageFromJson(MessageToJson(m));
      REQUIRE(back.has_value());
      CHECK(back->ratio == r);
      CHECK_FALSE(back->ended.has_value());
      CHECK(back->at == kT0 + 1ms);
    }
    m.ratio = std::numeric_limits<double>::quiet_NaN();
    auto back = MessageFromJson(MessageToJson(m));
    REQUIRE(back.has_value());
    CHECK(std::isnan(back->ratio));
    CHECK(MessageToJson(m).find("\"ended_ms\"") == std::string::npos);
  }
  SUBCASE("unknown keys are ignored (a newer writer)") {
    json j = json::parse(MessageToJson(m));
    j["added_later"] = {1, 2};
    auto back = MessageFromJson(j.dump());
    REQUIRE(back.has_value());
    CHECK(back->alert == m.alert);
  }
}

TEST_CASE("MessageJson: bad input is a clear error naming the field") {
  const json good = json::parse(MessageToJson(Sample(Message::Kind::kFiring)));
  struct Case {
    std::string name;
    std::string text;
    std::string want;
  };
  auto with = [&](const std::string& key, const json& value) {
    json j = good;
    j[key] = value;
    return j.dump();
  };
  auto without = [&](const std::string& key) {
    json j = good;
    j.erase(key);
    return j.dump();
  };
  const std::vector<Case> cases = {
      {"empty", "", "invalid JSON"},
      {"garbage", "{\"v\":1,", "invalid JSON"},
      {"array", "[]", "not a JSON object"},
      {"no version", without("v"), "missing field \"v\""},
      {"newer version", with("v", 2), "unsupported version 2"},
      {"no kind", without("kind"), "missing field \"kind\""},
      {"unknown kind", with("kind", "fired"), "unknown kind \"fired\""},
      {"kind not a string", with("kind", 1), "\"kind\" must be a string"},
      {"no fingerprint", without("fingerprint"), "missing field \"fingerprint\""},
      {"samples as text", with("samples", "80"), "\"samples\" must be an integer"},
      {"fractional samples", with("samples", 1.5), "\"samples\" must be an integer"},
      {"samples too big", with("samples", 18446744073709551615ULL),
       "\"samples\" must be an integer"},
      {"ratio as text", with("ratio", "high"), "\"ratio\" must be a number"},
      {"regions not strings", with("regions", json::array({1})),
       "\"regions\" must be an array of strings"},
      {"description not an array", with("description", "x"),
       "\"description\" must be an array of strings"},
      {"emitter count as text", with("emitters", {{"nginx/x", "3"}}),
       "\"emitters.nginx/x\" must be an integer"},
      {"emitters not an object", with("emitters", json::array()), "\"emitters\" must be an object"},
      {"time out of range", with("at_ms", int64_t{9'000'000'000'000'000'000}),
       "\"at_ms\" is out of range"},
      {"no start", without("started_ms"), "missing field \"started_ms\""},
      {"end as text", with("ended_ms", "now"), "\"ended_ms\" must be an integer"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto r = MessageFromJson(c.text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().starts_with("message json: "));
    CHECK(r.error().find(c.want) != std::string::npos);
    CAPTURE(r.error());
  }
}

// --- One request -----------------------------------------------------------------------------

TEST_CASE("Delivery: Retry-After values, Discord's retry_after and the outcome table") {
  // 2015-10-21T07:18:00Z: ten minutes before the date below.
  const SystemTime now = SystemTime(std::chrono::seconds(1'445'412'480 - 600));
  CHECK(ParseRetryAfter("2", now) == Duration(2'000));
  CHECK(ParseRetryAfter(" 120 ", now) == Duration(120'000));
  CHECK(ParseRetryAfter("0", now) == Duration(0));
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now) == Duration(600'000));
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now) == Duration(0));  // past
  CHECK_FALSE(ParseRetryAfter("", now).has_value());
  CHECK_FALSE(ParseRetryAfter("1.5", now).has_value());
  CHECK_FALSE(ParseRetryAfter("-1", now).has_value());
  CHECK_FALSE(ParseRetryAfter("soon", now).has_value());
  CHECK_FALSE(ParseRetryAfter("Wed, 31 Feb 2015 07:28:00 GMT", now).has_value());
  CHECK_FALSE(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 CET", now).has_value());
  CHECK_FALSE(ParseRetryAfter("99999999999999999999", now).has_value());

  CHECK(DiscordRetryAfter(R"({"message":"You are being rate limited.","retry_after":1.5,)"
                          R"("global":false})") == Duration(1'500));
  CHECK(DiscordRetryAfter(R"({"retry_after":0.0004})") == Duration(1));  // rounded up
  CHECK(DiscordRetryAfter(R"({"retry_after":3})") == Duration(3'000));
  CHECK_FALSE(DiscordRetryAfter(R"({"retry_after":"3"})").has_value());
  CHECK_FALSE(DiscordRetryAfter(R"({"retry_after":-1})").has_value());
  CHECK_FALSE(DiscordRetryAfter("rate limited").has_value());
  CHECK_FALSE(DiscordRetryAfter("[1.5]").has_value());

  auto status = [](int s) {
    SendResult r;
    r.http_status = s;
    return Classify(r);
  };
  CHECK(status(200) == SendVerdict::kDelivered);
  CHECK(status(204) == SendVerdict::kDelivered);
  CHECK(status(429) == SendVerdict::kRateLimited);
  CHECK(status(500) == SendVerdict::kRetry);
  CHECK(status(503) == SendVerdict::kRetry);
  CHECK(status(408) == SendVerdict::kRetry);
  for (int s : {301, 302, 400, 401, 403, 404, 413}) {
    CAPTURE(s);
    CHECK(status(s) == SendVerdict::kRejected);
  }
  SendResult failed;
  failed.error = "timeout after 1s";
  CHECK(Classify(failed) == SendVerdict::kRetry);
}

TEST_CASE("Delivery: Send posts the payload and ends by its deadline, never echoing the url") {
  Receiver rx;
  NotifierConfig c = Hook("hook", rx);
  const Payload p{"/suffix",
                  "application/json",
                  R"({"hello":"world"})",
                  {{"X-Gatewatch-Signature", "sha256=abc"}}};

  SUBCASE("2xx") {
    const SendResult r = Send(c, p, 2s);
    CHECK(r.error.empty());
    CHECK(r.http_status == 200);
    CHECK(Classify(r) == SendVerdict::kDelivered);
    const auto got = rx.Requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].path == "/hook/hook/" + std::string(kToken) + "/suffix");
    CHECK(got[0].body == p.body);
    CHECK(httplib::detail::get_header_value(got[0].headers, "Content-Type", 0, "") ==
          std::string("application/json"));
    CHECK(httplib::detail::get_header_value(got[0].headers, "X-Gatewatch-Signature", 0, "") ==
          std::string("sha256=abc"));
    CHECK(std::string(httplib::detail::get_header_value(got[0].headers, "User-Agent", 0, ""))
              .starts_with("gatewatch/"));
  }
  SUBCASE("a rejection keeps an excerpt of the answer with the url and token removed") {
    rx.Script({{.status = 404,
                .body = "no hook at " + c.url + " (" + std::string(kToken) + ")\n" +
                        std::string(1000, 'x')}});
    const SendResult r = Send(c, p, 2s);
    CHECK(r.http_status == 404);
    CHECK(Classify(r) == SendVerdict::kRejected);
    CHECK(r.body_excerpt.starts_with("no hook at <redacted> (<redacted>) "));
    CHECK(r.body_excerpt.size() <= 200);
    CHECK(r.body_excerpt.find(std::string(kToken)) == std::string::npos);
  }
  SUBCASE("429 with Retry-After") {
    rx.Script({{.status = 429, .headers = {{"Retry-After", "7"}}}});
    const SendResult r = Send(c, p, 2s);
    CHECK(r.http_status == 429);
    CHECK(r.retry_after == Duration(7'000));
  }
  SUBCASE("a hanging receiver: the request ends at the deadline") {
    rx.Script({{.delay = 5s}});
    const auto start = Steady::now();
    const SendResult r = Send(c, p, 300ms);
    const double took = Millis(Steady::now() - start);
    CHECK(took >= 290);
    CHECK(took < 2'500);  // the receiver holds it for 5 s
    CHECK(r.http_status == 0);
    CHECK(r.error == "timeout after 300ms");
    CHECK(Classify(r) == SendVerdict::kRetry);
  }
  SUBCASE("nothing listening: a short reason without the address") {
    int port = 0;
    {
      Receiver gone;
      port = std::stoi(gone.Base().substr(gone.Base().rfind(':') + 1));
    }
    c.url = "http://127.0.0.1:" + std::to_string(port) + "/hook/" + std::string(kToken);
    const SendResult r = Send(c, p, 2s);
    CHECK(r.http_status == 0);
    CHECK_FALSE(r.error.empty());
    CHECK(r.error.find("127.0.0.1") == std::string::npos);
    CHECK(r.error.find(std::to_string(port)) == std::string::npos);
    CHECK(Classify(r) == SendVerdict::kRetry);
  }
  SUBCASE("a console notifier has no url") {
    c.type = NotifierType::kConsole;
    c.url.clear();
    const SendResult r = Send(c, p, 2s);
    CHECK(r.error.find("console") != std::string::npos);
    CHECK(rx.Count() == 0);
  }
}

// --- The delivery thread ---------------------------------------------------------------------

TEST_CASE(
    "Delivery: a webhook message is delivered once, signed, and not re-sent after a restart") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver rx;
  NotifierConfig hook = Hook("ops", rx);
  hook.secret = std::string(kSecret);
  Outbox outbox(path);
  const Message firing = Sample(Message::Kind::kFiring);
  outbox.Add({{"ops", firing}});
  {
    auto d = StartOrFail(Options(path, {hook}), clock);
    REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 1; }));
    CHECK(d->Pending() == 0);
    const auto stats = d->Stats().at("ops");
    CHECK(stats.latency_count == 1);
    uint64_t in_buckets = 0;
    for (uint64_t n : stats.latency_buckets) in_buckets += n;
    CHECK(in_buckets == 1);
    CHECK(stats.latency_sum_seconds < 60);
  }
  const auto got = rx.Requests();
  REQUIRE(got.size() == 1);
  const Payload want = MakeNotifier(hook)->Build(firing);
  CHECK(got[0].body == want.body);
  CHECK(got[0].path == "/hook/ops/" + std::string(kToken));
  CHECK(httplib::detail::get_header_value(got[0].headers, "X-Gatewatch-Signature", 0, "") ==
        "sha256=" + HmacSha256Hex(kSecret, got[0].body));
  CHECK(outbox.Query("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NOT NULL") == 1);
  CHECK(outbox.Pending() == 0);

  // A new Delivery on the same file: the recorded delivery is not repeated. The resolved sent
  // afterwards on the same (ordered) lane shows it had every chance to be.
  auto d = StartOrFail(Options(path, {hook}), clock);
  outbox.Add({{"ops", Sample(Message::Kind::kResolved)}});
  d->Wake();
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 1; }));
  const auto after = rx.Requests();
  REQUIRE(after.size() == 2);
  CHECK(Describe(after[1].body) == "resolved:shop-502");
}

TEST_CASE("Delivery: 500 three times, then 200: delivered once after growing backoffs") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  LogCapture logs;
  Receiver rx;
  rx.Script({{.status = 500, .body = "boom"}, {.status = 502}, {.status = 503}});
  Outbox outbox(path);
  outbox.Add({{"ops", Sample(Message::Kind::kFiring)}});
  auto d = StartOrFail(Options(path, {Hook("ops", rx)}), clock);  // base 100 ms, +-20 %
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 1; }, 10s));
  CHECK(Counted(*d, "ops", "retry") == 3);
  const auto got = rx.Requests();
  REQUIRE(got.size() == 4);
  for (const auto& r : got) CHECK(r.body == got[0].body);
  std::vector<double> gaps;
  for (size_t i = 1; i < got.size(); ++i) gaps.push_back(Millis(got[i].at - got[i - 1].at));
  CAPTURE(gaps[0]);
  CAPTURE(gaps[1]);
  CAPTURE(gaps[2]);
  // base * 2^attempts * [0.8, 1.2]: at least 80, 160, 320 ms (a little slack for ms storage).
  CHECK(gaps[0] >= 75);
  CHECK(gaps[1] >= 155);
  CHECK(gaps[2] >= 315);
  CHECK(gaps[2] > gaps[0]);
  CHECK(outbox.Query("SELECT attempts FROM outbox") == 3);
  CHECK(outbox.Query("SELECT failures FROM outbox") == 3);
  CHECK(outbox.Query("SELECT last_error = 'http 503: ok' FROM outbox") == 1);
  CHECK(outbox.Pending() == 0);
  // One line for the first failure only, and never the url.
  CHECK(logs.CountWith("notification failed") == 1);
  CHECK(logs.CountWith("error=\"http 500: boom\"") == 1);
  CHECK(logs.All().find(std::string(kToken)) == std::string::npos);
}

TEST_CASE("Delivery: 429 Retry-After and Discord's retry_after are honoured") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver hook_rx, discord_rx;
  hook_rx.Script({{.status = 429, .body = "slow down", .headers = {{"Retry-After", "2"}}}});
  discord_rx.Script({{.status = 429,
                      .body = R"({"message":"You are being rate limited.","retry_after":1.5,)"
                              R"("global":false})"}});
  NotifierConfig discord = Hook("chat", discord_rx, NotifierType::kDiscord);
  discord.min_interval.reset();  // Discord's default: 1 s, shorter than its retry_after here
  Outbox outbox(path);
  outbox.Add({{"ops", Sample(Message::Kind::kFiring)}, {"chat", Sample(Message::Kind::kFiring)}});
  DeliveryOptions o = Options(path, {Hook("ops", hook_rx), discord});
  o.base_backoff = 50ms;  // without Retry-After the retry would come after ~50 ms
  auto d = StartOrFail(std::move(o), clock);
  REQUIRE(WaitFor(
      [&] { return Counted(*d, "ops", "delivered") == 1 && Counted(*d, "chat", "delivered") == 1; },
      10s));
  CHECK(Counted(*d, "ops", "rate_limited") == 1);
  CHECK(Counted(*d, "chat", "rate_limited") == 1);
  const auto a = hook_rx.Requests();
  const auto b = discord_rx.Requests();
  REQUIRE(a.size() == 2);
  REQUIRE(b.size() == 2);
  CHECK(Millis(a[1].at - a[0].at) >= 1'990);
  CHECK(Millis(b[1].at - b[0].at) >= 1'490);
  CHECK(Millis(a[1].at - a[0].at) < 8'000);  // not a backoff off the scale either
}

// Milliseconds from the fake clock's now to the stored next attempt of the only message.
int64_t StoredWaitMs(Outbox& outbox, const Clock& clock) {
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.Now().time_since_epoch()).count();
  return outbox.Query("SELECT next_attempt_ms FROM outbox") - now_ms;
}

TEST_CASE("Delivery: after 500s and 429s, a recovered receiver is reached within 30 s") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  testing::FakeClock clock;
  Receiver rx;
  // 12 failures (2^12 s would be far beyond 30 s) with a 429 after every other one; the last
  // answer is a failure, and the receiver is healthy after it.
  const Reply limited{.status = 429, .body = "slow down", .headers = {{"Retry-After", "3"}}};
  std::vector<Reply> burst;
  for (int i = 0; i < 12; ++i) {
    burst.push_back({.status = i % 3 == 0 ? 503 : 500});
    if (i % 2 == 0) burst.push_back(limited);
  }
  rx.Script(burst);
  Outbox outbox(path, &clock);
  outbox.Add({{"ops", Sample(Message::Kind::kFiring)}});
  DeliveryOptions o = Options(path, {Hook("ops", rx)});
  o.base_backoff = 1s;  // the daemon's defaults
  o.max_backoff = 5min;
  auto d = StartOrFail(std::move(o), clock);

  int64_t failures = 0;
  for (size_t i = 0; i < burst.size(); ++i) {
    CAPTURE(i);
    // Answered and recorded: the stored schedule is the one the delivery thread follows.
    REQUIRE(WaitFor([&] { return outbox.Query("SELECT attempts FROM outbox") == int64_t(i) + 1; }));
    CHECK(rx.Count() == i + 1);
    const int64_t wait = StoredWaitMs(outbox, clock);
    CAPTURE(wait);
    if (burst[i].status == 429) {
      CHECK(wait == 3'000);
    } else {
      // base * 2^(failures before) * [0.8, 1.2], at most 30 s.
      const double grown = std::min(30'000.0, 1'000.0 * std::pow(2.0, double(failures)));
      ++failures;
      CHECK(wait >= int64_t(grown * 0.8) - 1);
      CHECK(wait <= 30'000);
    }
    CHECK(outbox.Query("SELECT failures FROM outbox") == failures);
    clock.Advance(std::chrono::milliseconds(wait));
    d->Wake();
  }
  // The receiver is healthy from its last failed answer on; the wait after that was within
  // 30 s, and the attempt at its end delivers.
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 1; }));
  CHECK(rx.Count() == burst.size() + 1);
  CHECK(failures == 12);
  CHECK(Counted(*d, "ops", "retry") == 12);
  CHECK(Counted(*d, "ops", "rate_limited") == 6);
  CHECK(outbox.Query("SELECT attempts FROM outbox") == 18);
  CHECK(outbox.Query("SELECT failures FROM outbox") == 12);
}

TEST_CASE("Delivery: a 429 with Retry-After: 7 is retried exactly 7 s later and is no failure") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  testing::FakeClock clock;
  Receiver rx;
  rx.Script({{.status = 500},
             {.status = 500},
             {.status = 500},
             {.status = 429, .body = "slow down", .headers = {{"Retry-After", "7"}}},
             {.status = 500}});
  Outbox outbox(path, &clock);
  outbox.Add({{"ops", Sample(Message::Kind::kFiring)}});
  DeliveryOptions o = Options(path, {Hook("ops", rx)});
  o.base_backoff = 1s;
  o.max_backoff = 5min;
  auto d = StartOrFail(std::move(o), clock);
  auto answered = [&](int64_t attempts) {
    REQUIRE(WaitFor([&] { return outbox.Query("SELECT attempts FROM outbox") == attempts; }));
    return StoredWaitMs(outbox, clock);
  };
  for (int64_t failed = 1; failed <= 3; ++failed) {
    clock.Advance(std::chrono::milliseconds(answered(failed)));
    d->Wake();
  }
  const int64_t limited = answered(4);
  CHECK(limited == 7'000);
  CHECK(outbox.Query("SELECT failures FROM outbox") == 3);
  CHECK(Counted(*d, "ops", "rate_limited") == 1);
  clock.Advance(7s);
  d->Wake();
  // The next failure backs off as the fourth failure: base * 2^3 = 8 s +-20 %, not 2^4.
  const int64_t after = answered(5);
  CAPTURE(after);
  CHECK(after >= 6'400 - 1);
  CHECK(after <= 9'600);
  CHECK(outbox.Query("SELECT failures FROM outbox") == 4);
  clock.Advance(std::chrono::milliseconds(after));
  d->Wake();
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 1; }));
  CHECK(rx.Count() == 6);
}

TEST_CASE("Delivery: a receiver hanging past the timeout is cut off, retried and reached") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  LogCapture logs;
  Receiver rx;
  rx.Script({{.delay = 5s}});
  NotifierConfig hook = Hook("ops", rx);
  hook.timeout = 500ms;
  Outbox outbox(path);
  outbox.Add({{"ops", Sample(Message::Kind::kFiring)}});
  auto d = StartOrFail(Options(path, {hook}), clock);
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 1; }, 10s));
  CHECK(Counted(*d, "ops", "retry") == 1);
  const auto got = rx.Requests();
  REQUIRE(got.size() == 2);
  const double gap = Millis(got[1].at - got[0].at);
  CAPTURE(gap);
  CHECK(gap >= 490);   // the deadline, then the backoff
  CHECK(gap < 3'000);  // well before the receiver's 5 s
  CHECK(logs.CountWith("error=\"timeout after 500ms\"") == 1);
  CHECK(outbox.Pending() == 0);
}

TEST_CASE("Delivery: permanent failures are given up, logged and counted, never retried") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  LogCapture logs;
  Receiver rx;
  NotifierConfig hook = Hook("ops", rx);
  hook.max_age = 1h;
  Outbox outbox(path);
  auto d = StartOrFail(Options(path, {hook}), clock);
  // The last message on the lane: once it arrived, everything before it was decided.
  auto sentinel = [&](int delivered) {
    outbox.Add({{"ops", Sample(Message::Kind::kResolved, "sentinel")}});
    d->Wake();
    REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == uint64_t(delivered); }));
  };

  SUBCASE("4xx") {
    rx.Script({{.status = 400, .body = "invalid_payload"}});
    outbox.Add({{"ops", Sample(Message::Kind::kFiring)}});
    d->Wake();
    sentinel(1);
    CHECK(Counted(*d, "ops", "rejected") == 1);
    CHECK(rx.Count() == 2);  // the 400 and the sentinel
    CHECK(outbox.Query("SELECT COUNT(*) FROM outbox WHERE given_up_ms IS NOT NULL AND "
                       "last_error = 'http 400: invalid_payload'") == 1);
    CHECK(logs.CountWith("level=error msg=\"notification given up\"") == 1);
    CHECK(logs.CountWith("result=rejected") == 1);
  }
  SUBCASE("older than max_age") {
    outbox.Add({{"ops", Sample(Message::Kind::kFiring)}}, 2h);
    d->Wake();
    sentinel(1);
    CHECK(Counted(*d, "ops", "gave_up") == 1);
    CHECK(rx.Count() == 1);  // the old one was never sent
    CHECK(logs.CountWith("result=gave_up") == 1);
    CHECK(logs.CountWith("reason=\"older than max_age 1h\"") == 1);
  }
  SUBCASE("a notifier that is not configured") {
    outbox.Add({{"ghost", Sample(Message::Kind::kFiring)}});
    d->Wake();
    REQUIRE(WaitFor([&] { return Counted(*d, "ghost", "dropped") == 1; }));
    CHECK(logs.CountWith("result=dropped") == 1);
    CHECK(logs.CountWith("notifier=ghost") == 1);
    CHECK(rx.Count() == 0);
    REQUIRE(WaitFor([&] { return d->Pending() == 0; }));
  }
  SUBCASE("a stored message that is not valid JSON") {
    auto store = storage::AlertStore::Open(path, clock);
    REQUIRE(store.has_value());
    const std::vector<storage::OutboxMessage> bad = {{.notifier = "ops",
                                                      .alert = "a",
                                                      .monitor = "m",
                                                      .kind = "firing",
                                                      .message = "{not json",
                                                      .created_at = clock.Now(),
                                                      .next_attempt_at = clock.Now()}};
    REQUIRE((*store)->Commit({}, {}, bad).has_value());
    d->Wake();
    sentinel(1);
    CHECK(Counted(*d, "ops", "rejected") == 1);
    CHECK(logs.CountWith("message json: invalid JSON") == 1);
  }
  CHECK(outbox.Pending() == 0);
  CHECK(logs.All().find(std::string(kToken)) == std::string::npos);
}

TEST_CASE("Delivery: one notifier's messages keep their order, and other notifiers are not blocked") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver slow_rx, other_rx;
  // The firing's first attempt hangs until the 1 s deadline; the resolved must wait for it.
  slow_rx.Script({{.delay = 3s}});
  NotifierConfig slow = Hook("slow", slow_rx);
  slow.timeout = 1s;
  Outbox outbox(path);
  auto d = StartOrFail(Options(path, {slow, Hook("other", other_rx)}), clock);
  outbox.Add({{"slow", Sample(Message::Kind::kFiring)},
              {"slow", Sample(Message::Kind::kResolved)},
              {"other", Sample(Message::Kind::kFiring, "other-alert")}});
  d->Wake();
  REQUIRE(WaitFor([&] { return Counted(*d, "slow", "delivered") == 2; }, 10s));
  const auto a = slow_rx.Requests();
  const auto b = other_rx.Requests();
  REQUIRE(a.size() == 3);
  CHECK(Describe(a[0].body) == "firing:shop-502");
  CHECK(Describe(a[1].body) == "firing:shop-502");
  CHECK(Describe(a[2].body) == "resolved:shop-502");
  REQUIRE(b.size() == 1);
  // Sent while the slow lane's first request was still hanging.
  CHECK(b[0].at < a[0].at + 900ms);
  CHECK(Counted(*d, "other", "delivered") == 1);
}

TEST_CASE("Delivery: min_interval spaces one notifier's requests") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver rx;
  NotifierConfig hook = Hook("ops", rx);
  hook.min_interval = 200ms;
  Outbox outbox(path);
  std::vector<std::pair<std::string, Message>> five;
  for (int i = 0; i < 5; ++i)
    five.push_back({"ops", Sample(Message::Kind::kFiring, "a" + std::to_string(i))});
  outbox.Add(five);
  auto d = StartOrFail(Options(path, {hook}), clock);
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 5; }, 10s));
  const auto got = rx.Requests();
  REQUIRE(got.size() == 5);
  for (size_t i = 1; i < got.size(); ++i) {
    CAPTURE(i);
    // Starts are 200 ms apart; arrivals also carry each request's own latency (the first
    // one connects), hence the slack. Without min_interval the gaps are a few ms.
    CHECK(Millis(got[i].at - got[i - 1].at) >= 150);
    CHECK(Describe(got[i].body) == "firing:a" + std::to_string(i));
  }
  CHECK(Millis(got[4].at - got[0].at) >= 750);
}

TEST_CASE("Delivery: Stop abandons a hanging request, and a new Delivery sends everything pending") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver rx;
  rx.Script({{.delay = 5s}});
  NotifierConfig hook = Hook("ops", rx);
  hook.timeout = 10s;
  Outbox outbox(path);
  outbox.Add({{"ops", Sample(Message::Kind::kFiring, "a")},
              {"ops", Sample(Message::Kind::kFiring, "b")},
              {"ops", Sample(Message::Kind::kResolved, "a")}});
  {
    auto d = StartOrFail(Options(path, {hook}), clock);
    REQUIRE(WaitFor([&] { return rx.Count() == 1; }));
    const auto start = Steady::now();
    d->Stop(200ms);
    CHECK(Millis(Steady::now() - start) < 2'000);
    CHECK(Counted(*d, "ops", "delivered") == 0);
  }
  CHECK(outbox.Pending() == 3);
  CHECK(outbox.Query("SELECT SUM(attempts) FROM outbox") == 0);  // abandoned is not a failure

  auto d = StartOrFail(Options(path, {hook}), clock);
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "delivered") == 3; }));
  CHECK(outbox.Pending() == 0);
  const auto got = rx.Requests();
  REQUIRE(got.size() == 4);  // the abandoned one again: at-least-once
  CHECK(Describe(got[0].body) == "firing:a");
  CHECK(Describe(got[1].body) == "firing:a");
  CHECK(Describe(got[2].body) == "firing:b");
  CHECK(Describe(got[3].body) == "resolved:a");
}

TEST_CASE("Delivery: Reconfigure adds a notifier and drops the messages of a removed one") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver rx;
  rx.SetDefault({.status = 503});  // "ops" never succeeds: its messages stay pending
  Receiver rx2;
  Outbox outbox(path);
  DeliveryOptions o = Options(path, {Hook("ops", rx)});
  o.base_backoff = 5s;
  auto d = StartOrFail(std::move(o), clock);
  outbox.Add({{"ops", Sample(Message::Kind::kFiring)},
              {"ops", Sample(Message::Kind::kResolved)},
              {"new", Sample(Message::Kind::kFiring)}});
  d->Wake();
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "retry") == 1; }));
  REQUIRE(WaitFor([&] { return Counted(*d, "new", "dropped") == 1; }));  // not configured yet
  CHECK(WaitFor([&] { return d->Pending() == 2; }));  // ops: the firing waits, the resolved too

  d->Reconfigure({Hook("new", rx2)});
  outbox.Add({{"new", Sample(Message::Kind::kFiring, "later")}});
  d->Wake();
  REQUIRE(WaitFor([&] { return Counted(*d, "new", "delivered") == 1; }));
  REQUIRE(WaitFor([&] { return Counted(*d, "ops", "dropped") == 2; }));
  REQUIRE(WaitFor([&] { return d->Pending() == 0; }));
  CHECK(outbox.Pending() == 0);
  CHECK(rx.Count() == 1);
  REQUIRE(rx2.Count() == 1);
  CHECK(Describe(rx2.Requests()[0].body) == "firing:later");
}

TEST_CASE("Delivery: console notifiers print") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  std::mutex mu;
  std::string printed;
  NotifierConfig console;
  console.name = "stdout";
  console.type = NotifierType::kConsole;
  DeliveryOptions o = Options(path, {console});
  o.console_out = [&](std::string_view text) {
    std::lock_guard lock(mu);
    printed += text;
  };
  Outbox outbox(path);
  outbox.Add(
      {{"stdout", Sample(Message::Kind::kFiring)}, {"stdout", Sample(Message::Kind::kResolved)}});
  auto d = StartOrFail(std::move(o), clock);
  REQUIRE(WaitFor([&] { return Counted(*d, "stdout", "delivered") == 2; }));
  std::lock_guard lock(mu);
  const size_t firing = printed.find("[FIRING] shop-502 on shop");
  const size_t resolved = printed.find("[RESOLVED] shop-502 on shop");
  CHECK(firing != std::string::npos);
  CHECK(resolved != std::string::npos);
  CHECK(firing < resolved);
}

// Alerts of one Alertmanager POST: alertname -> endsAt.
std::map<std::string, std::string> AlertsIn(const std::string& body) {
  std::map<std::string, std::string> out;
  for (const json& a : json::parse(body)) {
    out[a["labels"]["alertname"].get<std::string>()] = a["endsAt"].get<std::string>();
  }
  return out;
}

TEST_CASE("Delivery: Alertmanager alerts are re-posted until resolved, also after a restart") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver am;
  const NotifierConfig config = Hook("am", am, NotifierType::kAlertmanager);
  DeliveryOptions o = Options(path, {config});
  o.alertmanager_repost = 200ms;
  Outbox outbox(path);
  outbox.Add({{"am", Sample(Message::Kind::kFiring, "a")}});
  auto d = StartOrFail(o, clock);
  REQUIRE(WaitFor([&] { return am.Count() >= 4; }));
  auto got = am.Requests();
  // The first post is the message itself (at = the event), the re-posts have at = now.
  CHECK(AlertsIn(got[0].body).at("a") == FormatTime(Sample(Message::Kind::kFiring).at + 5min));
  std::string last_ends;
  for (size_t i = 1; i < got.size(); ++i) {
    CHECK(got[i].path == "/api/v2/alerts");
    const auto alerts = AlertsIn(got[i].body);
    REQUIRE(alerts.size() == 1);
    REQUIRE(alerts.count("a") == 1);
    CHECK(alerts.at("a") > last_ends);  // RFC 3339 in UTC with ms: text order is time order
    CHECK(alerts.at("a") > FormatTime(clock.Now() + 4min));  // a few minutes ahead
    last_ends = alerts.at("a");
  }
  CHECK(json::parse(got[1].body)[0]["startsAt"] == FormatTime(kT0));
  CHECK(Counted(*d, "am", "delivered") == 1);
  CHECK(WaitFor([&] { return Counted(*d, "am", "refreshed") >= 3; }));

  // Resolve a; fire b. Once a re-post carries b, it must not carry a any more.
  outbox.Add(
      {{"am", Sample(Message::Kind::kResolved, "a")}, {"am", Sample(Message::Kind::kFiring, "b")}});
  d->Wake();
  REQUIRE(WaitFor([&] { return Counted(*d, "am", "delivered") == 3; }));
  const size_t before = am.Count();
  REQUIRE(WaitFor([&] { return am.Count() >= before + 2; }));
  got = am.Requests();
  for (size_t i = before; i < got.size(); ++i) {
    CAPTURE(got[i].body);
    CHECK(AlertsIn(got[i].body).count("a") == 0);
    CHECK(AlertsIn(got[i].body).count("b") == 1);
  }
  d.reset();

  // A new Delivery on the same file re-posts b at once: the active set came from the outbox.
  const size_t at_restart = am.Count();
  const std::string b_ends = AlertsIn(am.Requests().back().body).at("b");
  o.alertmanager_repost = 60s;  // so the post below can only be the restart's re-post
  d = StartOrFail(o, clock);
  REQUIRE(WaitFor([&] { return am.Count() >= at_restart + 1; }));
  got = am.Requests();
  const auto alerts = AlertsIn(got[at_restart].body);
  CHECK(alerts.size() == 1);
  REQUIRE(alerts.count("b") == 1);
  CHECK(alerts.at("b") > b_ends);
  CHECK(WaitFor([&] { return Counted(*d, "am", "refreshed") == 1; }));
  CHECK(Counted(*d, "am", "delivered") == 0);
}

TEST_CASE("Delivery: Alertmanager re-posts go in batches of at most 256 alerts") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  RealClock clock;
  Receiver am;
  DeliveryOptions o = Options(path, {Hook("am", am, NotifierType::kAlertmanager)});
  o.alertmanager_repost = 300ms;
  Outbox outbox(path);
  std::vector<std::pair<std::string, Message>> firing;
  for (int i = 0; i < 300; ++i) {
    firing.push_back({"am", Sample(Message::Kind::kFiring, "a" + std::to_string(i))});
  }
  outbox.Add(firing);
  auto d = StartOrFail(o, clock);
  REQUIRE(WaitFor([&] { return Counted(*d, "am", "delivered") == 300; }, 20s));
  // Two complete rounds after the deliveries.
  REQUIRE(WaitFor([&] { return Counted(*d, "am", "refreshed") >= 600; }, 10s));
  const auto got = am.Requests();
  std::vector<size_t> sizes;
  std::map<std::string, int> seen;
  for (size_t i = 300; i < got.size(); ++i) {
    const auto alerts = AlertsIn(got[i].body);
    sizes.push_back(alerts.size());
    if (sizes.size() <= 2) {
      for (const auto& [name, ends] : alerts) ++seen[name];
    }
  }
  REQUIRE(sizes.size() >= 4);
  CHECK(sizes[0] == 256);  // one round: 256 + 44
  CHECK(sizes[1] == 44);
  CHECK(sizes[2] == 256);
  CHECK(seen.size() == 300);  // every alert once per round
  for (const auto& [name, n] : seen) CHECK(n == 1);
}

TEST_CASE("Delivery: Start fails clearly on a database it cannot open and on bad options") {
  RealClock clock;
  TempDir dir;
  auto d = Delivery::Start(Options(dir.File("missing-dir/sub/gw.db"), {}), clock);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error().starts_with("delivery: "));

  DeliveryOptions o = Options(dir.File("gw.db"), {});
  o.base_backoff = 0ms;
  d = Delivery::Start(o, clock);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error().find("base_backoff") != std::string::npos);

  NotifierConfig c;
  c.name = "twice";
  d = Delivery::Start(Options(dir.File("gw.db"), {c, c}), clock);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error().find("\"twice\" is used twice") != std::string::npos);
}

}  // namespace
}  // namespace gatewatch::alerting
