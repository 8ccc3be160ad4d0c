#include "daemon/probe_loop.h"

#include <algorithm>

#include "probes/fingerprint.h"
#include "probes/log.h"

namespace gatewatch::daemon {

void LagHistogram::Observe(std::chrono::microseconds lag) {
  const int64_t us = std::max<int64_t>(0, lag.count());
  size_t i = 0;
  while (i < kBoundsMs.size() && us > kBoundsMs[i] * 1000) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(us, std::memory_order_relaxed);
}

std::array<uint64_t, LagHistogram::kBoundsMs.size() + 1> LagHistogram::Buckets() const {
  std::array<uint64_t, kBoundsMs.size() + 1> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

int64_t LagHistogram::QuantileBoundMs(double q) const {
  const auto b = Buckets();
  uint64_t total = 0;
  for (uint64_t n : b) total += n;
  if (total == 0) return 0;
  const double want = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    seen += b[i];
    if (static_cast<double>(seen) >= want) return i < kBoundsMs.size() ? kBoundsMs[i] : -1;
  }
  return -1;
}

ProbeLoop::ProbeLoop(const Clock& clock, probes::Scheduler& scheduler, Hooks hooks)
    : clock_(clock), scheduler_(scheduler), hooks_(std::move(hooks)) {}

void ProbeLoop::SetTargets(const std::vector<std::shared_ptr<const probes::MonitorConfig>>& monitors,
                           const std::vector<std::shared_ptr<const probes::RegionConfig>>& regions) {
  auto t = std::make_shared<Targets>();
  for (const auto& m : monitors) t->monitors.emplace(m->name, m);
  for (const auto& r : regions) t->regions.emplace(r->name, r);
  std::lock_guard lock(targets_mu_);
  targets_ = std::move(t);
}

void ProbeLoop::ConfirmUpstreams(const probes::ProbeResult& r) {
  if (prober_ == nullptr) return;
  std::shared_ptr<const Targets> t;
  {
    std::lock_guard lock(targets_mu_);
    t = targets_;
  }
  const auto gateway = t->monitors.find(r.monitor);
  const auto region = t->regions.find(r.region);
  if (gateway == t->monitors.end() || region == t->regions.end()) return;  // e.g. an agent's region
  for (const std::string& name : gateway->second->upstreams) {
    const auto upstream = t->monitors.find(name);
    if (upstream == t->monitors.end()) continue;  // not probed by this replica
    const auto& regions = upstream->second->regions;
    if (std::find(regions.begin(), regions.end(), r.region) == regions.end()) continue;
    probes::ProbeJob job;
    job.monitor = upstream->second;
    job.region = region->second;
    // Worth running only while it is still a comparison "within the same second".
    job.start_by = clock_.Steady() + std::chrono::seconds(5);
    job.on_result = [this](probes::ProbeResult u) { OnResult(std::move(u)); };
    job.on_skip = [this] { stats_.skipped_overload.fetch_add(1); };
    stats_.confirmations.fetch_add(1);
    prober_->Submit(std::move(job));
    log::Info("confirming upstream")
        .Kv("monitor", r.monitor)
        .Kv("region", r.region)
        .Kv("upstream", name)
        .Kv("outcome", probes::ToString(r.outcome));
  }
}

SystemTime ProbeLoop::Tick(probes::Prober& prober) {
  prober_ = &prober;
  const SystemTime now = clock_.Now();
  last_tick_.store(now.time_since_epoch().count());
  for (auto& slot : scheduler_.TakeDue(now)) {
    if (hooks_.store_has_room && !hooks_.store_has_room()) {
      stats_.skipped_backpressure.fetch_add(1);
      continue;  // nothing half-written: the probe never runs
    }
    probes::ProbeJob job;
    job.monitor = std::move(slot.monitor);
    job.region = std::move(slot.region);
    job.due = slot.due;
    // Not started by the next due time: skipped (the next run takes its place).
    job.start_by = clock_.Steady() + std::chrono::duration_cast<SteadyTime::duration>(slot.next_due - now);
    job.on_result = [this](probes::ProbeResult r) { OnResult(std::move(r)); };
    job.on_skip = [this] { stats_.skipped_overload.fetch_add(1); };
    stats_.submitted.fetch_add(1);
    prober.Submit(std::move(job));
  }
  return scheduler_.NextDue();
}

void ProbeLoop::LogConfirmed(const probes::ProbeResult& r, Health& h) {
  const bool failed = probes::IsFailure(r.outcome);
  const bool was_failing = h.streak > 0;
  if (failed != was_failing && (h.known || failed)) {
    auto line = log::Info("monitor state changed");
    line.Kv("monitor", r.monitor)
        .Kv("region", r.region)
        .Kv("from", !h.known ? "unknown" : (was_failing ? "failing" : "ok"))
        .Kv("to", failed ? "failing" : "ok")
        .Kv("outcome", probes::ToString(r.outcome));
    if (!failed) line.Kv("failures", h.streak);
  }
  h.known = true;
  if (!failed) {
    h.streak = 0;
    h.unlogged = 0;
    return;
  }
  ++h.streak;
  const bool same = h.streak > 1 && r.outcome == h.outcome && r.http_status == h.http_status &&
                    r.emitter == h.emitter && r.reason == h.reason;
  if (same && r.started_at - h.logged_at < kFailureLogRepeat) {
    ++h.unlogged;
    return;
  }
  auto line = log::Warn("probe failed");
  line.Kv("monitor", r.monitor).Kv("region", r.region).Kv("outcome", probes::ToString(r.outcome));
  if (r.http_status > 0) line.Kv("status", r.http_status);
  if (r.http_status >= 500) {
    line.Kv("emitter", probes::ToString(r.emitter)).Kv("reason", probes::ToString(r.reason));
  }
  line.Kv("attempts", r.attempt + 1).Kv("detail", r.detail);
  if (h.unlogged > 0) line.Kv("repeated", h.unlogged);
  h.unlogged = 0;
  h.logged_at = r.started_at;
  h.outcome = r.outcome;
  h.http_status = r.http_status;
  h.emitter = r.emitter;
  h.reason = r.reason;
}

void ProbeLoop::OnResult(probes::ProbeResult r) {
  stats_.results.fetch_add(1);
  if (r.attempt == 0 && r.due != SystemTime{}) {
    stats_.lag.Observe(std::chrono::duration_cast<std::chrono::microseconds>(r.started_at - r.due));
  }
  if (r.confirmed) {
    std::string key;
    key.reserve(r.monitor.size() + 1 + r.region.size());
    key.append(r.monitor).append(1, '\x1f').append(r.region);
    Health& h = health_[key];
    LogConfirmed(r, h);
    const bool gateway_failed = probes::IsGatewayError(r.http_status, r.emitter);
    if (gateway_failed && !h.gateway_failing) ConfirmUpstreams(r);
    h.gateway_failing = gateway_failed;
  }
  if (hooks_.observe) hooks_.observe(r);
  if (hooks_.store && !hooks_.store(std::move(r))) stats_.lost.fetch_add(1);
}

}  // namespace gatewatch::daemon
