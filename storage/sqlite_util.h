#pragma once
// Internal to storage/: included only by storage/*.cc, never by a header, so sqlite3.h
// stays inside the module that owns it. Helpers shared by SqliteStore and AlertStore.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "probes/clock.h"

namespace gatewatch::storage::internal {

inline int64_t ToUnixMs(SystemTime t) {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline SystemTime FromUnixMs(int64_t ms) {
  return SystemTime(
      std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
}

// SystemTime::max() and friends do not fit in milliseconds arithmetic everywhere: clamp.
inline int64_t ToUnixMsClamped(SystemTime t) {
  using Dur = SystemTime::duration;
  using std::chrono::milliseconds;
  constexpr auto kMaxMs = std::chrono::duration_cast<milliseconds>(Dur::max()).count() - 1;
  constexpr auto kMinMs = std::chrono::duration_cast<milliseconds>(Dur::min()).count() + 1;
  const int64_t ms = ToUnixMs(t);
  return ms > kMaxMs ? kMaxMs : ms < kMinMs ? kMinMs : ms;
}

// A sqlite3* belongs to the thread that opened it (STYLE section 7): debug builds abort.
[[noreturn]] inline void OwnerViolation(const char* cls, const char* function) {
  std::fprintf(stderr,
               "gatewatch: %s::%s called off the thread that opened it; a sqlite3* belongs to "
               "its thread\n",
               cls, function);
  std::abort();
}

// A statement prepared per call, finalized on scope exit.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt** out() { return &s_; }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

}  // namespace gatewatch::storage::internal
