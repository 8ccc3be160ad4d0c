#include "daemon/alert_pipeline.h"

#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "alerting/message_json.h"
#include "alerting/notifier.h"
#include "daemon/diagnosis.h"
#include "probes/log.h"
#include "storage/alert_store.h"
#include "storage/incident_store.h"
#include "storage/sqlite_store.h"

namespace gatewatch::daemon {
namespace {

using Key = std::pair<std::string, std::string>;  // (alert, monitor)

// What a round has to write: kept until a commit succeeds, so a failed commit delays
// messages and state changes but never drops them.
struct PendingWrite {
  std::map<Key, storage::AlertStateRecord> states;
  std::set<Key> removed;
  std::vector<storage::OutboxMessage> messages;

  bool empty() const { return states.empty() && removed.empty() && messages.empty(); }
};

std::string_view KindName(alerting::AlertEvent::Kind k) { return alerting::ToString(k); }

}  // namespace

struct AlertPipeline::Impl {
  Impl(AlertPipelineOptions o, std::shared_ptr<const Config> cfg, const Clock& c, AlertPipelineStats& s)
      : options(std::move(o)), config(std::move(cfg)), clock(c), stats(s), evaluator(c) {}

  // --- Any thread ---
  void Offer(const probes::ProbeResult& r) {
    if (!r.confirmed) return;
    {
      std::lock_guard lock(mu);
      if (queue.size() >= options.max_queued) {
        if (stats.dropped.fetch_add(1) % 10'000 == 0) {
          log::Warn("alert queue full, result not evaluated").Kv("monitor", r.monitor).Kv("queued", queue.size());
        }
        return;
      }
      if (queue.empty()) first_queued = std::chrono::steady_clock::now();
      queue.push_back(r);
      // Only the first result of a batch and a full batch wake the thread (see batch_delay).
      if (queue.size() != 1 && queue.size() != options.batch_rows) return;
    }
    cv.notify_one();
  }

  // --- Pipeline thread ---
  Result<void> Open() {
    auto store = storage::AlertStore::Open(options.db_path, clock);
    if (!store) return Error("alert store: " + store.error());
    alerts = std::move(store).value();
    auto incident_store = storage::IncidentStore::Open(options.db_path, clock);
    if (!incident_store) return Error("incident store: " + incident_store.error());
    incidents = std::move(incident_store).value();
    storage::OpenOptions ro;
    ro.read_only = true;
    auto reader = storage::SqliteStore::Open(options.db_path, ro);
    if (!reader) return Error("results reader: " + reader.error());
    results = std::move(reader).value();
    diagnostics = std::make_unique<Diagnostics>(clock, *incidents, *results);
    if (auto ok = diagnostics->Configure(config); !ok) return ok;
    Take(evaluator.Configure(config->alerts, config->silences));
    auto records = alerts->LoadStates();
    if (!records) return Error("alert state: " + records.error());
    Take(evaluator.Restore(*records));
    if (auto replayed = Replay(); !replayed) return replayed;
    Take(evaluator.EvaluateAll(clock.Now()));
    Commit();
    PublishStates();
    log::Info("alert state restored")
        .Kv("pairs", static_cast<uint64_t>(records->size()))
        .Kv("replayed_results", stats.replayed.load())
        .Kv("events", static_cast<uint64_t>(pending.messages.size()));
    return {};
  }

