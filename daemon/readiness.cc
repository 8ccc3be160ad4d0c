#include "daemon/readiness.h"

#include <utility>

namespace gatewatch::daemon {

Readiness::Readiness(const storage::Writer& writer, std::function<SystemTime()> last_tick,
                     const Clock& clock)
    : writer_(writer), last_tick_(std::move(last_tick)), clock_(clock) {}

bool Readiness::Ready(std::string* why) {
  const storage::WriterStats s = writer_.Stats();
  std::lock_guard lock(mu_);
  // Failing: errors since the last check and no batch committed since.
  const bool db_failing = s.write_errors > last_errors_ && s.batches == last_batches_;
  if (s.batches > last_batches_ || s.write_errors == last_errors_) {
    last_batches_ = s.batches;
    last_errors_ = s.write_errors;
  }
  if (db_failing) {
    *why = "database writes are failing";
    return false;
  }
  if (clock_.Now() - last_tick_() > std::chrono::seconds(5)) {
    *why = "the scheduler loop has not run for more than 5s";
    return false;
  }
  return true;
}

}  // namespace gatewatch::daemon
