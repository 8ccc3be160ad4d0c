#pragma once
// Internal to storage/: included only by storage/*.cc, never by a header, so sqlite3.h
// stays inside the module that owns it. Helpers shared by the storage/*.cc files.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

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

// Column lists and clauses of generated SQL: `parts` separated by `sep`.
inline std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

// A sqlite3* belongs to the thread that opened it (STYLE section 7): debug builds abort.
[[noreturn]] inline void OwnerViolation(const char* cls, const char* function) {
  std::fprintf(stderr,
               "gatewatch: %s::%s called off the thread that opened it; a sqlite3* belongs to "
               "its thread\n",
               cls, function);
  std::abort();
}

// At the top of every public method of a class that owns a connection (one with
// OnOwnerThread()); `cls` names the class in the message. Release builds check nothing.
#ifdef NDEBUG
#define GW_CHECK_OWNER_THREAD(cls) ((void)0)
#else
#define GW_CHECK_OWNER_THREAD(cls)                                                       \
  do {                                                                                   \
    if (!OnOwnerThread()) ::gatewatch::storage::internal::OwnerViolation(cls, __func__); \
  } while (false)
#endif

// SQLite's message for the connection's last error, with the name of its extended code.
inline std::string Errmsg(sqlite3* db) {
  if (db == nullptr) return "out of memory";
  return std::string(sqlite3_errmsg(db)) + " (" + sqlite3_errstr(sqlite3_extended_errcode(db)) +
         ")";
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

// Bound strings and blobs are SQLITE_STATIC: every caller keeps them alive until the
// statement is reset or finalized.
inline int BindText(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
inline int BindBlob(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
inline int BindInt(sqlite3_stmt* s, int i, int64_t v) {
  return sqlite3_bind_int64(s, i, static_cast<sqlite3_int64>(v));
}

inline std::string ColText(sqlite3_stmt* s, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  if (p == nullptr) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i)));
}
inline std::string ColBlob(sqlite3_stmt* s, int i) {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(s, i));
  if (p == nullptr) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i)));
}
inline int64_t ColInt(sqlite3_stmt* s, int i) {
  return static_cast<int64_t>(sqlite3_column_int64(s, i));
}

}  // namespace gatewatch::storage::internal
