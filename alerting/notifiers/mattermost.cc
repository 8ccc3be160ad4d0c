// Mattermost incoming webhook (Slack-compatible):
//   {"username": "gatewatch", "text": <markdown: headline, summary, evidence>,
//    "attachments": [{"fallback", "color", "fields": [{"short", "title", "value"}],
//                     "footer"}]}
// The attachment carries the colour by kind and the facts; the text carries the rest.
//
// Limits (confirmed via search: mattermost-developer-documentation PR #116 and
// mattermost/mattermost#28434): a post's text holds 16383 characters on Mattermost >= 5.0
// (4000 before; an older server splits a longer webhook text into several posts rather
// than rejecting it). Attachments were rejected above 7900 characters in total
// ("Maximum attachments length is 7900 characters", gitlab-foss#37555): ours stay well
// under (7 facts x <= 500 bytes + fallback <= 300).
#include "alerting/notifiers/mattermost.h"

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

namespace {

constexpr size_t kTextMax = 16383;
constexpr size_t kFieldValueMax = 500;
constexpr size_t kFallbackMax = 300;
constexpr size_t kSummaryMax = 4000;  // our cut, so evidence still fits after a long summary

std::string_view Colour(Message::Kind k) {
  switch (k) {
    case Message::Kind::kFiring:
      return "#D32F2F";
    case Message::Kind::kReminder:
      return "#F57C00";
    case Message::Kind::kResolved:
      return "#2E7D32";
    case Message::Kind::kTest:
      return "#1976D2";
  }
  return "#D32F2F";
}

}  // namespace

Payload MattermostNotifier::Build(const Message& m) const {
  using render::Json;
  std::string text = "#### " + std::string(render::KindEmoji(m.kind)) + " " + render::Title(m) +
                     "\n" + TruncateUtf8(m.summary, kSummaryMax);
  if (!m.description.empty()) text += "\n\n**Evidence**\n" + render::Evidence(m, "- ");

  Json fields = Json::array();
  for (const auto& f : render::Facts(m)) {
    fields.push_back({{"short", f.value.size() < 40},
                      {"title", f.name},
                      {"value", TruncateUtf8(f.value, kFieldValueMax)}});
  }
  Json attachment = {
      {"fallback", TruncateUtf8(render::Title(m) + ": " + m.summary, kFallbackMax, kEllipsis)},
      {"color", Colour(m.kind)},
      {"fields", fields},
      {"footer", "gatewatch \u00b7 fingerprint " + m.fingerprint}};
  Json body = {{"username", "gatewatch"},
               {"text", TruncateUtf8(text, kTextMax)},
               {"attachments", Json::array({attachment})}};
  return {"", "application/json", render::Dump(body), {}};
}

}  // namespace gatewatch::alerting