  // The stored results of the longest window, per monitor that an alert watches, oldest
  // first: the evaluator's windows as they were.
  Result<void> Replay() {
    const Duration window = std::max(evaluator.LongestWindow(), Duration(std::chrono::minutes(1)));
    std::set<std::string> monitors;
    for (const auto& rule : config->alerts) monitors.insert(rule.monitors.begin(), rule.monitors.end());
    for (const auto& m : config->monitors) {  // the diagnosis' failing flags: gateways and upstreams
      if (!m.upstreams.empty()) {
        monitors.insert(m.name);
        monitors.insert(m.upstreams.begin(), m.upstreams.end());
      }
    }
    const SystemTime since = clock.Now() - window;
    for (const std::string& monitor : monitors) {
      storage::ResultQuery q;
      q.monitor = monitor;
      q.since = since;
      q.limit = storage::kMaxResultLimit;
      auto rows = results->Results(q);
      if (!rows) return Error("replay of " + monitor + ": " + rows.error());
      for (auto it = rows->rbegin(); it != rows->rend(); ++it) {  // oldest first
        evaluator.Replay(*it);
        diagnostics->Observe(*it);
      }
      stats.replayed += rows->size();
    }
    return {};
  }

  void Run() {
    std::deque<probes::ProbeResult> batch;
    SystemTime next_tick = clock.Now() + options.tick;
    for (;;) {
      std::shared_ptr<const Config> reloaded;
      {
        std::unique_lock lock(mu);
        const auto tick_at = ToSteady(next_tick);
        for (;;) {
          if (stopping || reconfigure || queue.size() >= options.batch_rows) break;
          auto until = tick_at;
          if (!queue.empty()) until = std::min(until, first_queued + options.batch_delay);
          if (std::chrono::steady_clock::now() >= until) break;
          const bool was_empty = queue.empty();
          // Woken by the first result of a batch: wait again, now with its deadline.
          cv.wait_until(lock, until, [&] {
            return stopping || reconfigure || queue.size() >= options.batch_rows ||
                   (was_empty && !queue.empty());
          });
        }
        batch.swap(queue);
        reloaded = std::exchange(reconfigure, nullptr);
      }
      if (reloaded) {
        config = std::move(reloaded);
        if (auto ok = diagnostics->Configure(config); !ok) log::Error("diagnosis reload failed").Kv("error", ok.error());
        Take(evaluator.Configure(config->alerts, config->silences));
        log::Info("alert rules reloaded").Kv("rules", static_cast<uint64_t>(config->alerts.size()));
      }
      for (const auto& r : batch) {
        const auto t0 = std::chrono::steady_clock::now();
        auto events = evaluator.Observe(r);
        stats.eval_ns += static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
        ++stats.results;
        diagnostics->Observe(r);
        Take(std::move(events));
      }
      batch.clear();
      const SystemTime now = clock.Now();
      const bool tick = now >= next_tick;
      if (tick) {
        Take(evaluator.Tick(now));
        diagnostics->Tick(now);
        if (options.on_incidents) options.on_incidents(diagnostics->OpenSnapshot());
        next_tick = now + options.tick;
      }
      Commit();
      bool done = false;
      {
        std::lock_guard lock(mu);
        done = stopping && queue.empty();
      }
      if (tick || done) PublishStates();  // walks every pair: once a second is enough
      if (done) break;
    }
  }

  std::chrono::steady_clock::time_point ToSteady(SystemTime t) const {
    const auto left = std::chrono::duration_cast<std::chrono::steady_clock::duration>(t - clock.Now());
    return std::chrono::steady_clock::now() + std::max(left, std::chrono::steady_clock::duration(0));
  }

  // Events and the state changes behind them into the pending write.
  void Take(std::vector<alerting::AlertEvent> events) {
    for (const auto& e : events) {
      ++stats.events;
      alerting::Message m = alerting::MessageFromEvent(e);
      Explain(e, m);
      const std::string json = alerting::MessageToJson(m);
      const std::vector<std::string> targets = TargetsOf(e);
      if (targets.empty()) {
        log::Warn("alert event has no notifier").Kv("alert", e.alert).Kv("monitor", e.monitor).Kv("kind", KindName(e.kind));
      }
      for (const std::string& notifier : targets) {
        storage::OutboxMessage out;
        out.notifier = notifier;
        out.alert = e.alert;
        out.monitor = e.monitor;
        out.kind = std::string(KindName(e.kind));
        out.message = json;
        out.created_at = e.at;
        out.next_attempt_at = e.at;
        pending.messages.push_back(std::move(out));
      }
      log::Info("alert " + std::string(KindName(e.kind)))
          .Kv("alert", e.alert)
          .Kv("monitor", e.monitor)
          .Kv("summary", e.summary)
          .Kv("notifiers", static_cast<uint64_t>(targets.size()));
    }
    for (auto& rec : evaluator.TakeChangedStates()) {
      Key key{rec.alert, rec.monitor};
      pending.removed.erase(key);
      pending.states[key] = std::move(rec);
    }
    for (auto& key : evaluator.TakeRemoved()) {
      pending.states.erase(key);
      pending.removed.insert(std::move(key));
    }
  }

