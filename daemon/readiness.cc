#include "daemon/readiness.h"

#include <cstdio>
#include <utility>

namespace gatewatch::daemon {

namespace {

// `format` holds one %.1f for the seconds waited since `since`.
std::string Waited(const char* format, SteadyTime since, SteadyTime steady_now) {
  char text[160];
  std::snprintf(text, sizeof text, format,
                std::chrono::duration<double>(steady_now - since).count());
  return text;
}

}  // namespace

std::string NotReadyReason(const storage::WriteActivity& writes, SteadyTime steady_now,
                           SystemTime last_tick, SystemTime now) {
  if (writes.lock_wait_since && steady_now - *writes.lock_wait_since > kMaxLockWait)
    return Waited("database writes are failing: the database is locked (a write has waited "
                  "%.1fs for another connection's lock)",
                  *writes.lock_wait_since, steady_now);
  if (writes.writing_since && steady_now - *writes.writing_since > kMaxWriteWait)
    return Waited("database writes are failing: a write has waited %.1fs (the database is "
                  "locked or the disk stalls)",
                  *writes.writing_since, steady_now);
  if (writes.last_commit_failed) return "database writes are failing: the last commit failed";
  if (now - last_tick > kMaxTickAge) return "the scheduler loop has not run for more than 5s";
  return "";
}

Readiness::Readiness(const storage::Writer& writer, std::function<SystemTime()> last_tick,
                     const Clock& clock)
    : writer_(writer), last_tick_(std::move(last_tick)), clock_(clock) {}

bool Readiness::Ready(std::string* why) const {
  std::string reason =
      NotReadyReason(writer_.Activity(), clock_.Steady(), last_tick_(), clock_.Now());
  if (reason.empty()) return true;
  *why = std::move(reason);
  return false;
}

}  // namespace gatewatch::daemon
