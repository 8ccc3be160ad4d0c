#pragma once
// Internal to alerting/: included only by alerting/*.cc. Delivery::Impl, the delivery thread's
// state, and its Lanes: the thread's loop, ordering, backoff and bookkeeping are in
// alerting/delivery.cc, the Alertmanager re-posts in alerting/alertmanager_repost.cc.

#include <curl/curl.h>

#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "alerting/delivery.h"
#include "alerting/http_post_request.h"
#include "alerting/notifier.h"
#include "storage/alert_store.h"

namespace gatewatch::alerting {

namespace internal {

using PairKey = std::pair<std::string, std::string>;  // alert, monitor

// One notifier's ordered line of messages, and (Alertmanager) its active alerts. Delivery
// thread only.
struct Lane {
  std::string name;
  std::optional<NotifierConfig> config;  // nullopt: not configured (its messages are dropped)
  std::unique_ptr<Notifier> notifier;
  // A prefix of this notifier's pending messages, lowest id first; only this thread changes
  // pending rows, and new rows get higher ids, so the prefix stays exact.
  std::deque<storage::OutboxMessage> queue;
  bool stale = true;  // the outbox may hold pending messages beyond `queue`
  std::unique_ptr<Request> in_flight;
  SteadyTime next_send{};     // min_interval after the last request started
  SteadyTime paused_until{};  // after a database error
  // Alertmanager.
  std::map<PairKey, Message> active;
  SteadyTime next_repost{};
  std::vector<PairKey> round;  // the re-post round in progress
  size_t round_pos = 0;
  bool refresh_failing = false;

  bool IsAlertmanager() const {
    return config.has_value() && config->type == NotifierType::kAlertmanager;
  }
};

}  // namespace internal

struct Delivery::Impl {
  using Lane = internal::Lane;
  using OutboxMessage = storage::OutboxMessage;
  using RealSteady = internal::RealSteady;
  using RetryCause = storage::RetryCause;

  Impl(DeliveryOptions o, const Clock& c) : options(std::move(o)), clock(c) {}
  ~Impl() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  void Run(std::promise<Result<void>>& started);
  void Loop();
  void ApplyConfig(std::vector<NotifierConfig> configs);
  void LoadActive(Lane& lane);
  void Refresh();
  bool Refill(Lane& lane);
  void Pump(Lane& lane);
  bool Step(Lane& lane);
  void StartRequest(Lane& lane, const Payload& payload, std::optional<OutboxMessage> message,
                    size_t reposted);
  void MaybeRepost(Lane& lane);
  void Perform();
  void OnSent(Lane& lane, const OutboxMessage& m, const SendResult& res);
  void OnReposted(Lane& lane, size_t alerts, const SendResult& res);
  bool Delivered(Lane& lane, const OutboxMessage& m);
  bool Retry(Lane& lane, const OutboxMessage& m, Duration delay, RetryCause cause,
             const std::string& reason, const char* word);
  bool GiveUp(Lane& lane, const OutboxMessage& m, const char* word, const std::string& reason);
  void Track(Lane& lane, const OutboxMessage& m, bool delivered);
  void PopFront(Lane& lane, int64_t id);
  // An alertmanager lane's re-post interval: the notifier's `repost`, else the option.
  Duration RepostOf(const Lane& lane) const {
    return lane.config && lane.config->repost ? *lane.config->repost : options.alertmanager_repost;
  }
  void MaybePrune();
  void Poll(bool stopping, RealSteady::time_point deadline);
  void AbandonInFlight();
  Duration Backoff(int failures);
  Lane& LaneFor(const std::string& name);
  void StoreFailed(Lane* lane, const char* op, const std::string& error);
  void Count(const std::string& notifier, const char* word, uint64_t n = 1);
  void ObserveLatency(const std::string& notifier, double seconds);
  void Print(const std::string& text);

  DeliveryOptions options;
  const Clock& clock;
  CURLM* multi = nullptr;  // created before the thread, freed after it; Wake() uses it
  std::thread thread;

  std::atomic<bool> woken{false};
  std::mutex control_mu;  // guards new_config, stop, stop_deadline
  std::optional<std::vector<NotifierConfig>> new_config;
  bool stop = false;
  RealSteady::time_point stop_deadline{};

  mutable std::mutex stats_mu;  // guards stats
  std::map<std::string, NotifierStats> stats;
  std::atomic<int64_t> pending{0};

  // Delivery thread only.
  std::unique_ptr<storage::AlertStore> store;
  std::map<std::string, Lane> lanes;
  std::mt19937_64 rng{std::random_device{}()};
  SteadyTime next_refresh{}, next_prune{};
  int in_flight = 0;
  bool store_failing = false;  // one log line per streak of database errors
};

}  // namespace gatewatch::alerting
