#pragma once
// Structured logs in logfmt on stderr, one line per event:
//   ts=2026-11-23T05:25:10.123Z level=info msg="config loaded" monitors=3
// Thread-safe: a line is assembled privately and written with one call under a lock.
// Never log secrets (webhook URLs, tokens): pass names, not values.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace gatewatch::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

std::string_view LevelName(Level level);
// Parses "debug|info|warn|error"; returns false on anything else.
bool ParseLevel(std::string_view text, Level* out);

// Process-wide minimum level (default info).
void SetMinLevel(Level level);
bool Enabled(Level level);

// Replaces the output (default: stderr). Tests capture lines; pass nullptr to restore.
void SetSinkForTest(std::function<void(std::string_view line)> sink);

// Appends ` key=value` to `out`, quoting and escaping value as logfmt requires.
void AppendPair(std::string& out, std::string_view key, std::string_view value);

// One log line; written when it goes out of scope.
//   log::Info("probe failed").Kv("monitor", name).Kv("outcome", "http_502");
class Line {
 public:
  Line(Level level, std::string_view msg);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& Kv(std::string_view key, std::string_view value);
  Line& Kv(std::string_view key, const char* value) { return Kv(key, std::string_view(value)); }
  Line& Kv(std::string_view key, const std::string& value) {
    return Kv(key, std::string_view(value));
  }
  Line& Kv(std::string_view key, int64_t value);
  Line& Kv(std::string_view key, int value) { return Kv(key, static_cast<int64_t>(value)); }
  Line& Kv(std::string_view key, uint64_t value);
  Line& Kv(std::string_view key, double value);
  Line& Kv(std::string_view key, bool value);

 private:
  bool enabled_;
  std::string text_;
};

inline Line Debug(std::string_view msg) { return Line(Level::kDebug, msg); }
inline Line Info(std::string_view msg) { return Line(Level::kInfo, msg); }
inline Line Warn(std::string_view msg) { return Line(Level::kWarn, msg); }
inline Line Error(std::string_view msg) { return Line(Level::kError, msg); }

}  // namespace gatewatch::log
