// Microsoft Teams through a Workflows (Power Automate) "When a Teams webhook request is
// received" trigger: a message activity carrying one Adaptive Card 1.4 (Workflows accept
// Adaptive Cards only, not the retired connectors' MessageCard):
//   {"type": "message", "attachments": [{"contentType":
//     "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content":
//     {"$schema", "type": "AdaptiveCard", "version": "1.4", "msteams": {"width": "Full"},
//      "body": [TextBlock(headline, coloured by kind), TextBlock(summary), FactSet(facts),
//               TextBlock(evidence)?, TextBlock(footer)]}}]}
//
// Limit: Microsoft documents "about 28 KB" per message (Teams connector / incoming
// webhook docs, confirmed via search) and answers 413 beyond it; one client library
// (msteams_hermes) reports failures from about 21 KB in practice, so the whole body is
// kept <= 20 000 bytes: the evidence text is cut until it fits.
#include "alerting/notifiers/msteams.h"

#include "alerting/notifiers/render.h"

namespace gatewatch::alerting {

namespace {

constexpr size_t kBodyMax = 20000;
constexpr size_t kSummaryMax = 3000;
constexpr size_t kFactValueMax = 1000;

std::string_view Colour(Message::Kind k) {
  switch (k) {
    case Message::Kind::kFiring:
      return "Attention";
    case Message::Kind::kReminder:
      return "Warning";
    case Message::Kind::kResolved:
      return "Good";
    case Message::Kind::kTest:
      return "Accent";
  }
  return "Attention";
}

render::Json Text(std::string text) {
  return {{"type", "TextBlock"}, {"text", std::move(text)}, {"wrap", true}};
}

}  // namespace

Payload MsTeamsNotifier::Build(const Message& m) const {
  using render::Json;
  Json facts = Json::array();
  for (const auto& f : render::Facts(m)) {
    facts.push_back({{"title", f.name}, {"value", TruncateUtf8(f.value, kFactValueMax)}});
  }
  // Adaptive Card markdown needs a blank line or a list for line breaks: use a list.
  const std::string evidence =
      m.description.empty() ? "" : "**Evidence**\n\n" + render::Evidence(m, "- ");

  auto build = [&](size_t evidence_budget) {
    Json headline = Text(std::string(render::KindEmoji(m.kind)) + " " + render::Title(m));
    headline["weight"] = "Bolder";
    headline["size"] = "Large";
    headline["color"] = Colour(m.kind);
    Json body = Json::array({headline,
                             Text(TruncateUtf8(m.summary, kSummaryMax)),
                             {{"type", "FactSet"}, {"facts", facts}}});
    if (!evidence.empty()) body.push_back(Text(TruncateUtf8(evidence, evidence_budget)));
    Json footer = Text("gatewatch \u00b7 " + std::string(ToString(m.kind)) + " at " +
                       FormatTime(m.at) + " \u00b7 fingerprint " + m.fingerprint);
    footer["size"] = "Small";
    footer["isSubtle"] = true;
    body.push_back(footer);

    Json card = {{"$schema", "http://adaptivecards.io/schemas/adaptive-card.json"},
                 {"type", "AdaptiveCard"},
                 {"version", "1.4"},
                 {"msteams", {{"width", "Full"}}},
                 {"body", body}};
    Json message = {
        {"type", "message"},
        {"attachments", Json::array({{{"contentType", "application/vnd.microsoft.card.adaptive"},
                                      {"contentUrl", nullptr},
                                      {"content", card}}})}};
    return render::Dump(message);
  };
  return {"", "application/json", render::FitBody(kBodyMax, evidence.size(), build), {}};
}

}  // namespace gatewatch::alerting
