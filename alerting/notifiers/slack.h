#pragma once
// SlackNotifier: see slack.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class SlackNotifier final : public Notifier {
 public:
  std::string Type() const override { return "slack"; }
  Payload Build(const Message& m) const override;
};

}  // namespace gatewatch::alerting
