#pragma once
// The results store (docs/configuration.md [storage], 5, 8): every probe attempt, per-minute and
// per-hour rollups per monitor x region, and retention. `Store` is the one interface of this
// extension point (STYLE section 2); `SqliteStore` (storage/sqlite_store.h) implements it, and
// `Writer` (storage/writer.h) owns the write connection on its own thread.
//
// Threads: a Store is thread-bound. Every method must be called on the thread that opened it;
// create one Store per thread (WAL lets readers run beside the single writer). Methods block on
// disk I/O and, when another connection holds the write lock, up to the busy timeout.
//
// Callers never see SQL: the read API below is typed and bounded.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "probes/clock.h"
#include "probes/outcome.h"
#include "probes/probe_result.h"
#include "probes/result.h"
#include "storage/config.h"

namespace gatewatch::storage {

// Latency histogram bucket upper bounds in milliseconds, inclusive (Prometheus `le`
// semantics: bucket i holds bound[i-1] < d <= bound[i]); one more bucket holds +Inf.
// Stored as columns `<phase>_le_<ms>` and `<phase>_le_inf`: changing this list needs a
// schema migration.
inline constexpr std::array<int64_t, 13> kLatencyBucketBoundsMs = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
inline constexpr size_t kLatencyBuckets = kLatencyBucketBoundsMs.size() + 1;

// Index of the bucket holding `d` (0 .. kLatencyBuckets-1). Negative durations go to bucket 0.
size_t LatencyBucket(std::chrono::microseconds d);

// HTTP status classes counted in rollups; kNone = no response (http_status 0).
enum class StatusClass : uint8_t { kNone, k1xx, k2xx, k3xx, k4xx, k5xx };
inline constexpr std::array<std::string_view, 6> kStatusClassNames = {"none", "1xx", "2xx",
                                                                      "3xx",  "4xx", "5xx"};
StatusClass StatusClassOf(int http_status);  // anything outside 100..599 counts as kNone

inline constexpr size_t kOutcomeCount = probes::kOutcomeNames.size();

// Results queries return at most this many rows, whatever the caller asks for.
inline constexpr int kMaxResultLimit = 10'000;

// Results of one monitor, newest first. Times are a half-open range [since, until).
struct ResultQuery {
  std::string monitor{};
  std::optional<std::string> region{};  // nullopt = every region
  SystemTime since{};
  SystemTime until = SystemTime::max();
  int limit = 100;             // clamped to 1 .. kMaxResultLimit
  bool failures_only = false;  // only failed attempts (probes::IsFailure)
};

// Confirmed outcomes per monitor x region in [since, until).
struct OutcomeQuery {
  SystemTime since{};
  SystemTime until = SystemTime::max();
  std::optional<std::string> monitor{};  // nullopt = every monitor
};

struct OutcomeCounts {
  std::string monitor{};
  std::string region{};
  std::array<int64_t, kOutcomeCount> by_outcome{};  // indexed by probes::Outcome

  int64_t Total() const;
  int64_t Failures() const;  // outcomes for which probes::IsFailure holds
  int64_t Count(probes::Outcome o) const { return by_outcome[static_cast<size_t>(o)]; }
};

// The newest stored result per monitor x region.
struct LatestQuery {
  std::optional<std::string> monitor{};  // nullopt = every monitor
  bool confirmed_only = true;            // false = the newest attempt of any kind
};

enum class RollupWidth : uint8_t { kMinute, kHour };
std::chrono::milliseconds WidthOf(RollupWidth w);

struct RollupQuery {
  RollupWidth width = RollupWidth::kMinute;
  std::string monitor{};
  std::optional<std::string> region{};  // nullopt = every region
  SystemTime since{};                   // buckets whose start is in [since, until)
  SystemTime until = SystemTime::max();
};

struct LatencyHistogram {
  std::array<int64_t, kLatencyBuckets> buckets{};  // per bucket, not cumulative
  int64_t count = 0;                               // results that had the phase
  int64_t sum_us = 0;                              // sum of the phase, microseconds
};

// Aggregates of one monitor x region over one minute or hour. Everything but `attempts`
// counts confirmed results only (docs/probes.md: ratios use confirmed outcomes).
struct Rollup {
  std::string monitor{};
  std::string region{};
  SystemTime bucket_start{};                        // multiple of the width since the epoch
  int64_t attempts = 0;                             // every attempt, confirmed or not
  int64_t confirmed = 0;                            // confirmed results
  std::array<int64_t, kOutcomeCount> by_outcome{};  // indexed by probes::Outcome
  std::array<int64_t, kStatusClassNames.size()> by_status_class{};  // indexed by StatusClass
  LatencyHistogram total;       // phases.total of confirmed results that have it
  LatencyHistogram processing;  // phases.processing likewise

  int64_t Failures() const;  // confirmed results whose outcome is a failure
};

// What one Prune call deleted.
struct PruneStats {
  int64_t raw_results = 0;     // non-failures older than raw_retention
  int64_t failed_results = 0;  // failures older than failure_retention
  int64_t minute_rollups = 0;  // minute buckets older than minute_rollup_retention
  int64_t hour_rollups = 0;    // hour buckets older than hour_rollup_retention
  int64_t incidents = 0;       // incidents closed before now - failure_retention
  bool more = false;           // rows past their age remain: call again

  int64_t Total() const {
    return raw_results + failed_results + minute_rollups + hour_rollups + incidents;
  }
};

class Store {
 public:
  virtual ~Store() = default;

  // Stores every result of `batch` (every attempt, confirmed or not) and updates the rollups
  // and the latest-result index, all in one transaction: on error nothing of the batch is
  // stored. Times are kept at millisecond precision.
  virtual Result<void> Insert(std::span<const probes::ProbeResult> batch) = 0;

  // Results of one monitor, newest first (ties: the later-inserted first), at most the
  // clamped limit.
  virtual Result<std::vector<probes::ProbeResult>> Results(const ResultQuery& q) = 0;

  // Confirmed outcomes per monitor x region, ordered by monitor then region; pairs with no
  // confirmed result in the window are absent.
  virtual Result<std::vector<OutcomeCounts>> CountOutcomes(const OutcomeQuery& q) = 0;

  // The newest result per monitor x region still stored, ordered by monitor then region.
  virtual Result<std::vector<probes::ProbeResult>> Latest(const LatestQuery& q) = 0;

  // Rollups ordered by bucket_start then region.
  virtual Result<std::vector<Rollup>> Rollups(const RollupQuery& q) = 0;

  // Retention, incremental: deletes at most `max_rows` rows in this call (in the order raw
  // results, failed results, minute rollups, hour rollups, closed incidents (by closed_at,
  // kept failure_retention; open ones never)), each DELETE its own short
  // transaction, so a writer is never held up for long. A row is deleted when its time
  // (started_at, or a rollup's bucket start) is strictly older than now - retention; a row
  // exactly at the cut-off stays. Failures (probes::IsFailure, any attempt) are kept until
  // failure_retention instead of raw_retention.
  // REQUIRES: max_rows > 0.
  virtual Result<PruneStats> Prune(SystemTime now, const StorageConfig& config, int max_rows) = 0;
};

}  // namespace gatewatch::storage
