#pragma once
// Alerting configuration: alert rules, notifiers and silences (docs/configuration.md).
// Plain structs filled by the config loader (daemon/config.h); nothing here knows TOML.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/config.h"
#include "probes/duration.h"

namespace gatewatch::alerting {

using namespace std::chrono_literals;
using probes::FieldError;

enum class AlertKind : uint8_t { kStatusRate, kDown, kLatency, kCertExpiry };
inline constexpr std::array<std::string_view, 4> kAlertKindNames = {"status_rate", "down",
                                                                    "latency", "cert_expiry"};
std::string_view ToString(AlertKind kind);
std::optional<AlertKind> AlertKindFromString(std::string_view name);

// Latency rules name a phase of probes::kPhases (docs/probes.md).

struct AlertRule {
  std::string name;
  std::vector<std::string> monitor_patterns;  // names or globs, as written
  std::vector<std::string> monitors;          // resolved monitor names, config order
  AlertKind kind = AlertKind::kStatusRate;

  // status_rate
  std::vector<int> codes = {502};
  bool count_gateway_error = false;  // count = "gateway_error" instead of codes
  double above = 0.05;               // fire when the share is above this
  double below = 0.025;              // resolve when under this (default: above / 2)
  // latency
  std::string phase = "processing";
  double percentile = 95;
  Duration latency_above{0};
  Duration latency_below{0};  // default: latency_above
  // down
  int after = 3;  // consecutive confirmed failures
  // cert_expiry
  Duration within = 24h * 14;

  Duration window = 5min;
  int min_samples = 10;
  int min_regions = 1;
  Duration pending_for = 1min;  // `for`
  Duration resolve_for = 2min;
  Duration repeat = 4h;
  std::string severity = "warning";
  std::vector<std::string> notify;  // notifier names

  std::vector<FieldError> Validate() const;
};

enum class NotifierType : uint8_t {
  kSlack,
  kDiscord,
  kMsTeams,
  kMattermost,
  kGoogleChat,
  kWebhook,
  kAlertmanager,
  kConsole
};
inline constexpr std::array<std::string_view, 8> kNotifierTypeNames = {
    "slack", "discord", "msteams", "mattermost", "googlechat", "webhook", "alertmanager", "console"};
std::string_view ToString(NotifierType type);
std::optional<NotifierType> NotifierTypeFromString(std::string_view name);

struct NotifierConfig {
  std::string name;
  NotifierType type = NotifierType::kWebhook;
  std::string url;     // secret: never logged or shown
  std::string secret;  // webhook only: HMAC-SHA256 key for X-Gatewatch-Signature
  std::optional<Duration> min_interval;  // default per type, see EffectiveMinInterval()
  Duration max_age = 6h;                 // give up on a message older than this
  Duration timeout = 10s;                // overall deadline of one delivery request
  // alertmanager only: re-post a firing alert this often; each post says endsAt = now + 5 x
  // repost, so Alertmanager keeps it while gatewatch runs and expires it if gatewatch dies.
  std::optional<Duration> repost;

  Duration EffectiveRepost() const { return repost.value_or(std::chrono::minutes(1)); }

  Duration EffectiveMinInterval() const;
  std::vector<FieldError> Validate() const;
};

// A maintenance window: mutes notifications (state is still tracked).
struct SilenceConfig {
  std::string name;  // defaults to "silences[i]"
  std::string comment;
  std::vector<std::string> monitor_patterns;
  std::vector<std::string> monitors;  // resolved
  // One-off window.
  std::optional<std::chrono::sys_seconds> start;
  std::optional<std::chrono::sys_seconds> end;
  // Weekly window: days bit 0 = Monday .. bit 6 = Sunday; from/to = local time of day.
  uint8_t days = 0;
  std::optional<std::chrono::seconds> from;
  std::optional<std::chrono::seconds> to;  // to < from crosses midnight
  std::string timezone = "UTC";

  bool weekly() const { return days != 0 || from.has_value() || to.has_value(); }
  std::vector<FieldError> Validate() const;
};

inline constexpr std::array<std::string_view, 7> kWeekdayNames = {"mon", "tue", "wed", "thu",
                                                                  "fri", "sat", "sun"};

}  // namespace gatewatch::alerting
