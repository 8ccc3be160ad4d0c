#pragma once
// Writer: persists probe results in batches on its own thread with its own SqliteStore
// connection (docs/probes.md, docs/reliability.md, bench/README.md), and runs retention in small steps between batches.
//
// Threads: Enqueue(), Flush(), Stats() and Stop() may be called from any thread. The writer
// thread is the only user of its connection (opened on that thread, closed on it).
//
// Memory is bounded: at most `queue_capacity` results are accepted and not yet committed
// (queued plus the batch being written). Enqueue() never blocks: when that many are pending
// it returns false and the caller skips the probe with reason `backpressure` (docs/probes.md),
// so nothing exists half-written.
//
// Batching: a batch (at most `batch_rows` results) is written in ONE transaction as soon as
// `batch_rows` results are queued, or when the oldest queued result has waited
// `flush_interval`, whichever comes first; Flush() and Stop() write at once.
//
// Errors: a batch that fails (disk full, database locked beyond busy_timeout, I/O error) is
// logged (probes/log.h), counted in write_errors and retried with a doubling backoff, up to
// `max_attempts` tries. After that it is logged at level error as lost, with its row count,
// and counted in rows_lost: accepted results are never dropped silently, but a database that
// stays broken does lose them rather than grow memory without bound.
//
// Retention: every `prune_interval`, one Prune step deletes at most `prune_max_rows` rows
// (each DELETE is a short transaction of its own). While rows past their age remain, the next
// step follows right after the next batch, so deletion keeps pace with insertion; a step is
// skipped while a full batch is waiting.
//
// Time: retention uses the injected Clock's Now(), and Activity() its Steady(); batching and
// prune cadence use the real steady clock (a condition variable waits on it).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "probes/clock.h"
#include "probes/probe_result.h"
#include "probes/result.h"
#include "storage/config.h"
#include "storage/sqlite_store.h"

