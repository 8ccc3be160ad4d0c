#include "alerting/delivery.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "alerting/delivery_thread.h"
#include "alerting/http_post_request.h"
#include "alerting/message_json.h"
#include "probes/log.h"
#include "storage/alert_store.h"

namespace gatewatch::alerting {

namespace {

using namespace std::chrono_literals;
using internal::Finish;
using internal::GlobalInit;
using internal::Lane;
using internal::NewRequest;
using internal::RealSteady;
using internal::Reason;
using internal::Request;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using storage::OutboxMessage;
using storage::RetryCause;

constexpr int kQueueFill = 32;  // pending messages of one lane held in memory
constexpr Duration kPoll = 1s;  // looks at the outbox at least this often
constexpr Duration kPruneEvery = 1min;
constexpr int kPruneBatch = 500;
constexpr Duration kMinRetryAfter = 100ms;  // "Retry-After: 0" must not become a hot loop
constexpr Duration kStorePause = 1s;        // a lane waits after a failed database call
constexpr int kMaxTurns = 100;              // messages one lane handles per loop turn
constexpr double kJitter = 0.2;             // backoff * [0.8, 1.2]
// The failure backoff stops growing here, whatever max_backoff says: a failing lane's oldest
// message is tried again at most this long after a failed attempt, so a receiver that recovers
// hears from its lane within this time (delivery.h: "Recovery").
constexpr Duration kMaxFailureBackoff = 30s;

}  // namespace

// --- The delivery thread -------------------------------------------------------------------

void Delivery::Impl::Run(std::promise<Result<void>>& started) {
  auto opened = storage::AlertStore::Open(options.db_path, clock);
  if (!opened) {
    started.set_value(Error("delivery: " + opened.error()));
    return;
  }
  store = std::move(*opened);
  ApplyConfig(std::move(options.notifiers));
  Refresh();  // Pending() is right from the start
  started.set_value({});
  Loop();
  AbandonInFlight();
  store.reset();  // closed on its own thread
}

void Delivery::Impl::Loop() {
  for (;;) {
    std::optional<std::vector<NotifierConfig>> configs;
    bool stopping = false;
    RealSteady::time_point deadline{};
    {
      std::lock_guard lock(control_mu);
      configs.swap(new_config);
      stopping = stop;
      deadline = stop_deadline;
    }
    if (configs) ApplyConfig(std::move(*configs));
    if (stopping) {
      if (in_flight == 0 || RealSteady::now() >= deadline) return;
    } else {
      // Clear the flag before looking, so a commit during the look wakes the next turn.
      if (woken.exchange(false) || clock.Steady() >= next_refresh) Refresh();
      for (auto& [name, lane] : lanes) Pump(lane);
      MaybePrune();
      std::erase_if(lanes, [](const auto& entry) {
        const Lane& l = entry.second;
        return !l.config && !l.in_flight && l.queue.empty() && !l.stale;
      });
    }
    Poll(stopping, deadline);
    Perform();
  }
}

void Delivery::Impl::ApplyConfig(std::vector<NotifierConfig> configs) {
  std::set<std::string> names;
  for (NotifierConfig& c : configs) {
    names.insert(c.name);
    Lane& lane = LaneFor(c.name);
    const bool was_alertmanager = lane.IsAlertmanager();
    lane.notifier = MakeNotifier(c);
    lane.config = std::move(c);
    lane.stale = true;
    if (lane.IsAlertmanager() && !was_alertmanager) LoadActive(lane);
    if (!lane.IsAlertmanager()) {
      lane.active.clear();
      lane.round.clear();
      lane.round_pos = 0;
    }
    std::lock_guard lock(stats_mu);
    stats[lane.name];  // listed from now on, with no results yet
  }
  for (auto& [name, lane] : lanes) {
    if (names.count(name) != 0) continue;
    lane.config.reset();  // a request in flight finishes; the rest is dropped
    lane.notifier.reset();
    lane.active.clear();
    lane.round.clear();
    lane.round_pos = 0;
  }
}

void Delivery::Impl::Refresh() {
  next_refresh = clock.Steady() + kPoll;
  auto counts = store->PendingByNotifier();
  if (!counts) {
    StoreFailed(nullptr, "pending query", counts.error());
    return;
  }
  if (store_failing) log::Info("delivery: database works again");
  store_failing = false;
  int64_t total = 0;
  for (const auto& [name, n] : *counts) {
    total += n;
    Lane& lane = LaneFor(name);
    if (n > static_cast<int64_t>(lane.queue.size())) lane.stale = true;
  }
  pending.store(total);
}

bool Delivery::Impl::Refill(Lane& lane) {
  auto rows = store->PendingOf(lane.name, kQueueFill);
  if (!rows) {
    StoreFailed(&lane, "pending query", rows.error());
    return false;
  }
  // Rows already held (the queue is a prefix) are skipped; the rest is appended in order.
  const int64_t last = lane.queue.empty() ? 0 : lane.queue.back().id;
  for (OutboxMessage& m : *rows) {
    if (m.id > last) lane.queue.push_back(std::move(m));
  }
  lane.stale = static_cast<int>(rows->size()) == kQueueFill;
  return true;
}

void Delivery::Impl::Pump(Lane& lane) {
  if (clock.Steady() < lane.paused_until) return;
  for (int turn = 0; turn < kMaxTurns && !lane.in_flight; ++turn) {
    if (lane.queue.empty() && lane.stale && !Refill(lane)) return;
    if (lane.queue.empty() || !Step(lane)) break;
  }
  if (!lane.in_flight && lane.queue.empty() && !lane.stale) MaybeRepost(lane);
}

// Handles the lane's oldest message: gives it up, leaves it waiting, prints it or starts its
// request. True when it left the lane and the next one may be looked at now.
bool Delivery::Impl::Step(Lane& lane) {
  const SystemTime now = clock.Now();
  const SteadyTime steady = clock.Steady();
  {
    const OutboxMessage& head = lane.queue.front();
    const bool expired = lane.config && now - head.created_at > lane.config->max_age;
    if (lane.config && !expired && (head.next_attempt_at > now || steady < lane.next_send)) {
      return false;  // the common case on every turn: nothing to do yet, nothing copied
    }
  }
  // A copy: the transitions below pop the queue's front.
  const OutboxMessage head = lane.queue.front();
  if (!lane.config) {
    return GiveUp(lane, head, "dropped", "unknown notifier (not in the config)");
  }
  if (now - head.created_at > lane.config->max_age) {
    std::string reason = "older than max_age " + FormatDuration(lane.config->max_age);
    if (!head.last_error.empty()) reason += "; last error: " + head.last_error;
    return GiveUp(lane, head, "gave_up", reason);
  }
  auto message = MessageFromJson(head.message);
  if (!message) return GiveUp(lane, head, "rejected", message.error());
  const Payload payload = lane.notifier->Build(*message);
  lane.next_send = steady + lane.config->EffectiveMinInterval();
  if (lane.config->type == NotifierType::kConsole) {
    Print(payload.body);
    return Delivered(lane, head);
  }
  StartRequest(lane, payload, head, 0);
  return false;
}

void Delivery::Impl::StartRequest(Lane& lane, const Payload& payload,
                                  std::optional<OutboxMessage> message, size_t reposted) {
  auto req = NewRequest(*lane.config, payload, lane.config->timeout);
  CURLMcode added = CURLM_OK;
  if (req) {
    (*req)->lane = lane.name;
    (*req)->message = message;
    (*req)->reposted = reposted;
    added = curl_multi_add_handle(multi, (*req)->easy);
  }
  if (!req || added != CURLM_OK) {  // out of memory or handles: a failed attempt
    SendResult failed;
    failed.error =
        req ? std::string("cannot start a request: ") + curl_multi_strerror(added) : req.error();
    if (message) {
      OnSent(lane, *message, failed);
    } else {
      OnReposted(lane, reposted, failed);
    }
    return;
  }
  lane.in_flight = std::move(*req);
  ++in_flight;
}

void Delivery::Impl::Perform() {
  int running = 0;
  curl_multi_perform(multi, &running);
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    const CURLcode code = msg->data.result;  // read before the handle is removed
    Request* raw = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
    curl_multi_remove_handle(multi, easy);
    --in_flight;
    Lane& lane = lanes.at(raw->lane);  // a lane with a request in flight is never erased
    std::unique_ptr<Request> req = std::move(lane.in_flight);
    const SendResult res = Finish(*req, code, clock.Now());
    if (req->message) {
      OnSent(lane, *req->message, res);
    } else {
      OnReposted(lane, req->reposted, res);
    }
  }
}

