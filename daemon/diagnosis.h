#pragma once
// Diagnosis wiring (docs/alerts-and-diagnosis.md): on the alert pipeline's thread, keeps
// track of which monitors are in trouble, diagnoses them with the verdict engine
// (probes/verdict.h) on results read from storage, and keeps their incidents
// (storage/incident_store.h): one open incident per monitor, opened at the first confirmed failure
// (or, for a gateway, when one of its upstreams fails while it still answers: the degraded
// pool), verdict and peak ratio updated as evidence changes, closed once the monitor and its
// upstreams have been healthy for the monitor's alerts' longest resolve_for (two intervals
// when no alert matches). A closed incident during which no alert fired and that lasted less
// than the monitor's alert window is `transient`; otherwise it keeps its root cause (the
// verdict as of its last failure).
//
// Cost: Observe() is O(1) (per monitor x region "failing" flags); a monitor is diagnosed only
// when the failing state of it or of one of its upstreams changes, when an alert needs its
// verdict, and every refresh interval while its incident is open — never per result. One
// diagnosis reads the monitor's and its upstreams' results of the window from SQLite (indexed
// by monitor, region, time) plus the few newest results the writer may not have committed
// yet (kept in memory for monitors in trouble).
//
// Thread: everything runs on the pipeline thread, except the incident snapshot (OpenSnapshot),
// which any thread may read.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/config.h"
#include "probes/clock.h"
#include "probes/probe_result.h"
#include "probes/result.h"
#include "probes/verdict.h"
#include "storage/incident_store.h"
#include "storage/store.h"

namespace gatewatch::daemon {

struct DiagnosisOptions {
  Duration default_window = std::chrono::minutes(5);  // for monitors no alert watches
  Duration refresh = std::chrono::seconds(10);        // re-diagnosis of an open incident
  size_t max_per_tick = 200;  // diagnoses per Tick() (the rest waits: bounded work per second)
  // Newest results kept in memory for a monitor in trouble, to cover what the writer has not
  // committed yet (it commits within its flush interval, 1 s): those started at most this
  // long before the monitor's newest, and at most kMaxRecentResults of them.
  Duration recent_max_age = std::chrono::seconds(5);
  // A diagnosis may miss results the writer had not committed when it ran (it commits at
  // least every second), of regions and upstreams that were not in trouble (those are not
  // held in memory): e.g. the healthy region of a `regional` failure, whose absence reads as
  // `gateway_fault` "in 1/1 regions". So the diagnosis made when an incident opens is redone
  // once this long after, and an alert message never leads with a diagnosis older than this.
  Duration settle = std::chrono::milliseconds(1500);
};

inline constexpr size_t kMaxRecentResults = 8;

// An open incident as the metrics and the status page need it.
struct OpenIncident {
  std::string monitor;
  std::string verdict;
  std::string summary;
  SystemTime opened_at{};
};

class Diagnostics {
 public:
  // `incidents` (read-write) and `results` (read-only) are the pipeline thread's stores and
  // must outlive this object.
  Diagnostics(const Clock& clock, storage::IncidentStore& incidents, storage::Store& results,
              DiagnosisOptions options = {});

  // Monitors, their upstreams, alert windows and resolve_for. First call: also resumes the
  // incidents that were open before a restart.
  Result<void> Configure(std::shared_ptr<const Config> config);

  // Every confirmed result (local or ingested), in arrival order.
  void Observe(const probes::ProbeResult& r);

  // An alert fired for `monitor`: its incident (opened now if needed) is never `transient`.
  void AlertFired(const std::string& monitor);

  // Diagnoses what changed, opens/updates/closes incidents. Errors are logged and retried.
  void Tick(SystemTime now);

  // The monitor's current diagnosis (its open incident's, or computed now); nullopt when it
  // has nothing to diagnose (healthy and no upstream in trouble). Only when its own says
  // nothing (`unknown`) and it is an upstream: the diagnosis of a gateway in front of it that
  // names it (upstream_down, partial_upstream_failure).
  std::optional<probes::Diagnosis> Current(const std::string& monitor);

  // The open incidents of the gateways that link `monitor` as an upstream: what a failing
  // upstream causes (its alert mentions them). Pipeline thread.
  std::vector<OpenIncident> GatewayIncidents(const std::string& monitor) const;

  // Open incidents, for gatewatch_incident_open and the status page. Any thread.
  std::vector<OpenIncident> OpenSnapshot() const;

  // Results held in memory (the newest of monitors in trouble, see recent_max_age), for the
  // tests and the benchmark. Pipeline thread.
  size_t ResultsHeld() const;

 private:
  // One per monitor that has produced a confirmed result, so it stays small (~150 bytes):
  // what only a monitor in trouble needs is allocated when it gets there. (Inline optionals
  // of Incident and two Diagnosis made it 2.3 KB: 23 MB at 10,000 monitors, healthy or not.)
  struct MonitorState {
    std::map<std::string, bool> failing;  // region -> newest confirmed result failed
    std::optional<SystemTime> last_failure;
    std::vector<probes::ProbeResult> recent;  // newest confirmed results while in trouble, oldest first
    bool dirty = false;
    // The open incident, if any; its evidence JSON lives in SQLite only (`evidence` empty).
    std::unique_ptr<storage::Incident> incident;
    std::unique_ptr<probes::Diagnosis> diagnosis;  // the incident's latest
    std::optional<SystemTime> healthy_since;       // monitor and upstreams healthy since
    SystemTime diagnosed_at{};
    bool provisional = false;  // the diagnosis of the incident's opening: redone after settle
    std::unique_ptr<probes::Diagnosis> closed;  // the last incident's final diagnosis
    SystemTime closed_at{};
  };

  bool Failing(const MonitorState& s) const;
  bool InTrouble(const std::string& monitor) const;  // it or an upstream failing, or recent failures
  probes::Diagnosis Diagnose(const std::string& monitor, SystemTime now, bool alert_fired);
  std::vector<probes::ProbeResult> ResultsOf(const std::string& monitor, SystemTime since);
  // Opens, updates or closes the monitor's incident; true when it diagnosed (the costly
  // part: a window read from SQLite), false for a cheap no-op.
  bool Decide(const std::string& monitor, MonitorState& s, SystemTime now);
  // Writes a new diagnosis of an open incident (verdict, summary, evidence, peak ratio) to
  // SQLite and to `inc`, logging a verdict change; false (logged) when the write failed.
  bool Record(const std::string& monitor, storage::Incident& inc, const probes::Diagnosis& d, SystemTime now);
  void Publish();
  Duration WindowOf(const std::string& monitor) const;
  Duration CloseAfterOf(const std::string& monitor) const;

  const Clock& clock_;
  storage::IncidentStore& incidents_;
  storage::Store& results_;
  DiagnosisOptions options_;
  std::shared_ptr<const Config> config_;
  bool resumed_ = false;
  std::unordered_map<std::string, MonitorState> monitors_;
  std::set<std::string> active_;  // dirty, or with an open incident: what Tick() visits
  std::string tick_cursor_;        // where the next Tick() starts in active_
  std::unordered_map<std::string, std::vector<std::string>> gateways_of_;  // upstream -> gateways
  std::unordered_map<std::string, Duration> window_, close_after_;

  mutable std::mutex snapshot_mu_;  // guards snapshot_
  std::vector<OpenIncident> snapshot_;
};

// Chat-message lines from a diagnosis: where it fails, each upstream's state.
std::vector<std::string> EvidenceLines(const probes::Diagnosis& d, size_t max_lines = 6);

}  // namespace gatewatch::daemon