  // Alerts carry the verdict (docs/alerts-and-diagnosis.md): a firing or reminder leads with the
  // diagnosis' one-line summary, the alert's own numbers and the evidence follow; a resolution
  // names the root cause.
  void Explain(const alerting::AlertEvent& e, alerting::Message& m) {
    if (!diagnostics) return;
    if (e.kind == alerting::AlertEvent::Kind::kFiring) diagnostics->AlertFired(e.monitor);
    const std::optional<probes::Diagnosis> d = diagnostics->Current(e.monitor);
    if (!d) return;
    m.verdict = std::string(probes::ToString(d->verdict));
    if (e.kind == alerting::AlertEvent::Kind::kResolved) {
      m.description.push_back("root cause: " + d->summary);
      return;
    }
    m.description.push_back(m.summary);
    m.summary = d->summary;
    for (auto& line : EvidenceLines(*d)) m.description.push_back(std::move(line));
    // An upstream's alert leads with its own diagnosis and says what it causes in front.
    for (const OpenIncident& inc : diagnostics->GatewayIncidents(e.monitor)) {
      m.description.push_back("causes an incident on gateway " + inc.monitor + " (" + inc.verdict + "): " + inc.summary);
    }
  }

  // Where an event goes: its rule's notifiers; for a pair whose rule is gone (removed while
  // the daemon was down), where its firing went.
  std::vector<std::string> TargetsOf(const alerting::AlertEvent& e) {
    std::vector<std::string> out;
    const auto known = [&](const std::string& name) {
      return std::any_of(config->notifiers.begin(), config->notifiers.end(),
                         [&](const auto& n) { return n.name == name; });
    };
    if (!e.notify.empty()) {
      for (const auto& n : e.notify) {
        if (known(n)) out.push_back(n);
      }
      return out;
    }
    std::vector<std::string> names;
    for (const auto& n : config->notifiers) names.push_back(n.name);
    std::set<std::string> found;
    if (auto active = alerts->ActiveAlerts(names)) {
      for (const auto& m : *active) {
        if (m.alert == e.alert && m.monitor == e.monitor) found.insert(m.notifier);
      }
    }
    for (const auto& name : names) {  // a firing not delivered yet still gets its resolved
      auto queued = alerts->PendingOf(name, storage::kMaxDueLimit);
      if (!queued) continue;
      for (const auto& m : *queued) {
        if (m.alert == e.alert && m.monitor == e.monitor) found.insert(m.notifier);
      }
    }
    for (const auto& m : pending.messages) {
      if (m.alert == e.alert && m.monitor == e.monitor) found.insert(m.notifier);
    }
    return {found.begin(), found.end()};
  }

  void Commit() {
    if (pending.empty()) return;
    std::vector<storage::AlertStateRecord> states;
    states.reserve(pending.states.size());
    for (const auto& [key, rec] : pending.states) states.push_back(rec);
    const std::vector<Key> removed(pending.removed.begin(), pending.removed.end());
    if (auto ok = alerts->Commit(states, removed, pending.messages); !ok) {
      if (stats.commit_errors.fetch_add(1) % 60 == 0) {
        log::Error("alert state commit failed, retrying").Kv("error", ok.error())
            .Kv("messages", static_cast<uint64_t>(pending.messages.size()));
      }
      return;
    }
    const bool notify = !pending.messages.empty();
    stats.messages += pending.messages.size();
    pending = PendingWrite{};
    if (notify && options.on_enqueued) options.on_enqueued();
  }