void Delivery::Impl::OnSent(Lane& lane, const OutboxMessage& m, const SendResult& res) {
  switch (Classify(res)) {
    case SendVerdict::kDelivered:
      Delivered(lane, m);
      return;
    case SendVerdict::kRetry: {
      Duration delay = Backoff(m.failures);
      // A 503 that says when to come back is not asked sooner.
      if (res.retry_after) delay = std::max(delay, std::min(*res.retry_after, options.max_backoff));
      Retry(lane, m, delay, RetryCause::kFailure, Reason(res), "retry");
      return;
    }
    case SendVerdict::kRateLimited: {
      // An appointment, kept to the millisecond: no jitter, and the failure backoff stays.
      const Duration asked = res.retry_after ? *res.retry_after : Backoff(m.failures);
      Retry(lane, m,
            std::clamp(asked, kMinRetryAfter, std::max(options.max_backoff, kMinRetryAfter)),
            RetryCause::kRateLimited, Reason(res), "rate_limited");
      return;
    }
    case SendVerdict::kRejected:
      GiveUp(lane, m, "rejected", Reason(res));
      return;
  }
}

bool Delivery::Impl::Delivered(Lane& lane, const OutboxMessage& m) {
  const SystemTime now = clock.Now();
  if (auto r = store->MarkDelivered(m.id, now); !r) {
    // The receiver has it; unrecorded, it will be sent again (at-least-once).
    StoreFailed(&lane, "mark delivered", r.error());
    return false;
  }
  PopFront(lane, m.id);
  Count(lane.name, "delivered");
  ObserveLatency(lane.name, std::chrono::duration<double>(now - m.created_at).count());
  if (lane.IsAlertmanager()) Track(lane, m, true);
  if (m.attempts > 0) {
    log::Debug("notification delivered after retries")
        .Kv("notifier", lane.name)
        .Kv("id", m.id)
        .Kv("attempts", m.attempts + 1);
  }
  return true;
}

