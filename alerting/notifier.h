#pragma once
// Notification payloads (docs/configuration.md, docs/alerts-and-diagnosis.md): what every notifier renders (Message),
// the Notifier extension point that turns a Message into one HTTP request body
// (Payload), and the explicit type -> implementation factory (STYLE section 2).
//
// Payload building only: no I/O happens here. Delivery (libcurl, the outbox, retries,
// Retry-After) owns the notifier URL and POSTs `url + payload.url_suffix`. Payloads never
// contain the notifier's url or secret (docs/reliability.md).
//
// Thread-safety: Build() is const and touches no shared state, so one Notifier may be
// used from any thread; the delivery thread is the intended caller.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "alerting/config.h"
#include "alerting/evaluator.h"
#include "probes/clock.h"

namespace gatewatch::alerting {

// What a notification says, independent of the chat system.
struct Message {
  enum class Kind : uint8_t { kFiring, kResolved, kReminder, kTest };
  Kind kind = Kind::kFiring;
  std::string alert;  // rule name (Alertmanager label "alertname")
  std::string monitor;
  std::string severity;
  std::string summary;                   // one line: what, how bad, where
  std::vector<std::string> description;  // evidence lines (diagnosis appends here)
  std::string verdict;               // docs/alerts-and-diagnosis.md name ("upstream_down"); empty until diagnosed
  double ratio = 0;                  // worst region's share (rendered as %)
  std::string value;  // the measured value as text when it is not a share ("830ms", "3 failures
                      // in a row", "9.5 days left"); empty: the ratio is a share, shown as %
  int64_t samples = 0;               // results in the worst region's window
  std::vector<std::string> regions;  // regions past the threshold
  std::map<std::string, int64_t> emitters;  // "nginx/upstream_timeout" -> count
  SystemTime at{};                          // when this event happened
  SystemTime started{};                     // firing since
  std::optional<SystemTime> ended;          // set when resolved
  std::string fingerprint;  // AlertFingerprint(alert, monitor): stable across the episode
};

std::string_view ToString(Message::Kind k);

// The evaluator's event as a Message: kind, names, numbers and times copied, started =
// firing_since, ended = at for a resolution, fingerprint computed. Verdict and
// description stay empty (diagnosis fills them in later).
Message MessageFromEvent(const AlertEvent& e);

// The message `gatewatch notify-test` sends (kind kTest, alert "gatewatch-test").
Message TestMessage(std::string_view notifier_name, SystemTime now);

// 16 lowercase hex digits: FNV-1a 64 over the label set {alertname, monitor} in the
// layout of Prometheus' LabelsToSignature (name 0xff value 0xff, names sorted), i.e. the
// fingerprint Alertmanager itself would give an alert with exactly those two labels.
// Severity is left out on purpose: the fingerprint names the alert x monitor pair.
std::string AlertFingerprint(std::string_view alert, std::string_view monitor);

// One HTTP request body for one message.
struct Payload {
  std::string url_suffix;    // appended to the notifier url: "" or "/api/v2/alerts"
  std::string content_type;  // "application/json" or "text/plain; charset=utf-8"
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. X-Gatewatch-Signature
};

// Renders messages for one chat system. Implementations live in alerting/notifiers/.
class Notifier {
 public:
  virtual ~Notifier();
  virtual std::string Type() const = 0;  // the config name: "slack", "webhook", ...
  // Pure: no I/O, deterministic for a given message. Long texts are cut to the
  // platform's limits (never rejected), so the result is always deliverable.
  virtual Payload Build(const Message& m) const = 0;
};

// Explicit type -> implementation switch (no static self-registration). Never null.
std::unique_ptr<Notifier> MakeNotifier(const NotifierConfig& config);

// --- Text limits -----------------------------------------------------------------------

// Appended to a cut text.
inline constexpr std::string_view kTruncatedMarker = "\u2026 (truncated)";
inline constexpr std::string_view kEllipsis = "\u2026";

// Cuts `text` to at most `max_bytes` bytes of UTF-8, ending in `marker` when cut. Never
// cuts inside a multi-byte sequence; invalid input bytes become U+FFFD first. Limits are
// counted in UTF-8 bytes on purpose: a byte count is never below the count of code
// points or UTF-16 units that chat platforms use, so a cut text fits however the
// platform counts. When even the marker does not fit, the text is cut without it.
std::string TruncateUtf8(std::string_view text, size_t max_bytes,
                         std::string_view marker = kTruncatedMarker);

// `text` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string ValidUtf8(std::string_view text);

}  // namespace gatewatch::alerting
