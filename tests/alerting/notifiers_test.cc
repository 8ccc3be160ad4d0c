// Tests alerting/notifier.cc and alerting/notifiers/*.cc: payload building only.
//
// Golden payloads: tests/alerting/golden/<type>_<kind>.json (console: .txt) hold the exact
// body each notifier builds for the fixed firing and resolved messages below, compared
// byte for byte. After an intended change to a payload, regenerate them with
//   GATEWATCH_UPDATE_GOLDEN=1 ./alerting_test -tc="Notifier: golden*"
// and review the diff like code.
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "alerting/notifier.h"

namespace gatewatch::alerting {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const SystemTime kT0 = SystemTime(std::chrono::seconds(1'800'000'000));
constexpr std::string_view kUrl = "https://hooks.example.com/services/T000/B000/URLTOKEN123";
constexpr std::string_view kSecret = "hmac-secret-xyz";

NotifierConfig Config(NotifierType type) {
  NotifierConfig c;
  c.name = "ops-chat";
  c.type = type;
  c.url = std::string(kUrl);
  if (type == NotifierType::kWebhook) c.secret = std::string(kSecret);
  return c;
}

AlertEvent Event(AlertEvent::Kind kind) {
  AlertEvent e;
  e.kind = kind;
  e.alert = "shop-502";
  e.monitor = "shop";
  e.severity = "critical";
  e.notify = {"ops-chat"};
  e.firing_since = kT0;
  e.emitters = {{"nginx/upstream_connect_error", 9}, {"nginx/no_live_upstreams", 1}};
  if (kind == AlertEvent::Kind::kResolved) {
    e.at = kT0 + 40min;
    e.ratio = 0.004;
    e.samples = 90;
    e.summary = "shop: alert shop-502 resolved, 502 share 0.4% over 5m (below 2.5%)";
  } else {
    e.at = kT0 + 12min + 30s;
    e.ratio = 0.125;
    e.samples = 80;
    e.regions_above = {"eu-proxy", "local"};
    e.summary = "shop: 502 share 12.5% over 5m in eu-proxy, local (threshold 5.0%)";
  }
  return e;
}

Message Firing() {
  Message m = MessageFromEvent(Event(AlertEvent::Kind::kFiring));
  m.verdict = "partial_upstream_failure";
  m.description = {"upstream shop-api-1: connect_refused from local and eu-proxy",
                   "upstream shop-api-2: ok in 38 ms"};
  return m;
}

Message Resolved() {
  Message m = MessageFromEvent(Event(AlertEvent::Kind::kResolved));
  m.verdict = "partial_upstream_failure";
  return m;
}

// Every notifier type, from the config's own list (a new type fails the factory test).
std::vector<NotifierType> AllTypes() {
  std::vector<NotifierType> out;
  for (auto name : kNotifierTypeNames) out.push_back(*NotifierTypeFromString(name));
  return out;
}

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Independent of the code under test: a strict UTF-8 check (RFC 3629).
bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

std::filesystem::path GoldenPath(NotifierType type, std::string_view kind) {
  return std::filesystem::path(GATEWATCH_SOURCE_DIR) / "tests/alerting/golden" /
         (std::string(ToString(type)) + "_" + std::string(kind) +
          (type == NotifierType::kConsole ? ".txt" : ".json"));
}

bool UpdateGolden() {
  const char* v = std::getenv("GATEWATCH_UPDATE_GOLDEN");
  return v != nullptr && std::string_view(v) == "1";
}

void CheckGolden(NotifierType type, std::string_view kind, const std::string& body) {
  const auto path = GoldenPath(type, kind);
  if (UpdateGolden()) {
    std::ofstream(path, std::ios::binary) << body;
    MESSAGE("rewrote " << path.string());
    return;
  }
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing " << path.string() << ": run with GATEWATCH_UPDATE_GOLDEN=1");
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK_MESSAGE(ss.str() == body, path.string() << " differs; got:\n" << body);
}

std::string Hex(const unsigned char* p, unsigned int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 0xf];
  }
  return out;
}

TEST_CASE("Notifier: factory maps every type to its notifier") {
  for (auto type : AllTypes()) {
    auto n = MakeNotifier(Config(type));
    REQUIRE(n != nullptr);
    CHECK(n->Type() == ToString(type));
  }
}

TEST_CASE("Notifier: MessageFromEvent copies the event and fingerprints alert x monitor") {
  const Message f = MessageFromEvent(Event(AlertEvent::Kind::kFiring));
  CHECK(f.kind == Message::Kind::kFiring);
  CHECK(f.alert == "shop-502");
  CHECK(f.monitor == "shop");
  CHECK(f.severity == "critical");
  CHECK(f.ratio == 0.125);
  CHECK(f.samples == 80);
  CHECK(f.regions == std::vector<std::string>{"eu-proxy", "local"});
  CHECK(f.emitters.at("nginx/upstream_connect_error") == 9);
  CHECK(f.started == kT0);
  CHECK(f.at == kT0 + 12min + 30s);
  CHECK_FALSE(f.ended.has_value());
  CHECK(f.verdict.empty());

  const Message r = MessageFromEvent(Event(AlertEvent::Kind::kResolved));
  CHECK(r.kind == Message::Kind::kResolved);
  REQUIRE(r.ended.has_value());
  CHECK(*r.ended == kT0 + 40min);
  CHECK(MessageFromEvent(Event(AlertEvent::Kind::kReminder)).kind == Message::Kind::kReminder);

  // Stable across the episode, 16 lowercase hex digits, distinct per pair.
  CHECK(f.fingerprint == r.fingerprint);
  CHECK(f.fingerprint.size() == 16);
  CHECK(f.fingerprint.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(AlertFingerprint("shop-502", "shop") == f.fingerprint);
  CHECK(AlertFingerprint("shop-502", "shop-api-1") != f.fingerprint);
  CHECK(AlertFingerprint("shop-50", "2shop") != f.fingerprint);  // separators matter
  // FNV-1a 64 of "alertname\xff" "a\xff" "monitor\xff" "m\xff" (prometheus LabelsToSignature).
  CHECK(AlertFingerprint("a", "m") == "aeb1dfb7a75eea10");  // computed in Python
}

TEST_CASE("Notifier: golden payloads for a firing and a resolved message") {
  for (auto type : AllTypes()) {
    CAPTURE(ToString(type));
    auto n = MakeNotifier(Config(type));
    for (const auto& [kind, message] : {std::pair{"firing", Firing()}, {"resolved", Resolved()}}) {
      CAPTURE(kind);
      const Payload p = n->Build(message);
      CHECK(p.url_suffix == (type == NotifierType::kAlertmanager ? "/api/v2/alerts" : ""));
      if (type == NotifierType::kConsole) {
        CHECK(p.content_type == "text/plain; charset=utf-8");
      } else {
        CHECK(p.content_type == "application/json");
        CHECK(json::accept(p.body));
      }
      CHECK(IsValidUtf8(p.body));
      CHECK(n->Build(message).body == p.body);  // deterministic
      CheckGolden(type, kind, p.body);
    }
  }
}

TEST_CASE("Notifier: every message says what, since when, how bad, emitters and verdict") {
  const Message m = Firing();
  for (auto type : AllTypes()) {
    CAPTURE(ToString(type));
    const std::string body = MakeNotifier(Config(type))->Build(m).body;
    CHECK(body.find("shop-502") != std::string::npos);
    CHECK(body.find("shop") != std::string::npos);
    CHECK(body.find(FormatTime(kT0)) != std::string::npos);  // since when, RFC 3339
    CHECK(body.find("12.5%") != std::string::npos);          // how bad
    CHECK(body.find("80") != std::string::npos);             // samples
    CHECK(body.find("eu-proxy") != std::string::npos);       // regions above
    CHECK(body.find("nginx/upstream_connect_error") != std::string::npos);
    CHECK(body.find("partial_upstream_failure") != std::string::npos);
    CHECK(body.find("connect_refused") != std::string::npos);  // evidence lines
  }
  // Resolved messages say until when.
  for (auto type : AllTypes()) {
    CAPTURE(ToString(type));
    const std::string body = MakeNotifier(Config(type))->Build(Resolved()).body;
    CHECK(body.find(FormatTime(kT0 + 40min)) != std::string::npos);
  }
}

TEST_CASE("Notifier: test messages build for every type") {
  const Message t = TestMessage("ops-chat", kT0);
  CHECK(t.kind == Message::Kind::kTest);
  for (auto type : AllTypes()) {
    CAPTURE(ToString(type));
    const Payload p = MakeNotifier(Config(type))->Build(t);
    CHECK(p.body.find("gatewatch-test") != std::string::npos);
    if (type != NotifierType::kConsole) CHECK(json::accept(p.body));
  }
}

TEST_CASE("Notifier: no secret or url in any payload") {
  for (auto type : AllTypes()) {
    CAPTURE(ToString(type));
    auto n = MakeNotifier(Config(type));
    for (const Message& m : {Firing(), Resolved(), TestMessage("ops-chat", kT0)}) {
      const Payload p = n->Build(m);
      for (std::string_view needle : {kUrl, kSecret, std::string_view("URLTOKEN123"),
                                      std::string_view("hooks.example.com")}) {
        CHECK(p.body.find(needle) == std::string::npos);
        CHECK(p.url_suffix.find(needle) == std::string::npos);
        for (const auto& [name, value] : p.headers) CHECK(value.find(needle) == std::string::npos);
      }
    }
  }
}

TEST_CASE("Notifier: webhook signature is the HMAC-SHA256 of the exact body") {
  const Payload p = MakeNotifier(Config(NotifierType::kWebhook))->Build(Firing());
  REQUIRE(p.headers.size() == 1);
  CHECK(p.headers[0].first == "X-Gatewatch-Signature");
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
               reinterpret_cast<const unsigned char*>(p.body.data()), p.body.size(), mac,
               &len) != nullptr);
  CHECK(len == 32);
  CHECK(p.headers[0].second == "sha256=" + Hex(mac, len));

