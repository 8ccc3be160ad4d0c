#pragma once
// Notification delivery (docs/alerts-and-diagnosis.md, docs/reliability.md): the delivery thread
// takes messages from the SQLite outbox (storage/alert_store.h), renders each with its notifier
// (alerting/notifier.h) and POSTs it with libcurl, at least once, in order per notifier.
//
//   outcome of one POST               what happens to the message            counted as
//   2xx                               delivered (recorded)                   "delivered"
//   5xx, 408, network error, timeout  a failure: failures + 1, retried       "retry"
//                                     after base * 2^(failures before it),
//                                     +-20 % jitter, capped at
//                                     min(max_backoff, 30 s); a 5xx
//                                     Retry-After is a lower bound (at most
//                                     max_backoff)
//   429                               not a failure (failures unchanged):    "rate_limited"
//                                     retried exactly when Retry-After
//                                     (seconds or HTTP-date) or Discord's
//                                     body retry_after says, whichever is
//                                     later, with no jitter, at least
//                                     100 ms, at most max_backoff; when
//                                     neither says, after the failure
//                                     backoff of the failures so far
//   other 1xx/3xx/4xx                 given up: permanent (redirects are     "rejected"
//                                     not followed; a moved webhook is a
//                                     config error)
//   message older than max_age        given up before sending                "gave_up"
//   notifier not in the config        given up ("unknown notifier")          "dropped"
//   stored message is not valid JSON  given up                               "rejected"
// OutboxMessage::attempts counts every attempt that did not deliver (failures and 429s);
// OutboxMessage::failures only the failures, the exponent of the backoff.
// Alertmanager re-posts (below) count per alert: "refreshed" / "refresh_failed".
// Give-ups are logged at error level, the first failure of a message at warn level; no
// log line, metric or stored last_error ever contains a notifier url or secret (docs/reliability.md).
//
// Order and rate, per notifier (a "lane"): its messages go out strictly in outbox id order,
// one request at a time, so a firing never arrives after its resolved; while the oldest
// pending message waits for its retry, the later ones wait too. Lanes are independent: all
// requests run concurrently on one curl multi handle, each with its own overall deadline
// (NotifierConfig::timeout), so a slow or dead receiver delays only its own lane. A lane
// starts at most one request per min_interval (NotifierConfig::EffectiveMinInterval()).
//
// Recovery: only a lane's oldest message is ever tried, and its failure backoff never exceeds
// 30 s, so while a receiver fails, its lane tries again at most 30 s after each failed attempt
// ended. A receiver that recovers gets its next POST within 30 s of its last failed answer
// (for a hanging receiver: of the request's timeout), however long it failed and however many
// 429s it sent before; only its own last answer can ask for longer (a Retry-After, honoured
// up to max_backoff), or a min_interval above 30 s.
//
// Alertmanager (type "alertmanager"): Alertmanager forgets an alert at its endsAt unless it is
// re-posted. After a firing or reminder for (alert, monitor) is delivered, the pair is active
// on that lane until its resolved is delivered (or a message of the pair is given up). Every
// alertmanager_repost the lane re-posts all its active alerts, rebuilt with Message::at = now
// (so endsAt = now + 5 min), up to 256 alerts per POST (Alertmanager takes an array). Re-posts
// are not outbox rows: a failed one is simply repeated at the next tick. They wait while the
// lane has pending messages (those carry newer news and share the ordered lane). The active
// set survives restarts: Start() rebuilds it from the delivered history
// (AlertStore::ActiveAlerts), and re-posts it at once.
//
// Durability: a message is marked delivered only after its 2xx; a crash (or Stop() abandoning
// the request) before that leaves it pending for the next start: at-least-once (docs/reliability.md).
// Delivered and given-up rows older than prune_after are pruned in small batches. Keep
// prune_after longer than the longest alert `repeat`: the restart rebuild of the Alertmanager
// active set reads the newest delivered firing or reminder of each pair.
//
// Threads: Start() spawns the delivery thread, which opens its own AlertStore on db_path
// (thread-bound) and owns every curl handle. Start, Reconfigure and Stop are called by one
// owner thread (the daemon's main thread); Wake, Stats and Pending from any thread.
// A Delivery never blocks its callers on the network or the database, except Start (opening
// the database) and Stop (up to `grace` plus the current database call).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "alerting/config.h"
#include "alerting/notifier.h"
#include "probes/clock.h"
#include "probes/duration.h"
#include "probes/result.h"

