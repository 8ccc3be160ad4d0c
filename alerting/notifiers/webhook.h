#pragma once
// WebhookNotifier: the Alertmanager webhook format (version "4"), see webhook.cc.

#include <string>
#include <string_view>
#include <utility>

#include "alerting/notifier.h"

namespace gatewatch::alerting {

class WebhookNotifier final : public Notifier {
 public:
  // `receiver` is the notifier's config name (the payload's "receiver"). When `secret` is
  // not empty, Build() adds X-Gatewatch-Signature: sha256=<hex HMAC-SHA256 of the body>.
  WebhookNotifier(std::string receiver, std::string secret)
      : receiver_(std::move(receiver)), secret_(std::move(secret)) {}
  std::string Type() const override { return "webhook"; }
  Payload Build(const Message& m) const override;

 private:
  std::string receiver_;
  std::string secret_;  // never rendered into a payload
};

// Lowercase hex HMAC-SHA256 of `body` keyed with `key` (the signature's value after "sha256=").
std::string HmacSha256Hex(std::string_view key, std::string_view body);

}  // namespace gatewatch::alerting
