#include "alerting/notifier.h"

#include "alerting/notifiers/alertmanager.h"
#include "alerting/notifiers/console.h"
#include "alerting/notifiers/discord.h"
#include "alerting/notifiers/googlechat.h"
#include "alerting/notifiers/mattermost.h"
#include "alerting/notifiers/msteams.h"
#include "alerting/notifiers/slack.h"
#include "alerting/notifiers/webhook.h"
#include "probes/text.h"

namespace gatewatch::alerting {

Notifier::~Notifier() = default;

std::string_view ToString(Message::Kind k) {
  switch (k) {
    case Message::Kind::kFiring:
      return "firing";
    case Message::Kind::kResolved:
      return "resolved";
    case Message::Kind::kReminder:
      return "reminder";
    case Message::Kind::kTest:
      return "test";
  }
  return "firing";
}

Message MessageFromEvent(const AlertEvent& e) {
  Message m;
  switch (e.kind) {
    case AlertEvent::Kind::kFiring:
      m.kind = Message::Kind::kFiring;
      break;
    case AlertEvent::Kind::kResolved:
      m.kind = Message::Kind::kResolved;
      break;
    case AlertEvent::Kind::kReminder:
      m.kind = Message::Kind::kReminder;
      break;
  }
  m.alert = e.alert;
  m.monitor = e.monitor;
  m.severity = e.severity;
  m.summary = e.summary;
  m.ratio = e.ratio;
  m.value = e.value;
  m.samples = e.samples;
  m.regions = e.regions_above;
  m.emitters = e.emitters;
  m.at = e.at;
  // An event from a pair that never fired (should not happen) still gets a sane start.
  m.started = e.firing_since == SystemTime{} ? e.at : e.firing_since;
  if (m.kind == Message::Kind::kResolved) m.ended = e.at;
  m.fingerprint = AlertFingerprint(m.alert, m.monitor);
  return m;
}

Message TestMessage(std::string_view notifier_name, SystemTime now) {
  Message m;
  m.kind = Message::Kind::kTest;
  m.alert = "gatewatch-test";
  m.monitor = "notify-test";
  m.severity = "info";
  m.summary = "Test message from gatewatch to notifier " + std::string(notifier_name) +
              ": if you can read this, delivery works.";
  m.at = now;
  m.started = now;
  m.fingerprint = AlertFingerprint(m.alert, m.monitor);
  return m;
}

std::string AlertFingerprint(std::string_view alert, std::string_view monitor) {
  // prometheus/common model.LabelsToSignature: FNV-1a 64, each label as
  // name, 0xff, value, 0xff, names in sorted order ("alertname" < "monitor").
  uint64_t h = 14695981039346656037ULL;
  auto add = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  auto sep = [&h] {
    h ^= 0xffU;
    h *= 1099511628211ULL;
  };
  add("alertname");
  sep();
  add(alert);
  sep();
  add("monitor");
  sep();
  add(monitor);
  sep();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<size_t>(i)] = kHex[h & 0xf];
  return out;
}

std::unique_ptr<Notifier> MakeNotifier(const NotifierConfig& config) {
  switch (config.type) {
    case NotifierType::kSlack:
      return std::make_unique<SlackNotifier>();
    case NotifierType::kDiscord:
      return std::make_unique<DiscordNotifier>();
    case NotifierType::kMsTeams:
      return std::make_unique<MsTeamsNotifier>();
    case NotifierType::kMattermost:
      return std::make_unique<MattermostNotifier>();
    case NotifierType::kGoogleChat:
      return std::make_unique<GoogleChatNotifier>();
    case NotifierType::kWebhook:
      return std::make_unique<WebhookNotifier>(config.name, config.secret);
    case NotifierType::kAlertmanager:
      return std::make_unique<AlertmanagerNotifier>(5 * config.EffectiveRepost());
    case NotifierType::kConsole:
      return std::make_unique<ConsoleNotifier>();
  }
  return std::make_unique<ConsoleNotifier>();
}

// --- UTF-8 --------------------------------------------------------------------------------

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string TruncateUtf8(std::string_view text, size_t max_bytes, std::string_view marker) {
  std::string valid = ValidUtf8(text);
  if (valid.size() <= max_bytes) return valid;
  if (marker.size() > max_bytes) marker = {};
  size_t cut = max_bytes - marker.size();
  // `valid` is well-formed and longer than `cut`, so backing off continuation bytes
  // lands on the first byte of a sequence: the cut never splits a character.
  while (cut > 0 && (static_cast<unsigned char>(valid[cut]) & 0xC0) == 0x80) --cut;
  // A cut right after whitespace reads better with the marker attached to the last word.
  while (cut > 0 && !marker.empty() && (valid[cut - 1] == ' ' || valid[cut - 1] == '\n')) --cut;
  valid.resize(cut);
  valid += marker;
  return valid;
}

}  // namespace gatewatch::alerting
