#pragma once
// GoogleChatNotifier: see googlechat.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class GoogleChatNotifier final : public Notifier {
 public:
  std::string Type() const override { return "googlechat"; }
  Payload Build(const Message& m) const override;
};

}  // namespace gatewatch::alerting
