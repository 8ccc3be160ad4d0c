#pragma once
// The alerting pipeline (docs/alerts-and-diagnosis.md, docs/reliability.md): one thread that owns the
// alert Evaluator and its own AlertStore connection. Probe results (local and ingested) are
// offered to it from any thread through a bounded queue; it evaluates them, and writes every
// state change together with the notifications it causes (one outbox row per notifier) in ONE
// transaction, then wakes the delivery thread. Once a second it runs the time-driven
// transitions (for, resolve_for, repeat, silences ending).
//
// It also runs the diagnosis (daemon/diagnosis.h): incidents, and the verdict every alert
// message carries.
//
// Start-up (Start() returns when it is done, before the first probe runs): restores the
// stored alert states, replays the stored results of the longest alert window into the
// evaluator's windows, and decides once — so a restart neither repeats a "firing" nor loses
// a "resolved", and an alert or monitor removed while the daemon was down gets its
// "resolved", sent to the notifiers that had its firing.
//
// A slow or dead webhook receiver never slows this thread (delivery is another thread), and
// this thread never slows probing: Offer() only copies the result into the queue; when the
// queue is full the result is not evaluated (counted in dropped, logged) — it is still
// stored by the writer.
//
// Nothing is lost on a failed commit: the pending state changes and messages are kept and
// committed again on the next round (logged), so a "resolved" is delayed, never dropped.
//
// Threads: Offer(), Reconfigure(), Snapshot(), stats() from any thread; the rest is the
// pipeline thread's.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "alerting/evaluator.h"
#include "daemon/config.h"
#include "daemon/diagnosis.h"
#include "probes/clock.h"
#include "probes/probe_result.h"
#include "probes/result.h"

namespace gatewatch::daemon {

struct AlertPipelineOptions {
  std::string db_path;               // the daemon's SQLite file (results, alert state, outbox)
  size_t max_queued = 100'000;       // results waiting for evaluation
  Duration tick = Duration(1000);    // time-driven transitions
  // Results are evaluated in batches: the first result of an empty queue is taken at most
  // this long after it arrived (sooner when batch_rows wait), so the pipeline wakes tens of
  // times a second rather than once per probe. Adds at most this to alert latency.
  Duration batch_delay = Duration(10);
  size_t batch_rows = 512;
  std::function<void()> on_enqueued;  // notifications were committed (wakes delivery)
  // Called on the pipeline thread after each round with the alert states that changed
  // since the last call (all of them the first time): metrics.
  std::function<void(const std::vector<alerting::AlertStatus>& changed,
                     const std::vector<std::pair<std::string, std::string>>& removed)>
      on_states;
  // Called on the pipeline thread once a second with the open incidents: metrics.
  std::function<void(const std::vector<OpenIncident>& open)> on_incidents;
};

struct AlertPipelineStats {
  std::atomic<uint64_t> results{0};        // confirmed results evaluated
  std::atomic<uint64_t> dropped{0};        // not evaluated: the queue was full
  std::atomic<uint64_t> events{0};         // firing, resolved and reminder events
  std::atomic<uint64_t> messages{0};       // outbox rows written (events x notifiers)
  std::atomic<uint64_t> commit_errors{0};  // failed commits (retried)
  std::atomic<uint64_t> eval_ns{0};        // time spent in Observe() for those results
  std::atomic<uint64_t> replayed{0};       // stored results replayed at start-up
};

class AlertPipeline {
 public:
  // Opens the stores, restores and replays (see the file comment), starts the thread.
  static Result<std::unique_ptr<AlertPipeline>> Start(AlertPipelineOptions options,
                                                      std::shared_ptr<const Config> config,
                                                      const Clock& clock);
  ~AlertPipeline();  // Stop()
  AlertPipeline(const AlertPipeline&) = delete;
  AlertPipeline& operator=(const AlertPipeline&) = delete;

  // A probe result, any thread. Unconfirmed attempts are ignored (docs/probes.md).
  void Offer(const probes::ProbeResult& r);
  // A reloaded config: rules and silences replaced, removed pairs resolved.
  void Reconfigure(std::shared_ptr<const Config> config);
  // Evaluates what is queued, commits, and stops the thread. Idempotent.
  void Stop();

  // The current state of every alert x monitor (refreshed after each round).
  std::vector<alerting::AlertStatus> Snapshot() const;
  const AlertPipelineStats& stats() const { return stats_; }

 private:
  struct Impl;
  AlertPipeline();
  AlertPipelineStats stats_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatewatch::daemon
