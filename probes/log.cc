#include "probes/log.h"

#include "probes/clock.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace gatewatch::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

struct Sink {
  std::mutex mu;                                       // guards fn and the write
  std::function<void(std::string_view)> fn;            // empty = stderr
};

Sink& TheSink() {
  static Sink sink;
  return sink;
}

bool NeedsQuoting(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

bool ParseLevel(std::string_view text, Level* out) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (LevelName(l) == text) {
      *out = l;
      return true;
    }
  }
  return false;
}

void SetMinLevel(Level level) { g_min_level.store(static_cast<int>(level)); }
bool Enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

void SetSinkForTest(std::function<void(std::string_view)> sink) {
  Sink& s = TheSink();
  std::lock_guard lock(s.mu);
  s.fn = std::move(sink);
}

void AppendPair(std::string& out, std::string_view key, std::string_view value) {
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
  if (!NeedsQuoting(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (unsigned char c : value) {
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out.append(buf);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

Line::Line(Level level, std::string_view msg) : enabled_(Enabled(level)) {
  if (!enabled_) return;
  text_.reserve(128);
  text_.append("ts=").append(FormatTime(std::chrono::system_clock::now()));
  AppendPair(text_, "level", LevelName(level));
  AppendPair(text_, "msg", msg);
}

Line::~Line() {
  if (!enabled_) return;
  text_.push_back('\n');
  Sink& s = TheSink();
  std::lock_guard lock(s.mu);
  if (s.fn) {
    s.fn(std::string_view(text_).substr(0, text_.size() - 1));
  } else {
    std::fwrite(text_.data(), 1, text_.size(), stderr);
    std::fflush(stderr);
  }
}

Line& Line::Kv(std::string_view key, std::string_view value) {
  if (enabled_) AppendPair(text_, key, value);
  return *this;
}
Line& Line::Kv(std::string_view key, int64_t value) {
  if (enabled_) AppendPair(text_, key, std::to_string(value));
  return *this;
}
Line& Line::Kv(std::string_view key, uint64_t value) {
  if (enabled_) AppendPair(text_, key, std::to_string(value));
  return *this;
}
Line& Line::Kv(std::string_view key, double value) {
  if (!enabled_) return *this;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", value);
  AppendPair(text_, key, buf);
  return *this;
}
Line& Line::Kv(std::string_view key, bool value) {
  if (enabled_) AppendPair(text_, key, value ? "true" : "false");
  return *this;
}

}  // namespace gatewatch::log
