#pragma once
// MsTeamsNotifier: see msteams.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class MsTeamsNotifier final : public Notifier {
 public:
  std::string Type() const override { return "msteams"; }
  Payload Build(const Message& m) const override;
};

}  // namespace gatewatch::alerting