namespace gatewatch::storage {

struct WriterOptions {
  std::string path{};               // the database file; its directory must exist
  OpenOptions open{};               // read_only is ignored (forced false)
  StorageConfig retention{};        // raw/failure/rollup retentions (path is not used)
  size_t queue_capacity = 100'000;  // accepted but not yet committed, at most
  size_t batch_rows = 1'000;        // rows per transaction, at most
  std::chrono::milliseconds flush_interval{1'000};
  std::chrono::milliseconds prune_interval{10'000};  // 0 = never prune
  int prune_max_rows = 5'000;
  int max_attempts = 5;                          // tries per batch before it is lost
  std::chrono::milliseconds retry_backoff{100};  // doubled per retry, capped at 5 s
};

// A snapshot; every counter counts since Start().
struct WriterStats {
  uint64_t rows_accepted = 0;  // Enqueue() returned true
  uint64_t rows_rejected = 0;  // Enqueue() returned false (queue full or stopped)
  uint64_t rows_written = 0;   // committed
  uint64_t rows_lost = 0;      // accepted, then given up after max_attempts (logged)
  uint64_t batches = 0;        // committed transactions
  uint64_t write_errors = 0;   // failed attempts to commit a batch
  std::chrono::microseconds last_batch_latency{0};  // of the last committed batch
  size_t queue_depth = 0;                           // accepted and not yet committed or lost
  uint64_t prune_steps = 0;
  uint64_t rows_pruned = 0;
  uint64_t prune_errors = 0;
};

// The writer's database writes as they happen (Writer::Activity()), for readiness: a locked
// database shows here within one attempt, long before the attempt fails (busy_timeout).
struct WriteActivity {
  // When the write under way started (a batch commit attempt, or a prune step), by the
  // Clock's Steady(); nullopt while none runs.
  std::optional<SteadyTime> writing_since{};
  // The last batch commit attempt failed; the next one that commits clears it.
  bool last_commit_failed = false;
  // When the batch commit under way started waiting for the database's write lock, while it
  // waits (by the Clock's Steady()): time spent on another connection's lock, not the disk.
  std::optional<SteadyTime> lock_wait_since{};
};

class Writer {
 public:
  // Opens the database on the new writer thread (migrating it) and returns once it is open;
  // an open error is returned and no thread keeps running. `clock` must outlive the Writer.
  static Result<std::unique_ptr<Writer>> Start(WriterOptions options, const Clock& clock);

  ~Writer();  // Stop()
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Never blocks (beyond a short mutex). False when the queue is full or the writer stopped:
  // the result is not taken (skip the probe with reason `backpressure`).
  bool Enqueue(probes::ProbeResult result);

  // Whether `rows` more results would be accepted now (e.g. a probe and its retries): for
  // skipping a probe with reason `backpressure` before starting it. Advisory: Enqueue() decides.
  bool HasRoom(size_t rows = 1) const;

  // Blocks until every result accepted before the call is committed (or lost), or until
  // `timeout`; true when done. Writes at once instead of waiting for flush_interval.
  bool Flush(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Writes everything queued, checkpoints the WAL into the database file (TRUNCATE), then
  // stops the thread and closes the connection. Idempotent. May take as long as the retries
  // of the remaining batches when the database fails, plus busy_timeout for the checkpoint.
  // Close every other connection to the database first: then the database file alone is
  // complete and the -wal file is gone. A connection still inside a read transaction leaves
  // the checkpoint incomplete (logged as a warning; nothing is lost, the WAL keeps it).
  void Stop();

  WriterStats Stats() const;

  // Lock-free (atomics only): cheap enough for every /readyz request.
  WriteActivity Activity() const;

 private:
  struct Pending {
    std::chrono::steady_clock::time_point enqueued_at;
    probes::ProbeResult result;
  };

  Writer(WriterOptions options, const Clock& clock);
  void Run(std::stop_token stop, std::promise<Result<void>>& opened);
  void WriteBatch(SqliteStore& store, std::vector<probes::ProbeResult>& batch);
  bool PruneStep(SqliteStore& store);  // true when more remains
  void FinalCheckpoint(SqliteStore& store);
  // Around every write to the database, for Activity(); commit_failed: a batch commit's
  // outcome (nullopt for a prune step, which leaves last_commit_failed as it is).
  void BeginWrite();
  void EndWrite(std::optional<bool> commit_failed);
  int64_t SteadyNowNs() const;  // the Clock's Steady(), as stored in the atomics below

  const WriterOptions options_;
  const Clock& clock_;

  mutable std::mutex mu_;  // guards the members down to the condition variables
  std::deque<Pending> queue_;
  size_t in_flight_ = 0;                 // rows of the batch being written
  uint64_t accepted_seq_ = 0;            // results accepted so far
  uint64_t done_seq_ = 0;                // results committed or lost so far (FIFO, so a prefix)
  uint64_t flush_target_ = 0;            // Flush() asked for everything up to here
  bool stopped_ = false;                 // no more Enqueue()
  std::condition_variable_any work_cv_;  // the writer thread waits for work
  std::condition_variable done_cv_;      // Flush() waits for done_seq_

  std::atomic<uint64_t> rows_rejected_{0}, rows_written_{0}, rows_lost_{0}, batches_{0},
      write_errors_{0}, prune_steps_{0}, rows_pruned_{0}, prune_errors_{0};
  std::atomic<int64_t> last_batch_latency_us_{0};
  // Activity(): the Steady() nanoseconds of writing_since, or kNotWriting.
  static constexpr int64_t kNotWriting = std::numeric_limits<int64_t>::min();
  std::atomic<int64_t> writing_since_ns_{kNotWriting};
  std::atomic<int64_t> lock_wait_since_ns_{kNotWriting};  // likewise, for lock_wait_since
  std::atomic<bool> last_commit_failed_{false};

  std::jthread thread_;  // last: started after every member above exists
};

}  // namespace gatewatch::storage