bool Delivery::Impl::Retry(Lane& lane, const OutboxMessage& m, Duration delay, RetryCause cause,
                           const std::string& reason, const char* word) {
  const SystemTime next = clock.Now() + delay;
  if (auto r = store->Reschedule(m.id, next, reason, cause); !r) {
    StoreFailed(&lane, "reschedule", r.error());
    return false;
  }
  Count(lane.name, word);
  if (m.attempts == 0) {
    log::Warn("notification failed; will retry")
        .Kv("notifier", lane.name)
        .Kv("id", m.id)
        .Kv("alert", m.alert)
        .Kv("monitor", m.monitor)
        .Kv("kind", m.kind)
        .Kv("error", reason)
        .Kv("retry_in", FormatDuration(delay));
  }
  if (!lane.queue.empty() && lane.queue.front().id == m.id) {
    OutboxMessage& head = lane.queue.front();
    head.attempts = m.attempts + 1;
    head.failures = m.failures + (cause == RetryCause::kFailure ? 1 : 0);
    head.next_attempt_at = next;
    head.last_error = reason;
  }
  return true;
}

bool Delivery::Impl::GiveUp(Lane& lane, const OutboxMessage& m, const char* word,
                            const std::string& reason) {
  if (auto r = store->GiveUp(m.id, clock.Now(), reason); !r) {
    StoreFailed(&lane, "give up", r.error());
    return false;
  }
  PopFront(lane, m.id);
  Count(lane.name, word);
  log::Error("notification given up")
      .Kv("notifier", lane.name)
      .Kv("id", m.id)
      .Kv("alert", m.alert)
      .Kv("monitor", m.monitor)
      .Kv("kind", m.kind)
      .Kv("result", word)
      .Kv("attempts", m.attempts)
      .Kv("reason", reason);
  if (lane.IsAlertmanager()) Track(lane, m, false);
  return true;
}

