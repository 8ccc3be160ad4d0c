// Slack incoming webhook, Block Kit:
//   {"text": <fallback>, "blocks": [header, section(summary), section(fields),
//    section(evidence)?, context]}
// Block Kit has no colour (that was legacy attachments), so the kind is carried by an
// emoji and a word in the header ("FIRING", "RESOLVED", ...).
//
// Limits (docs.slack.dev/reference/block-kit/blocks and .../header-block, confirmed via
// search; Slack counts characters, we count UTF-8 bytes, which is never fewer):
//   header plain_text <= 150, section text <= 3000, section fields <= 10 of <= 2000 each,
//   <= 50 blocks per message (we emit at most 5). The top-level `text` is the
//   notification fallback; Slack truncates it only at 40 000 characters, we keep it
//   <= 3000 (our choice: a fallback line, not a document).
#include "alerting/notifiers/slack.h"

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

namespace {

constexpr size_t kHeaderMax = 150;
constexpr size_t kSectionTextMax = 3000;
constexpr size_t kFieldTextMax = 2000;
constexpr size_t kMaxFields = 10;
constexpr size_t kFallbackMax = 3000;

// mrkdwn reserves &, < and > (links, mentions); Slack asks for these three escapes.
std::string EscapeMrkdwn(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

render::Json Mrkdwn(std::string_view raw, size_t max) {
  return {{"type", "mrkdwn"}, {"text", render::FitEscaped(raw, max, EscapeMrkdwn)}};
}

}  // namespace

Payload SlackNotifier::Build(const Message& m) const {
  using render::Json;
  const std::string headline = std::string(render::KindEmoji(m.kind)) + " " + render::Title(m);

  Json blocks = Json::array();
  blocks.push_back({{"type", "header"},
                    {"text",
                     {{"type", "plain_text"},
                      {"text", TruncateUtf8(headline, kHeaderMax, kEllipsis)},
                      {"emoji", true}}}});
  blocks.push_back({{"type", "section"}, {"text", Mrkdwn(m.summary, kSectionTextMax)}});

  Json fields = Json::array();
  for (const auto& f : render::Facts(m)) {
    if (fields.size() == kMaxFields) break;
    fields.push_back(Mrkdwn("*" + f.name + "*\n" + f.value, kFieldTextMax));
  }
  blocks.push_back({{"type", "section"}, {"fields", fields}});

  if (!m.description.empty()) {
    blocks.push_back(
        {{"type", "section"},
         {"text", Mrkdwn("*Evidence*\n" + render::Evidence(m, "\u2022 "), kSectionTextMax)}});
  }
  blocks.push_back({{"type", "context"},
                    {"elements", Json::array({Mrkdwn(
                                     "gatewatch \u00b7 " + std::string(ToString(m.kind)) + " at " +
                                         FormatTime(m.at) + " \u00b7 fingerprint " + m.fingerprint,
                                     kSectionTextMax)})}});

  Json body = {
      {"text", render::FitEscaped(headline + " \u2014 " + m.summary, kFallbackMax, EscapeMrkdwn)},
      {"blocks", blocks}};
  return {"", "application/json", render::Dump(body), {}};
}

}  // namespace gatewatch::alerting