  SUBCASE("no secret, no signature") {
    NotifierConfig c = Config(NotifierType::kWebhook);
    c.secret.clear();
    const Payload unsigned_payload = MakeNotifier(c)->Build(Firing());
    CHECK(unsigned_payload.headers.empty());
    CHECK(unsigned_payload.body == p.body);
  }
}

TEST_CASE("Notifier: webhook payload is Alertmanager webhook version 4") {
  const json b = json::parse(MakeNotifier(Config(NotifierType::kWebhook))->Build(Firing()).body);
  CHECK(b["version"] == "4");
  CHECK(b["status"] == "firing");
  CHECK(b["receiver"] == "ops-chat");
  CHECK(b["truncatedAlerts"] == 0);
  CHECK(b["groupLabels"] == json{{"alertname", "shop-502"}, {"monitor", "shop"}});
  REQUIRE(b["alerts"].size() == 1);
  const json& a = b["alerts"][0];
  CHECK(a["labels"] ==
        json{{"alertname", "shop-502"}, {"monitor", "shop"}, {"severity", "critical"}});
  for (const char* key : {"verdict", "summary", "description", "ratio", "regions"}) {
    CHECK(a["annotations"].contains(key));
  }
  CHECK(a["annotations"]["verdict"] == "partial_upstream_failure");
  CHECK(a["annotations"]["regions"] == "eu-proxy,local");
  CHECK(a["startsAt"] == FormatTime(kT0));
  CHECK(a["endsAt"] == "0001-01-01T00:00:00Z");
  CHECK(a["fingerprint"] == AlertFingerprint("shop-502", "shop"));

  const json r = json::parse(MakeNotifier(Config(NotifierType::kWebhook))->Build(Resolved()).body);
  CHECK(r["status"] == "resolved");
  CHECK(r["alerts"][0]["endsAt"] == FormatTime(kT0 + 40min));
}

