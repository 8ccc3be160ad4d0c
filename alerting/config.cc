#include "alerting/config.h"

namespace gatewatch::alerting {
namespace {

template <typename Enum, size_t N>
std::optional<Enum> FromName(const std::array<std::string_view, N>& names, std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string_view ToString(AlertKind kind) { return kAlertKindNames[static_cast<size_t>(kind)]; }
std::optional<AlertKind> AlertKindFromString(std::string_view name) {
  return FromName<AlertKind>(kAlertKindNames, name);
}
std::string_view ToString(NotifierType type) {
  return kNotifierTypeNames[static_cast<size_t>(type)];
}
std::optional<NotifierType> NotifierTypeFromString(std::string_view name) {
  return FromName<NotifierType>(kNotifierTypeNames, name);
}

std::vector<FieldError> AlertRule::Validate() const {
  std::vector<FieldError> errors;
  switch (kind) {
    case AlertKind::kStatusRate:
      if (below > above) {
        errors.push_back({"below", "below (" + std::to_string(below) +
                                       ") must not exceed above (" + std::to_string(above) +
                                       "): it is the lower, resolving threshold"});
      }
      break;
    case AlertKind::kLatency:
      if (latency_below > latency_above) {
        errors.push_back({"below", "below (" + FormatDuration(latency_below) +
                                       ") must not exceed above (" +
                                       FormatDuration(latency_above) + ")"});
      }
      break;
    case AlertKind::kDown:
    case AlertKind::kCertExpiry:
      break;
  }
  return errors;
}

Duration NotifierConfig::EffectiveMinInterval() const {
  if (min_interval) return *min_interval;
  // Slack and Discord rate-limit incoming webhooks at about one message per second.
  return type == NotifierType::kSlack || type == NotifierType::kDiscord ? 1s : 0s;
}

std::vector<FieldError> NotifierConfig::Validate() const {
  std::vector<FieldError> errors;
  if (type == NotifierType::kConsole && !url.empty()) {
    errors.push_back({"url", "a console notifier prints to stdout and takes no url"});
  }
  if (type != NotifierType::kConsole && url.empty()) {
    errors.push_back({"url", "a " + std::string(ToString(type)) + " notifier needs a url"});
  }
  if (type != NotifierType::kAlertmanager && repost) {
    errors.push_back({"repost", "repost is only used by type = \"alertmanager\" (got type = \"" +
                                    std::string(ToString(type)) + "\")"});
  }
  if (type != NotifierType::kWebhook && !secret.empty()) {
    errors.push_back({"secret", "secret is only used by type = \"webhook\" (got type = \"" +
                                    std::string(ToString(type)) + "\")"});
  }
  return errors;
}

std::vector<FieldError> SilenceConfig::Validate() const {
  std::vector<FieldError> errors;
  const bool one_off = start.has_value() || end.has_value();
  if (one_off && weekly()) {
    errors.push_back({"days", "a silence is either a one-off window (start/end) or a weekly "
                              "window (days/from/to), not both"});
    return errors;
  }
  if (!one_off && !weekly()) {
    errors.push_back({"", "a silence needs start and end, or days, from and to"});
    return errors;
  }
  if (one_off) {
    if (!start) errors.push_back({"end", "end is set but start is missing"});
    if (!end) errors.push_back({"start", "start is set but end is missing"});
    if (start && end && *end <= *start) {
      errors.push_back({"end", "end must be after start"});
    }
  } else {
    if (days == 0) errors.push_back({"days", "a weekly window needs days, e.g. [\"sat\", \"sun\"]"});
    if (!from) errors.push_back({"from", "a weekly window needs from, a TOML local time such as 02:00:00"});
    if (!to) errors.push_back({"to", "a weekly window needs to, a TOML local time such as 04:00:00"});
    if (from && to && *from == *to) {
      errors.push_back({"to", "from and to are equal: the window would be empty"});
    }
  }
  return errors;
}

}  // namespace gatewatch::alerting
