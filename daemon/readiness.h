#pragma once
// Readiness (SPEC section 7): what /readyz answers. Ready while the database takes writes
// and the scheduler loop runs.
//
// Thread: Ready() is called from the HTTP server's threads, concurrently.

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "probes/clock.h"
#include "storage/writer.h"

namespace gatewatch::daemon {

class Readiness {
 public:
  // `last_tick` says when the scheduler loop last ran (ProbeLoop::LastTick); any thread.
  // `writer` and `clock` must outlive this.
  Readiness(const storage::Writer& writer, std::function<SystemTime()> last_tick,
            const Clock& clock);

  // True when ready; otherwise *why says what is not.
  bool Ready(std::string* why);

 private:
  const storage::Writer& writer_;
  const std::function<SystemTime()> last_tick_;
  const Clock& clock_;
  std::mutex mu_;  // guards the previous snapshot below
  uint64_t last_batches_ = 0;
  uint64_t last_errors_ = 0;
};

}  // namespace gatewatch::daemon
