#pragma once
// Alert rule evaluation (docs/alerts-and-diagnosis.md): for each alert x matching
// monitor, a state machine ok -> pending -> firing -> resolving -> ok (the values of
// gatewatch_alert_state), fed with confirmed probe results.
//
//   status_rate  per region, the share of confirmed results whose status is in `codes`
//                (or in the gateway_error class) over the sliding `window`; a region is
//                above when it has >= min_samples results and share > above. Bad: at
//                least min_regions regions above. While firing, a region still counts
//                against resolution while its share is >= below (hysteresis).
//   down         per region, consecutive confirmed failures >= after.
//   latency      per region, the percentile of a phase over the window (fixed log
//                buckets, upper bound) > above; hysteresis with below.
//   cert_expiry  the earliest certificate expiry seen is within `within` of now.
//
// Pending lasts `for`; resolving lasts `resolve_for` (back to firing if it turns bad
// again, without a new message). A firing alert is reminded every `repeat`. Silences
// mute notifications only: state is tracked as usual; a firing that was never notified
// (silenced) is notified when the silence ends, and its resolution is notified only if
// its firing was. Inside a silence a 503 with Retry-After is excused, not counted.
//
// Incremental: a result costs O(1) (time-bucketed window counts with running totals,
// no re-scan) plus the pair's regions; Tick() visits only pairs that are not ok.
//
// Thread-compatible: one thread owns an Evaluator (the daemon's pipeline).

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "alerting/config.h"
#include "probes/clock.h"
#include "probes/probe_result.h"
#include "storage/alert_store.h"

namespace gatewatch::alerting {

enum class AlertState : uint8_t { kOk = 0, kPending = 1, kFiring = 2, kResolving = 3 };
std::string_view ToString(AlertState s);

// A notification the evaluator asks for.
struct AlertEvent {
  enum class Kind : uint8_t { kFiring, kResolved, kReminder };
  Kind kind = Kind::kFiring;
  std::string alert;
  std::string monitor;
  std::string severity;
  std::vector<std::string> notify;
  SystemTime at{};            // when the transition happened
  SystemTime firing_since{};  // when the alert started firing
  AlertKind rule_kind = AlertKind::kStatusRate;
  double ratio = 0;           // worst region's share (status_rate), seconds (latency), ...
  std::string value;          // the measured value as text unless it is a share (see Message)
  int64_t samples = 0;        // results in the window of the worst region
  std::vector<std::string> regions_above;  // regions past the threshold
  std::map<std::string, int64_t> emitters;  // "nginx/upstream_timeout" -> count, this episode
  std::string summary;  // one line for humans: what, how bad, where
};

std::string_view ToString(AlertEvent::Kind k);

// Current state of one alert x monitor, for metrics, the API and the status page.
struct AlertStatus {
  std::string alert;
  std::string monitor;
  AlertState state = AlertState::kOk;
  SystemTime since{};
  bool silenced = false;
  double ratio = 0;
  std::map<std::string, double> region_ratio;  // gatewatch_alert_ratio{alert,monitor,region}
};

class Evaluator {
 public:
  explicit Evaluator(const Clock& clock);
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Replaces the rules and silences. Unchanged alert x monitor pairs keep their state and
  // windows; a pair that no longer exists and had notified a firing is resolved (returned).
  std::vector<AlertEvent> Configure(std::vector<AlertRule> rules, std::vector<SilenceConfig> silences);

  // A probe result: unconfirmed attempts are ignored (docs/probes.md).
  std::vector<AlertEvent> Observe(const probes::ProbeResult& r);

  // Time-driven transitions (for, resolve_for, repeat, window expiry, silence ends).
  std::vector<AlertEvent> Tick(SystemTime now);

  std::vector<AlertStatus> Snapshot() const;

  // --- Persistence (docs/reliability.md: state survives restarts) ---------------------------
  // Start-up, after Configure(): takes the stored states. A stored pair that still exists
  // resumes its state (a firing one is not notified again before `repeat`); one that no
  // longer exists (alert or monitor removed while the daemon was down) is dropped and, if
  // its firing was notified, resolved (returned; `notify` is empty since its rule is gone:
  // the caller sends it where the firing went).
  std::vector<AlertEvent> Restore(const std::vector<storage::AlertStateRecord>& records);
  // Start-up: a stored result fed into the windows without any transition (replay the last
  // `window` in time order), then EvaluateAll(now) decides once on the rebuilt windows. A
  // pair restored in a state other than ok makes no transition before its first live result
  // (the last second before a crash may be missing from the stored results).
  void Replay(const probes::ProbeResult& r);
  std::vector<AlertEvent> EvaluateAll(SystemTime now);
  // The longest window of any rule: how far back the start-up replay must read.
  Duration LongestWindow() const;

  // The persisted fields of every pair whose state changed since the last call, and the
  // pairs removed by Configure()/Restore() since the last call: what to write to SQLite.
  std::vector<storage::AlertStateRecord> TakeChangedStates();
  std::vector<std::pair<std::string, std::string>> TakeRemoved();

 private:
  struct Pair;
  std::vector<AlertEvent> Evaluate(Pair& pair, SystemTime now);
  // Adds a confirmed result to the pair's counts; whether it counts against the rule.
  void Count(Pair& pair, const probes::ProbeResult& r, probes::Outcome outcome, SystemTime now);

  const Clock& clock_;
  std::vector<AlertRule> rules_;
  std::vector<SilenceConfig> silences_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Pair>> pairs_;  // (alert, monitor)
  std::unordered_map<std::string, std::vector<Pair*>> by_monitor_;
  std::vector<Pair*> changed_;  // pairs whose `dirty` went up since TakeChangedStates(), in pairs_
  std::vector<std::pair<std::string, std::string>> removed_;
};

}  // namespace gatewatch::alerting
