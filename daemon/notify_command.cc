#include "daemon/notify_command.h"

#include <algorithm>

#include "alerting/delivery.h"
#include "alerting/notifier.h"
#include "daemon/cli.h"
#include "daemon/config.h"
#include "probes/duration.h"

namespace gatewatch::daemon {
namespace {

// The two sample messages: the test message as a firing, then its resolution.
std::vector<alerting::Message> Samples(const std::string& notifier, SystemTime now) {
  alerting::Message firing = alerting::TestMessage(notifier, now);
  firing.kind = alerting::Message::Kind::kFiring;
  firing.description = {"sent by `gatewatch notify-test`: a firing, then its resolution"};
  alerting::Message resolved = firing;
  resolved.kind = alerting::Message::Kind::kResolved;
  resolved.ended = now;
  return {firing, resolved};
}

std::string Names(const Config& cfg) {
  std::string out;
  for (const auto& n : cfg.notifiers) out += (out.empty() ? "" : ", ") + n.name;
  return out.empty() ? "none configured" : out;
}

}  // namespace

int RunNotifyTest(const NotifyTestOptions& options, std::ostream& out, std::ostream& err) {
  auto config = LoadConfigFile(options.config);
  if (!config) {
    for (const ConfigError& e : config.error()) err << e.ToString() << "\n";
    return kExitUsage;
  }
  const auto it = std::find_if(config->notifiers.begin(), config->notifiers.end(),
                               [&](const auto& n) { return n.name == options.notifier; });
  if (it == config->notifiers.end()) {
    err << "gatewatch: no notifier named \"" << options.notifier << "\" in " << options.config
        << " (notifiers: " << Names(*config) << ")\n";
    return kExitUsage;
  }
  const alerting::NotifierConfig& notifier = *it;
  const auto renderer = alerting::MakeNotifier(notifier);
  RealClock clock;
  int failed = 0;
  for (const alerting::Message& m : Samples(notifier.name, clock.Now())) {
    const alerting::Payload payload = renderer->Build(m);
    const std::string kind(alerting::ToString(m.kind));
    if (notifier.type == alerting::NotifierType::kConsole) {
      out << payload.body << "\n";
      continue;
    }
    const alerting::SendResult r = alerting::Send(notifier, payload, notifier.timeout);
    out << notifier.name << " (" << renderer->Type() << "), " << kind << ": ";
    if (!r.error.empty()) {
      out << "no answer: " << r.error << "\n";
      ++failed;
      continue;
    }
    out << "HTTP " << r.http_status << " in " << FormatDuration(r.elapsed);
    if (!r.body_excerpt.empty()) out << ": " << r.body_excerpt;
    out << "\n";
    if (alerting::Classify(r) != alerting::SendVerdict::kDelivered) ++failed;
  }
  if (failed > 0) {
    err << "gatewatch: " << failed << " of 2 test messages were not accepted by " << notifier.name << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace gatewatch::daemon
