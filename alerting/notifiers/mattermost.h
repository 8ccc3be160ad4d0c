#pragma once
// MattermostNotifier: see mattermost.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class MattermostNotifier final : public Notifier {
 public:
  std::string Type() const override { return "mattermost"; }
  Payload Build(const Message& m) const override;
};

}  // namespace gatewatch::alerting
