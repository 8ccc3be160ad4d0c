#pragma once
// ConsoleNotifier: see console.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class ConsoleNotifier final : public Notifier {
 public:
  std::string Type() const override { return "console"; }
  Payload Build(const Message& m) const override;
};

}  // namespace gatewatch::alerting