void Delivery::Impl::PopFront(Lane& lane, int64_t id) {
  if (!lane.queue.empty() && lane.queue.front().id == id) lane.queue.pop_front();
  int64_t n = pending.load();
  while (n > 0 && !pending.compare_exchange_weak(n, n - 1)) {
  }
}

void Delivery::Impl::MaybePrune() {
  const SteadyTime steady = clock.Steady();
  if (steady < next_prune) return;
  auto n = store->PruneDelivered(clock.Now() - options.prune_after, kPruneBatch);
  if (!n) {
    StoreFailed(nullptr, "prune", n.error());
    next_prune = steady + kPruneEvery;
    return;
  }
  // A full batch means more is waiting: the next turn continues, a little at a time.
  next_prune = *n == kPruneBatch ? steady : steady + kPruneEvery;
}

void Delivery::Impl::Poll(bool stopping, RealSteady::time_point deadline) {
  const SteadyTime steady = clock.Steady();
  const SystemTime now = clock.Now();
  SteadyTime until = stopping ? steady + kPoll : std::min(next_refresh, next_prune);
  if (!stopping) {
    for (const auto& [name, lane] : lanes) {
      if (lane.in_flight) continue;  // curl wakes the poll for its own deadlines
      SteadyTime due = SteadyTime::max();
      if (!lane.queue.empty()) {
        const OutboxMessage& head = lane.queue.front();
        if (!lane.config) {
          due = steady;
        } else {
          const auto wait = std::max(head.next_attempt_at - now, SystemTime::duration(0));
          due = std::max(steady + duration_cast<SteadyTime::duration>(wait), lane.next_send);
          const auto expiry = head.created_at + lane.config->max_age - now;
          due = std::min(due, steady + duration_cast<SteadyTime::duration>(
                                           std::max(expiry, SystemTime::duration(0))));
        }
      } else if (lane.stale) {
        due = steady;
      } else if (lane.IsAlertmanager() && !lane.active.empty()) {
        due = std::max(lane.next_repost, lane.next_send);
      }
      until = std::min(until, std::max(due, lane.paused_until));
    }
  }
  // Rounded up: a wait truncated to 0 ms would spin until the due time.
  auto wait = std::clamp(std::chrono::ceil<milliseconds>(until - steady), milliseconds(0), kPoll);
  if (stopping) {
    wait = std::min(
        wait, std::max(milliseconds(0), duration_cast<milliseconds>(deadline - RealSteady::now())));
  }
  curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait.count()), nullptr);
}

void Delivery::Impl::AbandonInFlight() {
  int abandoned = 0;
  for (auto& [name, lane] : lanes) {
    if (!lane.in_flight) continue;
    curl_multi_remove_handle(multi, lane.in_flight->easy);
    lane.in_flight.reset();
    ++abandoned;
  }
  in_flight = 0;
  if (abandoned > 0) {
    log::Warn("delivery stopped with requests in flight; their messages stay pending")
        .Kv("requests", abandoned);
  }
}

Duration Delivery::Impl::Backoff(int failures) {
  const double base = static_cast<double>(options.base_backoff.count());
  const double cap = static_cast<double>(std::min(options.max_backoff, kMaxFailureBackoff).count());
  const double grown = std::min(cap, base * std::pow(2.0, std::clamp(failures, 0, 40)));
  std::uniform_real_distribution<double> jitter(1 - kJitter, 1 + kJitter);
  const double ms = std::min(cap, grown * jitter(rng));
  return Duration(std::max<int64_t>(1, static_cast<int64_t>(ms)));
}

