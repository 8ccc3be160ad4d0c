// Alertmanager API v2: POST <url>/api/v2/alerts with a JSON array of postable alerts
//   [{"labels": {alertname, monitor, severity}, "annotations": {verdict, summary,
//     description, ratio, regions}, "startsAt", "endsAt"}]
// (prometheus.io/docs/alerting/latest/clients and alerts_api, confirmed via search).
// generatorURL is optional and left out: gatewatch has no public URL to link to.
//
// Alertmanager expires an alert at endsAt unless it is re-sent, and clients are expected
// to re-send active alerts (every 30 s to 3 min per the docs). So a firing (or reminder,
// or test) message says endsAt = at + 5 x repost (5 minutes by default), and the delivery
// side re-posts a firing alert every `repost` (1 minute by default), building it again with
// `at` = the time of the re-post. A resolution says endsAt = at, which resolves it at once.
#include "alerting/notifiers/alertmanager.h"

#include <chrono>

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

Payload AlertmanagerNotifier::Build(const Message& m) const {
  using render::Json;
  const SystemTime ends = m.kind == Message::Kind::kResolved ? m.at : m.at + horizon_;
  Json alert = {{"labels", render::AlertmanagerLabels(m)},
                {"annotations", render::AlertmanagerAnnotations(m)},
                {"startsAt", FormatTime(m.started)},
                {"endsAt", FormatTime(ends)}};
  return {"/api/v2/alerts", "application/json", render::Dump(Json::array({alert})), {}};
}

}  // namespace gatewatch::alerting
