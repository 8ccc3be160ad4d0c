#pragma once
// Raw SQLite on a database file, for tests that must see exactly what the file holds: no
// gatewatch code in between (which would migrate, i.e. create missing tables). Header-only:
// link SQLite::SQLite3 where it is used.

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

namespace gatewatch::testing {

// Runs `sql` on a connection of its own to `path` (which must exist) and returns every
// value of the first column, joined by "\n"; nullopt (and *error) when it fails.
inline std::optional<std::string> QueryFile(const std::string& path, const std::string& sql,
                                            std::string* error = nullptr) {
  sqlite3* db = nullptr;
  std::optional<std::string> out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
      std::string text;
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const auto* v = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        if (!text.empty()) text += "\n";
        text += v != nullptr ? v : "NULL";
      }
      if (rc == SQLITE_DONE) out = text;
    }
    if (!out && error != nullptr) *error = sqlite3_errmsg(db);
    sqlite3_finalize(stmt);
  } else if (error != nullptr) {
    *error = sqlite3_errmsg(db);
  }
  sqlite3_close(db);
  return out;
}

// PRAGMA integrity_check: "ok" for a sound file, else what is wrong.
inline std::string IntegrityCheck(const std::string& path) {
  std::string error;
  return QueryFile(path, "PRAGMA integrity_check", &error).value_or("error: " + error);
}

// A one-integer query (e.g. "SELECT COUNT(*) FROM results"); -1 when it fails.
inline int64_t QueryFileInt(const std::string& path, const std::string& sql) {
  auto v = QueryFile(path, sql);
  if (!v || v->empty()) return -1;
  return std::stoll(*v);
}

}  // namespace gatewatch::testing