Lane& Delivery::Impl::LaneFor(const std::string& name) {
  auto [it, inserted] = lanes.try_emplace(name);
  if (inserted) it->second.name = name;
  return it->second;
}

void Delivery::Impl::StoreFailed(Lane* lane, const char* op, const std::string& error) {
  if (!store_failing) {
    log::Error("delivery: database error; retrying").Kv("op", op).Kv("error", error);
  }
  store_failing = true;
  if (lane == nullptr) return;
  // The lane's view may be off now: read it again after a pause (no hot loop on a broken
  // database; a message whose delivery was not recorded goes again: at-least-once).
  lane->queue.clear();
  lane->stale = true;
  lane->paused_until = clock.Steady() + kStorePause;
}

void Delivery::Impl::Count(const std::string& notifier, const char* word, uint64_t n) {
  std::lock_guard lock(stats_mu);
  stats[notifier].results[word] += n;
}

void Delivery::Impl::ObserveLatency(const std::string& notifier, double seconds) {
  seconds = std::max(0.0, seconds);
  size_t i = 0;
  while (i < kDeliveryLatencyBuckets.size() && seconds > kDeliveryLatencyBuckets[i]) ++i;
  std::lock_guard lock(stats_mu);
  NotifierStats& s = stats[notifier];
  ++s.latency_buckets[i];
  s.latency_sum_seconds += seconds;
  ++s.latency_count;
}

void Delivery::Impl::Print(const std::string& text) {
  if (options.console_out) {
    options.console_out(text);
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// --- Delivery ------------------------------------------------------------------------------

Delivery::Delivery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Delivery::~Delivery() { Stop(Duration(0)); }

Result<std::unique_ptr<Delivery>> Delivery::Start(DeliveryOptions options, const Clock& clock) {
  if (options.base_backoff <= Duration(0) || options.max_backoff < options.base_backoff) {
    return Error("delivery: need 0 < base_backoff <= max_backoff");
  }
  if (options.alertmanager_repost <= Duration(0) || options.prune_after <= Duration(0)) {
    return Error("delivery: alertmanager_repost and prune_after must be positive");
  }
  std::set<std::string> names;
  for (const NotifierConfig& c : options.notifiers) {
    if (!names.insert(c.name).second) {
      return Error("delivery: notifier name \"" + c.name + "\" is used twice");
    }
  }
  GlobalInit();
  auto impl = std::make_unique<Impl>(std::move(options), clock);
  impl->multi = curl_multi_init();
  if (impl->multi == nullptr) return Error("delivery: cannot create a curl multi handle");
  std::promise<Result<void>> started;
  auto result = started.get_future();
  Impl* raw = impl.get();
  // The thread owns the promise: set_value() may still touch it after get() returned here.
  impl->thread = std::thread([raw, p = std::move(started)]() mutable { raw->Run(p); });
  Result<void> r = result.get();
  if (!r) {
    impl->thread.join();
    return Error(r.error());
  }
  return std::unique_ptr<Delivery>(new Delivery(std::move(impl)));
}

void Delivery::Wake() {
  impl_->woken.store(true);
  curl_multi_wakeup(impl_->multi);
}

void Delivery::Reconfigure(std::vector<NotifierConfig> notifiers) {
  {
    std::lock_guard lock(impl_->control_mu);
    impl_->new_config = std::move(notifiers);
  }
  curl_multi_wakeup(impl_->multi);
}

void Delivery::Stop(Duration grace) {
  {
    std::lock_guard lock(impl_->control_mu);
    if (!impl_->stop) {
      impl_->stop = true;
      impl_->stop_deadline = RealSteady::now() + grace;
    }
  }
  curl_multi_wakeup(impl_->multi);
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::map<std::string, NotifierStats> Delivery::Stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

int64_t Delivery::Pending() const { return impl_->pending.load(); }

}  // namespace gatewatch::alerting
