#pragma once
// AlertmanagerNotifier: see alertmanager.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class AlertmanagerNotifier final : public Notifier {
 public:
  // A firing alert's endsAt = at + horizon (5 x the notifier's repost interval).
  explicit AlertmanagerNotifier(Duration horizon = std::chrono::minutes(5)) : horizon_(horizon) {}
  std::string Type() const override { return "alertmanager"; }
  Payload Build(const Message& m) const override;

 private:
  Duration horizon_;
};

}  // namespace gatewatch::alerting
