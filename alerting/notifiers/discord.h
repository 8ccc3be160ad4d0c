#pragma once
// DiscordNotifier: see discord.cc for the payload shape and the platform limits it keeps.

#include <string>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class DiscordNotifier final : public Notifier {
 public:
  std::string Type() const override { return "discord"; }
  Payload Build(const Message& m) const override;
};

}  // namespace gatewatch::alerting