namespace gatewatch::alerting {

// --- One request -------------------------------------------------------------------------

// What one POST came to.
struct SendResult {
  int http_status = 0;                  // 0 = no HTTP answer (see error)
  std::optional<Duration> retry_after;  // from a Retry-After header, or Discord's 429 body
  std::string body_excerpt;  // start of the response body (<= 200 bytes), printable, with the
                             // notifier's url and secret replaced by "<redacted>"
  std::string error;         // "" when an HTTP answer arrived; else a short reason such as
                             // "timeout after 10s" (never the url)
  Duration elapsed{0};
};

enum class SendVerdict : uint8_t { kDelivered, kRetry, kRateLimited, kRejected };
// The table above: 2xx delivered; error, 5xx and 408 retry; 429 rate-limited; else rejected.
SendVerdict Classify(const SendResult& r);

// One blocking HTTP POST of `payload` to config.url + payload.url_suffix with the payload's
// Content-Type and headers, ending by `timeout` whatever the receiver does (libcurl
// CURLOPT_TIMEOUT_MS; no signals, no proxy from the environment, redirects not followed,
// http and https only). For `gatewatch notify-test` and the delivery thread. Thread-safe.
// A console notifier has nothing to send to: an error result (Delivery prints those).
SendResult Send(const NotifierConfig& config, const Payload& payload, Duration timeout);

// A Retry-After value: delay-seconds ("120") or an IMF-fixdate HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", relative to `now`; a past date is 0). nullopt when it is
// neither.
std::optional<Duration> ParseRetryAfter(std::string_view value, SystemTime now);
// Discord's 429 body {"retry_after": 1.5, ...} (seconds, may be fractional), rounded up to
// milliseconds; nullopt when the body is not such an object.
std::optional<Duration> DiscordRetryAfter(std::string_view body);

// --- The delivery thread ------------------------------------------------------------------

// Upper bounds (seconds) of the delivery latency histogram: outbox creation to recorded 2xx,
// so retries and rate limits show.
inline constexpr std::array<double, 12> kDeliveryLatencyBuckets = {0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                                                   5,    10,  30,   60,  300, 1800};

struct NotifierStats {
  // Result word (table above) -> count; a word appears once it happened.
  std::map<std::string, uint64_t> results;
  // Successful deliveries by latency: latency_buckets[i] counts those <= bucket i's bound and
  // above the previous one (not cumulative, as prometheus-cpp's Histogram::ObserveMultiple
  // takes them); the last element counts those above every bound (+Inf).
  std::array<uint64_t, kDeliveryLatencyBuckets.size() + 1> latency_buckets{};
  double latency_sum_seconds = 0;
  uint64_t latency_count = 0;
};

struct DeliveryOptions {
  std::string db_path;                    // the daemon's database (AlertStore::Open migrates it)
  std::vector<NotifierConfig> notifiers;  // validated configs; names are unique
  Duration base_backoff = std::chrono::seconds(1);
  // The longest wait a receiver's Retry-After can impose; the failure backoff stops growing at
  // min(max_backoff, 30 s) (the table above).
  Duration max_backoff = std::chrono::minutes(5);
  Duration alertmanager_repost = std::chrono::seconds(60);
  Duration prune_after = std::chrono::hours(24 * 7);  // audit retention of finished rows
  // Where console notifiers write their text; default: stdout. Called on the delivery thread.
  std::function<void(std::string_view text)> console_out;
};

class Delivery {
 public:
  // Opens the database on a new delivery thread and starts delivering. Fails (with no thread
  // left behind) when the database cannot be opened. `clock` stamps outbox times and measures
  // min_interval and re-post intervals; it must outlive the Delivery.
  static Result<std::unique_ptr<Delivery>> Start(DeliveryOptions options, const Clock& clock);

  ~Delivery();  // Stop(0s) when still running.
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // New messages were committed: look at the outbox now instead of at the next poll (1 s).
  // Cheap; callable from any thread.
  void Wake();

  // Replaces the notifier configs (SIGHUP). A request in flight finishes with the config it
  // started with. Pending messages of a notifier that is no longer configured are given up
  // ("dropped"), so call this before the pipeline enqueues for a newly added notifier.
  void Reconfigure(std::vector<NotifierConfig> notifiers);

  // Stops the thread: no new requests; requests in flight get `grace` to finish, then are
  // abandoned (their messages stay pending in SQLite for the next start). Idempotent.
  void Stop(Duration grace);

  // Per notifier name (configured now or seen with pending messages since the start).
  std::map<std::string, NotifierStats> Stats() const;
  // Pending outbox messages (gatewatch_outbox_pending), as of the last look at the outbox.
  int64_t Pending() const;

 private:
  struct Impl;  // the thread's state, in alerting/delivery_thread.h
  explicit Delivery(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatewatch::alerting
