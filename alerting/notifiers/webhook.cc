// Generic webhook: the Alertmanager webhook format, version "4" (docs/alerts-and-diagnosis.md), so
// anything that consumes Alertmanager webhooks consumes gatewatch's:
//   {"version": "4", "groupKey", "truncatedAlerts": 0, "status", "receiver",
//    "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
//    "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt",
//                "generatorURL", "fingerprint"}]}
// Field names and the zero time "0001-01-01T00:00:00Z" for a firing alert's endsAt follow
// Alertmanager's own payloads (prometheus.io webhook_config docs, sample v4 payloads,
// confirmed via search). One message = one alert, so the group is that alert.
// externalURL and generatorURL are empty: gatewatch has no public URL to offer (the
// notifier url is a secret and never appears).
//
// With a secret, header X-Gatewatch-Signature: sha256=<lowercase hex HMAC-SHA256 of the
// exact body bytes>; the receiver recomputes it over the raw body before parsing.
#include "alerting/notifiers/webhook.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

std::string HmacSha256Hex(std::string_view key, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // An empty key is legal for HMAC; OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty = 0;
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac,
           &len) == nullptr) {
    return {};
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

Payload WebhookNotifier::Build(const Message& m) const {
  using render::Json;
  const Json labels = render::AlertmanagerLabels(m);
  const Json annotations = render::AlertmanagerAnnotations(m);
  const std::string status(render::KindStatus(m.kind));
  const Json group_labels = {{"alertname", m.alert}, {"monitor", m.monitor}};
  // Alertmanager's groupKey: "<route matchers>:<group labels>"; we have no route tree.
  const std::string group_key = "{}:{alertname=" + render::Dump(Json(m.alert)) +
                                ", monitor=" + render::Dump(Json(m.monitor)) + "}";

  Json alert = {{"status", status},
                {"labels", labels},
                {"annotations", annotations},
                {"startsAt", FormatTime(m.started)},
                {"endsAt", m.ended ? FormatTime(*m.ended) : "0001-01-01T00:00:00Z"},
                {"generatorURL", ""},
                {"fingerprint", m.fingerprint}};
  Json body = {{"version", "4"},         {"groupKey", group_key},
               {"truncatedAlerts", 0},   {"status", status},
               {"receiver", receiver_},  {"groupLabels", group_labels},
               {"commonLabels", labels}, {"commonAnnotations", annotations},
               {"externalURL", ""},      {"alerts", Json::array({alert})}};
  Payload p{"", "application/json", render::Dump(body), {}};
  if (!secret_.empty()) {
    p.headers.emplace_back("X-Gatewatch-Signature", "sha256=" + HmacSha256Hex(secret_, p.body));
  }
  return p;
}

}  // namespace gatewatch::alerting
