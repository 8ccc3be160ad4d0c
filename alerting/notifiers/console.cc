// Console: one plain-text block for stdout (the demo and `notify-test` without a chat):
//   [FIRING] shop-502 on shop
//     <summary>
//     Severity: critical
//     ...
//     Fingerprint: 0123456789abcdef
// Control characters other than newlines are replaced (U+FFFD) so a hostile monitor
// name or server header cannot drive the terminal. Bounded to 16 KiB (our choice).
#include "alerting/notifiers/console.h"

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

namespace {

constexpr size_t kTextMax = 16 * 1024;

// Indents every line by two spaces and replaces control characters other than '\n'.
std::string Indented(std::string_view text) {
  std::string out = "  ";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\n  ";
    } else if (u < 0x20 || u == 0x7f) {
      out += "\xEF\xBF\xBD";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Payload ConsoleNotifier::Build(const Message& m) const {
  std::string head =
      "[" + std::string(render::KindWord(m.kind)) + "] " + m.alert + " on " + m.monitor;
  for (char& c : head) {
    if (c == '\n') c = ' ';
  }
  std::string text = Indented(head).substr(2) + "\n" + Indented(render::PlainText(m));
  text = TruncateUtf8(text, kTextMax);
  text += '\n';
  return {"", "text/plain; charset=utf-8", text, {}};
}

}  // namespace gatewatch::alerting