TEST_CASE("Notifier: Alertmanager v2 endsAt is ahead while firing and now when resolved") {
  auto n = MakeNotifier(Config(NotifierType::kAlertmanager));
  const Message f = Firing();
  const json fb = json::parse(n->Build(f).body);
  REQUIRE(fb.is_array());
  REQUIRE(fb.size() == 1);
  // FormatTime is fixed-width UTC, so string order is time order.
  CHECK(fb[0]["endsAt"].get<std::string>() > fb[0]["startsAt"].get<std::string>());
  CHECK(fb[0]["endsAt"].get<std::string>() > FormatTime(f.at));
  CHECK(fb[0]["endsAt"] == FormatTime(f.at + 5min));
  CHECK(fb[0]["startsAt"] == FormatTime(kT0));
  CHECK(fb[0]["labels"]["alertname"] == "shop-502");
  CHECK(fb[0]["annotations"]["verdict"] == "partial_upstream_failure");

  const Message r = Resolved();
  const json rb = json::parse(n->Build(r).body);
  CHECK(rb[0]["endsAt"] == FormatTime(r.at));
  CHECK(rb[0]["startsAt"] == FormatTime(kT0));
}

// The truncation helper: multi-byte text cut at every possible length.
TEST_CASE("Notifier: TruncateUtf8 never produces invalid UTF-8") {
  const std::string text = Repeat("a\u00e9\U0001F525\u20ac ", 20);  // 1, 2, 4, 3, 1 bytes
  for (std::string_view marker : {kTruncatedMarker, kEllipsis, std::string_view()}) {
    for (size_t max = 0; max <= text.size() + 2; ++max) {
      CAPTURE(max);
      const std::string out = TruncateUtf8(text, max, marker);
      CHECK(out.size() <= max);
      CHECK(IsValidUtf8(out));
      if (max >= text.size()) {
        CHECK(out == text);
      } else if (max >= marker.size()) {
        CHECK(out.ends_with(marker));
        CHECK(text.starts_with(out.substr(0, out.size() - marker.size())));
      }
    }
  }
  CHECK(TruncateUtf8("\u00e9", 1, "") == "");
  CHECK(TruncateUtf8("a\u00e9", 2, "") == "a");
  CHECK(TruncateUtf8("a\U0001F525", 4, "") == "a");
  CHECK(TruncateUtf8("abcdef", 5, ".") == "abcd.");
  // Invalid input bytes (a lone continuation, a truncated sequence, a surrogate) are replaced.
  CHECK(TruncateUtf8("a\x80z", 100) == "a\uFFFDz");
  CHECK(TruncateUtf8("a\xE2\x82", 100) == "a\uFFFD\uFFFD");
  CHECK(IsValidUtf8(ValidUtf8("\xED\xA0\x80 \xF5\x80\x80\x80 \xC0\xAF")));
}

