#pragma once
// Shared wording and layout helpers for the notifiers in this folder (not a public API).
// Every notifier says the same things: what is failing, since when (RFC 3339), how bad
// (ratio as %, samples, regions above), the emitters/reasons seen and the verdict when
// there is one; these helpers keep the wording identical across platforms.

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "alerting/notifier.h"

namespace gatewatch::alerting::render {

using Json = nlohmann::ordered_json;  // keys in insertion order: readable, stable payloads

std::string_view KindWord(Message::Kind k);    // "FIRING", "STILL FIRING", "RESOLVED", "TEST"
std::string_view KindStatus(Message::Kind k);  // Alertmanager status: "firing" | "resolved"
std::string_view KindEmoji(Message::Kind k);   // red circle, check mark, test tube

// "FIRING: shop-502 on shop"
std::string Title(const Message& m);
// "12.5%"
std::string Percent(double ratio);
// "2026-01-15T10:00:00.000Z (for 12m30s)" or "<start> until <end> (lasted 12m30s)"
std::string Since(const Message& m);
// "eu-proxy, local" or "none"
std::string Regions(const Message& m);
// Most frequent first: "nginx/upstream_timeout: 12, envoy/UF: 3, ... and 190 more".
std::string Emitters(const Message& m, size_t max_items = 10);

struct Fact {
  std::string name;
  std::string value;
};
// Severity, Verdict (when present), Since, Ratio, Samples, Regions above, Emitters.
std::vector<Fact> Facts(const Message& m);

// Facts ("Name: value"), evidence lines and the fingerprint, one per line: the
// Alertmanager "description" annotation.
std::string Details(const Message& m);
// The summary line, then Details(): plain-text bodies.
std::string PlainText(const Message& m);

// Alertmanager labels {alertname, monitor, severity} (severity only when set: an empty
// label value means "no label" to Alertmanager) and annotations {verdict, summary,
// description, ratio, regions}. The verdict is an annotation, not a label, because it may
// change during an incident (docs/alerts-and-diagnosis.md). Annotation texts are cut to our own bounds
// (Alertmanager documents none) so a payload stays small.
Json AlertmanagerLabels(const Message& m);
Json AlertmanagerAnnotations(const Message& m);
// The evidence lines as a bullet list ("<bullet>line\n..."), empty when there are none.
std::string Evidence(const Message& m, std::string_view bullet);

// TruncateUtf8 for texts that are escaped afterwards (Slack's &amp;): the escaped result
// is at most max_bytes, and the cut happens before escaping so no entity is split.
std::string FitEscaped(std::string_view raw, size_t max_bytes,
                       const std::function<std::string(std::string_view)>& escape,
                       std::string_view marker = kTruncatedMarker);

// Compact JSON; invalid UTF-8 is replaced (dump() would throw on it).
std::string Dump(const Json& j);

// Finds the largest text budget (<= start) for which build(budget) is at most max_bytes
// long and returns that body: for limits on a whole payload, where escaping makes the
// final size hard to predict. Shrinks by the overshoot each round, so it ends quickly.
std::string FitBody(size_t max_bytes, size_t start,
                    const std::function<std::string(size_t)>& build);

}  // namespace gatewatch::alerting::render
