// The delivery thread's Alertmanager re-posts (alerting/delivery.h: "Alertmanager"): each
// alertmanager lane's active alerts, restored at start, kept in step with deliveries, and
// re-posted every interval.

#include <cstdint>
#include <string>
#include <vector>

#include "alerting/delivery.h"
#include "alerting/delivery_thread.h"
#include "alerting/http_post_request.h"
#include "alerting/message_json.h"
#include "probes/log.h"

namespace gatewatch::alerting {

namespace {

using internal::Lane;
using internal::PairKey;
using internal::Reason;
using storage::OutboxMessage;

constexpr size_t kRepostBatch = 256;  // alerts per Alertmanager re-post

}  // namespace

void Delivery::Impl::LoadActive(Lane& lane) {
  lane.active.clear();
  lane.round.clear();
  lane.round_pos = 0;
  auto rows = store->ActiveAlerts(std::vector<std::string>{lane.name});
  if (!rows) {
    log::Error("alertmanager alerts not restored: database error")
        .Kv("notifier", lane.name)
        .Kv("error", rows.error());
    return;
  }
  for (const OutboxMessage& row : *rows) {
    auto m = MessageFromJson(row.message);
    if (!m) {
      log::Error("alertmanager alert not restored")
          .Kv("notifier", lane.name)
          .Kv("id", row.id)
          .Kv("error", m.error());
      continue;
    }
    lane.active[{row.alert, row.monitor}] = std::move(*m);
  }
  // At once: the daemon may have been down past the alerts' endsAt.
  lane.next_repost = clock.Steady();
  if (!lane.active.empty()) {
    log::Info("alertmanager alerts restored for re-posting")
        .Kv("notifier", lane.name)
        .Kv("alerts", static_cast<uint64_t>(lane.active.size()));
  }
}

void Delivery::Impl::MaybeRepost(Lane& lane) {
  if (!lane.IsAlertmanager() || lane.active.empty()) return;
  const SteadyTime steady = clock.Steady();
  if (steady < lane.next_repost || steady < lane.next_send) return;
  if (lane.round.empty()) {
    for (const auto& [key, m] : lane.active) lane.round.push_back(key);
    lane.round_pos = 0;
  }
  const SystemTime now = clock.Now();
  Payload batch;
  std::string items;
  size_t n = 0;
  while (lane.round_pos < lane.round.size() && n < kRepostBatch) {
    auto it = lane.active.find(lane.round[lane.round_pos++]);
    if (it == lane.active.end()) continue;  // resolved since the round began
    Message m = it->second;
    m.at = now;  // endsAt = now + 5 min
    Payload p = lane.notifier->Build(m);
    // Alertmanager takes an array of alerts; each body is a one-element array.
    if (p.body.size() < 2 || p.body.front() != '[' || p.body.back() != ']') {
      log::Error("alertmanager re-post skipped: payload is not a JSON array")
          .Kv("notifier", lane.name)
          .Kv("alert", m.alert)
          .Kv("monitor", m.monitor);
      continue;
    }
    if (n++ > 0) items += ',';
    items.append(p.body, 1, p.body.size() - 2);
    batch.url_suffix = p.url_suffix;
    batch.content_type = p.content_type;
  }
  if (lane.round_pos >= lane.round.size()) {  // round complete: the next one in an interval
    lane.round.clear();
    lane.round_pos = 0;
    lane.next_repost = steady + RepostOf(lane);
  }
  if (n == 0) return;
  batch.body = "[" + items + "]";
  lane.next_send = steady + lane.config->EffectiveMinInterval();
  StartRequest(lane, batch, std::nullopt, n);
}

void Delivery::Impl::OnReposted(Lane& lane, size_t alerts, const SendResult& res) {
  if (Classify(res) == SendVerdict::kDelivered) {
    Count(lane.name, "refreshed", alerts);
    if (lane.refresh_failing)
      log::Info("alertmanager re-post works again").Kv("notifier", lane.name);
    lane.refresh_failing = false;
    return;
  }
  Count(lane.name, "refresh_failed", alerts);
  if (res.retry_after) {
    lane.next_send =
        std::max(lane.next_send, clock.Steady() + std::min(*res.retry_after, options.max_backoff));
  }
  if (!lane.refresh_failing) {
    log::Warn("alertmanager re-post failed; repeated at the next tick")
        .Kv("notifier", lane.name)
        .Kv("alerts", static_cast<uint64_t>(alerts))
        .Kv("error", Reason(res));
  }
  lane.refresh_failing = true;
}

// Keeps the Alertmanager active set in step with what the receiver was told.
void Delivery::Impl::Track(Lane& lane, const OutboxMessage& m, bool delivered) {
  if (m.kind == "test") return;  // one-off: Alertmanager lets it expire
  const PairKey key{m.alert, m.monitor};
  if (!delivered || m.kind == "resolved") {
    lane.active.erase(key);
    return;
  }
  auto message = MessageFromJson(m.message);  // it was just rendered from this text
  if (!message) return;
  // The first active alert starts the clock; later ones join the running rounds.
  if (lane.active.empty()) lane.next_repost = clock.Steady() + RepostOf(lane);
  lane.active[key] = std::move(*message);
}

}  // namespace gatewatch::alerting