// Oversized evidence: every documented limit per platform, still valid JSON with the name.
TEST_CASE("Notifier: oversized messages are cut to each platform's limits") {
  Message m = Firing();
  m.summary = Repeat("shop: 502 \u00e9\U0001F525 ", 700);  // ~10 000 bytes, multi-byte
  REQUIRE(m.summary.size() >= 10'000);
  for (int i = 0; i < 200; ++i) m.emitters["emitter-" + std::to_string(i) + "/reason"] = 200 - i;
  m.regions.clear();
  for (int i = 0; i < 50; ++i) m.regions.push_back("region-" + std::to_string(i));
  for (int i = 0; i < 300; ++i) {
    m.description.push_back("evidence line " + std::to_string(i) + ": " + Repeat("x\u00e9", 40));
  }
  m.verdict = Repeat("v", 5000);

  for (auto type : AllTypes()) {
    CAPTURE(ToString(type));
    const Payload p = MakeNotifier(Config(type))->Build(m);
    CHECK(IsValidUtf8(p.body));
    CHECK(p.body.find("shop-502") != std::string::npos);
    CHECK(p.body.find("\u2026") != std::string::npos);  // something was visibly cut
    if (type == NotifierType::kConsole) {
      CHECK(p.body.size() <= 16 * 1024 + 1);
      continue;
    }
    json b;
    REQUIRE_NOTHROW(b = json::parse(p.body));
    // Sizes are in UTF-8 bytes, which bounds any count of characters or UTF-16 units.
    auto len = [](const json& s) { return s.get<std::string>().size(); };
    switch (type) {
      case NotifierType::kSlack: {
        CHECK(len(b["text"]) <= 3000);
        REQUIRE(b["blocks"].is_array());
        CHECK(b["blocks"].size() <= 50);
        for (const auto& block : b["blocks"]) {
          if (block["type"] == "header") CHECK(len(block["text"]["text"]) <= 150);
          if (block.contains("text") && block["type"] == "section") {
            CHECK(len(block["text"]["text"]) <= 3000);
          }
          if (block.contains("fields")) {
            CHECK(block["fields"].size() <= 10);
            for (const auto& f : block["fields"]) CHECK(len(f["text"]) <= 2000);
          }
          if (block["type"] == "context") {
            for (const auto& e : block["elements"]) CHECK(len(e["text"]) <= 3000);
          }
        }
        break;
      }
      case NotifierType::kDiscord: {
        CHECK(len(b["content"]) <= 2000);
        REQUIRE(b["embeds"].is_array());
        CHECK(b["embeds"].size() <= 10);
        size_t total = 0;
        for (const auto& e : b["embeds"]) {
          CHECK(len(e["title"]) <= 256);
          CHECK(len(e["description"]) <= 4096);
          CHECK(len(e["footer"]["text"]) <= 2048);
          CHECK(e["fields"].size() <= 25);
          total += len(e["title"]) + len(e["description"]) + len(e["footer"]["text"]);
          for (const auto& f : e["fields"]) {
            CHECK(len(f["name"]) <= 256);
            CHECK(len(f["value"]) <= 1024);
            total += len(f["name"]) + len(f["value"]);
          }
        }
        CHECK(total <= 6000);
        break;
      }
      case NotifierType::kMsTeams:
        CHECK(p.body.size() <= 28 * 1024);
        CHECK(b["type"] == "message");
        CHECK(b["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive");
        CHECK(b["attachments"][0]["content"]["version"] == "1.4");
        break;
      case NotifierType::kMattermost: {
        CHECK(len(b["text"]) <= 16383);
        size_t attachment_chars = 0;
        for (const auto& a : b["attachments"]) {
          attachment_chars += len(a["fallback"]) + len(a["footer"]);
          for (const auto& f : a["fields"]) attachment_chars += len(f["title"]) + len(f["value"]);
        }
        CHECK(attachment_chars <= 7900);
        break;
      }
      case NotifierType::kGoogleChat:
        CHECK(len(b["text"]) <= 4096);
        break;
      case NotifierType::kWebhook:
        CHECK(len(b["alerts"][0]["annotations"]["description"]) <= 16384);
        CHECK(b["alerts"][0]["labels"]["alertname"] == "shop-502");
        break;
      case NotifierType::kAlertmanager:
        CHECK(len(b[0]["annotations"]["description"]) <= 16384);
        CHECK(b[0]["labels"]["alertname"] == "shop-502");
        break;
      case NotifierType::kConsole:
        break;
    }
  }
}

TEST_CASE("Notifier: invalid UTF-8 and control characters in names stay harmless") {
  Message m = Firing();
  m.monitor = "sh\xffop\x1b[31m";
  m.emitters["bad\xc3/reason"] = 3;
  for (auto type : AllTypes()) {
    CAPTURE(ToString(type));
    const Payload p = MakeNotifier(Config(type))->Build(m);
    CHECK(IsValidUtf8(p.body));
    if (type == NotifierType::kConsole) {
      CHECK(p.body.find('\x1b') == std::string::npos);
    } else {
      CHECK(json::accept(p.body));
    }
  }
}

}  // namespace
}  // namespace gatewatch::alerting
