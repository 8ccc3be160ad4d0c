// Discord webhook ("Execute Webhook"): a short `content` line plus one embed with a colour
// by kind:
//   {"username": "gatewatch", "content": ..., "allowed_mentions": {"parse": []},
//    "embeds": [{"title", "description", "color", "fields": [{name, value, inline}],
//                "footer": {"text"}, "timestamp"}]}
// `allowed_mentions.parse = []` keeps an "@everyone" inside a monitor name or a server's
// header from pinging a channel.
//
// Limits (Discord embed limits, confirmed via search: sapphire EmbedLimits, javacord, the
// discord-api-types docs): content <= 2000, <= 10 embeds (we send 1), title <= 256,
// description <= 4096, <= 25 fields, field name <= 256, value <= 1024, footer <= 2048,
// and <= 6000 characters over title + description + field names/values + footer +
// author name. We count UTF-8 bytes (never fewer than Discord's characters).
#include "alerting/notifiers/discord.h"

#include <algorithm>

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

namespace {

constexpr size_t kContentMax = 2000;
constexpr size_t kTitleMax = 256;
constexpr size_t kDescriptionMax = 4096;
constexpr size_t kMaxFields = 25;
constexpr size_t kFieldNameMax = 256;
constexpr size_t kFieldValueMax = 1024;
constexpr size_t kFooterMax = 2048;
constexpr size_t kEmbedTotalMax = 6000;
constexpr size_t kSummaryMax = 1500;  // our cut, so evidence still fits after a long summary

int Colour(Message::Kind k) {
  switch (k) {
    case Message::Kind::kFiring:
      return 0xD32F2F;  // red
    case Message::Kind::kReminder:
      return 0xF57C00;  // orange
    case Message::Kind::kResolved:
      return 0x2E7D32;  // green
    case Message::Kind::kTest:
      return 0x1976D2;  // blue
  }
  return 0xD32F2F;
}

}  // namespace

Payload DiscordNotifier::Build(const Message& m) const {
  using render::Json;
  const std::string title = TruncateUtf8(render::Title(m), kTitleMax, kEllipsis);
  const std::string footer =
      TruncateUtf8("gatewatch \u00b7 fingerprint " + m.fingerprint, kFooterMax, kEllipsis);
  size_t used = title.size() + footer.size();

  Json fields = Json::array();
  for (const auto& f : render::Facts(m)) {
    if (fields.size() == kMaxFields) break;
    std::string name = TruncateUtf8(f.name, kFieldNameMax, kEllipsis);
    std::string value = TruncateUtf8(f.value, kFieldValueMax);
    used += name.size() + value.size();
    fields.push_back({{"name", name}, {"value", value}, {"inline", f.value.size() < 40}});
  }

  // The description gets what the embed total leaves (fields are at most ~8 x 1 KiB).
  std::string description = TruncateUtf8(m.summary, kSummaryMax);
  if (!m.description.empty()) description += "\n\n**Evidence**\n" + render::Evidence(m, "\u2022 ");
  const size_t room = used < kEmbedTotalMax ? kEmbedTotalMax - used : 0;
  description = TruncateUtf8(description, std::min(kDescriptionMax, room));

  Json embed = {
      {"title", title},   {"description", description},   {"color", Colour(m.kind)},
      {"fields", fields}, {"footer", {{"text", footer}}}, {"timestamp", FormatTime(m.at)}};
  Json body = {{"username", "gatewatch"},
               {"content", TruncateUtf8(std::string(render::KindEmoji(m.kind)) + " **" +
                                            render::Title(m) + "** \u2014 " + m.summary,
                                        kContentMax)},
               {"allowed_mentions", {{"parse", Json::array()}}},
               {"embeds", Json::array({embed})}};
  return {"", "application/json", render::Dump(body), {}};
}

}  // namespace gatewatch::alerting
