// Google Chat incoming webhook, a text message: {"text": ...} with Chat's own formatting
// (*bold*, _italic_, "* " lists); text messages render on every client, cards do not
// need to.
//
// Limit: the text is kept <= 4096 characters. Search confirmed only the 32 000-byte
// maximum message size (developers.google.com/workspace/chat/create-messages); the
// 4096-character text figure could not be confirmed there and is taken from the brief,
// as the stricter of the two.
#include "alerting/notifiers/googlechat.h"

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

namespace {

constexpr size_t kTextMax = 4096;
// Cut the parts first so an oversized summary or fact cannot push the rest out.
constexpr size_t kSummaryMax = 1500;
constexpr size_t kFactMax = 400;

}  // namespace

Payload GoogleChatNotifier::Build(const Message& m) const {
  using render::Json;
  std::string text = std::string(render::KindEmoji(m.kind)) + " *" + render::Title(m) + "*\n" +
                     TruncateUtf8(m.summary, kSummaryMax) + "\n";
  for (const auto& f : render::Facts(m)) {
    text += "*" + f.name + ":* " + TruncateUtf8(f.value, kFactMax) + "\n";
  }
  if (!m.description.empty()) text += "*Evidence:*\n" + render::Evidence(m, "\u2022 ") + "\n";
  text += "_gatewatch \u00b7 fingerprint " + m.fingerprint + "_";
  Json body = {{"text", TruncateUtf8(text, kTextMax)}};
  return {"", "application/json", render::Dump(body), {}};
}

}  // namespace gatewatch::alerting
