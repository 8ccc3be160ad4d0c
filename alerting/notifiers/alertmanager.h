#pragma once
// AlertmanagerNotifier: see alertmanager.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class AlertmanagerNotifier final : public Notifier {
 public:
  std::string Type() const override { return "alertmanager"; }
  Payload Build(const Message& m) const override;
};

}  // namespace gatewatch::alerting
