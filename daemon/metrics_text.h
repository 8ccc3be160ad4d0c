#pragma once
// Pieces of the Prometheus text format (0.0.4) for the series written as text directly:
// the probe series (daemon/metrics.cc) and the extension families
// (daemon/metrics_extensions.cc).

#include <charconv>
#include <string>
#include <string_view>

namespace gatewatch::daemon::internal {

// Appends `value` escaped as a label value of the text format: backslash, double quote
// and line feed are the only characters that need it.
inline void AppendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

template <typename Int>
void AppendInt(std::string& out, Int v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

// The shortest fixed-point text that parses back to the same double ("0.0001", not
// "1e-04"); scientific only where fixed does not fit.
inline void AppendDouble(std::string& out, double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (res.ec != std::errc()) res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

}  // namespace gatewatch::daemon::internal
