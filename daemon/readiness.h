#pragma once
// Readiness (docs/http-api.md): what /readyz answers. Ready while the database takes writes
// and the scheduler loop runs.
//
// The database is judged by the writer's write under way and its last commit attempt
// (storage::Writer::Activity()), so readiness turns within one commit attempt: a locked
// database holds an attempt in SQLite's busy wait for up to busy_timeout (5 s) before the
// attempt fails, and an attempt that has waited kMaxLockWait for the write lock, or a write
// still running after kMaxWriteWait, already says so. An idle writer (nothing to commit)
// cannot see a lock: readiness then follows the next attempt.
//
// Thread: Ready() is called from the HTTP server's threads, concurrently; it only reads
// atomics.

#include <chrono>
#include <functional>
#include <string>

#include "probes/clock.h"
#include "storage/writer.h"

namespace gatewatch::daemon {

// A write running longer than this means a lock or a stalled disk: well above a commit's
// usual milliseconds, well below the writer's busy_timeout.
inline constexpr std::chrono::milliseconds kMaxWriteWait{1000};
// Waiting this long for the write lock means another connection holds it (gatewatch's own
// connections hold it for milliseconds). Shorter than kMaxWriteWait, which must allow for a
// slow disk: a lock taken right after a commit shows within about flush_interval (1 s) plus
// this, under the 2 s a readiness probe may expect.
inline constexpr std::chrono::milliseconds kMaxLockWait{500};
// The scheduler loop ticks at least once a second (probes/http_prober.h): this long without a
// tick means it is stuck.
inline constexpr std::chrono::seconds kMaxTickAge{5};

// Why a daemon in this state is not ready; "" when it is. Every reason about the database
// starts with "database writes are failing".
std::string NotReadyReason(const storage::WriteActivity& writes, SteadyTime steady_now,
                           SystemTime last_tick, SystemTime now);

class Readiness {
 public:
  // `last_tick` says when the scheduler loop last ran (ProbeLoop::LastTick); any thread.
  // `writer` and `clock` must outlive this.
  Readiness(const storage::Writer& writer, std::function<SystemTime()> last_tick,
            const Clock& clock);

  // True when ready; otherwise *why says what is not.
  bool Ready(std::string* why) const;

 private:
  const storage::Writer& writer_;
  const std::function<SystemTime()> last_tick_;
  const Clock& clock_;
};

}  // namespace gatewatch::daemon