  // The snapshot for readers, and the changed states for the metrics hook.
  void PublishStates() {
    std::vector<alerting::AlertStatus> all = evaluator.Snapshot();
    std::vector<alerting::AlertStatus> changed;
    std::map<Key, const alerting::AlertStatus*> now;
    for (const auto& s : all) {
      Key key{s.alert, s.monitor};
      now[key] = &s;
      auto it = published.find(key);
      if (it == published.end() || it->second.state != s.state || it->second.silenced != s.silenced ||
          it->second.region_ratio != s.region_ratio) {
        changed.push_back(s);
      }
    }
    std::vector<Key> gone;
    for (const auto& [key, s] : published) {
      if (!now.contains(key)) gone.push_back(key);
    }
    if (changed.empty() && gone.empty()) return;
    for (const auto& key : gone) published.erase(key);
    for (const auto& s : changed) published[{s.alert, s.monitor}] = s;
    if (options.on_states) options.on_states(changed, gone);
    std::lock_guard lock(snapshot_mu);
    snapshot = std::move(all);
  }

  AlertPipelineOptions options;
  std::shared_ptr<const Config> config;  // pipeline thread
  const Clock& clock;
  AlertPipelineStats& stats;
  alerting::Evaluator evaluator;
  std::unique_ptr<storage::AlertStore> alerts;
  std::unique_ptr<storage::IncidentStore> incidents;
  std::unique_ptr<storage::SqliteStore> results;  // read-only: replay and diagnosis
  std::unique_ptr<Diagnostics> diagnostics;
  PendingWrite pending;
  std::map<Key, alerting::AlertStatus> published;

  std::mutex mu;  // guards queue, stopping, reconfigure
  std::condition_variable cv;
  std::deque<probes::ProbeResult> queue;
  std::chrono::steady_clock::time_point first_queued;  // when queue last became non-empty
  bool stopping = false;
  std::shared_ptr<const Config> reconfigure;

  mutable std::mutex snapshot_mu;  // guards snapshot
  std::vector<alerting::AlertStatus> snapshot;

  std::thread thread;
};

AlertPipeline::AlertPipeline() = default;

Result<std::unique_ptr<AlertPipeline>> AlertPipeline::Start(AlertPipelineOptions options,
                                                            std::shared_ptr<const Config> config,
                                                            const Clock& clock) {
  std::unique_ptr<AlertPipeline> p(new AlertPipeline());
  p->impl_ = std::make_unique<Impl>(std::move(options), std::move(config), clock, p->stats_);
  std::promise<Result<void>> opened;
  auto ready = opened.get_future();
  Impl* impl = p->impl_.get();
  impl->thread = std::thread([impl, &opened] {
    auto ok = impl->Open();  // the stores are bound to this thread
    const bool good = static_cast<bool>(ok);
    opened.set_value(std::move(ok));
    if (good) impl->Run();
    impl->diagnostics.reset();  // the stores are closed on their own thread
    impl->results.reset();
    impl->incidents.reset();
    impl->alerts.reset();
  });
  auto ok = ready.get();
  if (!ok) {
    impl->thread.join();
    return Error(ok.error());
  }
  return p;
}

AlertPipeline::~AlertPipeline() { Stop(); }

void AlertPipeline::Offer(const probes::ProbeResult& r) { impl_->Offer(r); }

void AlertPipeline::Reconfigure(std::shared_ptr<const Config> config) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->reconfigure = std::move(config);
  }
  impl_->cv.notify_one();
}

void AlertPipeline::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_one();
  impl_->thread.join();
}

std::vector<alerting::AlertStatus> AlertPipeline::Snapshot() const {
  std::lock_guard lock(impl_->snapshot_mu);
  return impl_->snapshot;
}

}  // namespace gatewatch::daemon
