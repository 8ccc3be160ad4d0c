#include "alerting/notifiers/render.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "probes/duration.h"

namespace gatewatch::alerting::render {

std::string_view KindWord(Message::Kind k) {
  switch (k) {
    case Message::Kind::kFiring:
      return "FIRING";
    case Message::Kind::kResolved:
      return "RESOLVED";
    case Message::Kind::kReminder:
      return "STILL FIRING";
    case Message::Kind::kTest:
      return "TEST";
  }
  return "FIRING";
}

std::string_view KindStatus(Message::Kind k) {
  return k == Message::Kind::kResolved ? "resolved" : "firing";
}

std::string_view KindEmoji(Message::Kind k) {
  switch (k) {
    case Message::Kind::kFiring:
    case Message::Kind::kReminder:
      return "\U0001F534";  // red circle
    case Message::Kind::kResolved:
      return "\u2705";  // check mark
    case Message::Kind::kTest:
      return "\U0001F9EA";  // test tube
  }
  return "";
}

std::string Title(const Message& m) {
  return std::string(KindWord(m.kind)) + ": " + m.alert + " on " + m.monitor;
}

std::string Percent(double ratio) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f%%", ratio * 100.0);
  return buf;
}

namespace {

std::string Lasted(SystemTime from, SystemTime to) {
  const auto d = std::chrono::floor<std::chrono::seconds>(to - from);
  return FormatDuration(std::max(Duration(0), std::chrono::duration_cast<Duration>(d)));
}

}  // namespace

std::string Since(const Message& m) {
  if (m.ended) {
    return FormatTime(m.started) + " until " + FormatTime(*m.ended) + " (lasted " +
           Lasted(m.started, *m.ended) + ")";
  }
  return FormatTime(m.started) + " (for " + Lasted(m.started, m.at) + ")";
}

std::string Regions(const Message& m) {
  if (m.regions.empty()) return "none";
  std::string out;
  for (const auto& r : m.regions) out += (out.empty() ? "" : ", ") + r;
  return out;
}

std::string Emitters(const Message& m, size_t max_items) {
  if (m.emitters.empty()) return "none recorded";
  std::vector<std::pair<std::string, int64_t>> sorted(m.emitters.begin(), m.emitters.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  const size_t shown = std::min(max_items, sorted.size());
  for (size_t i = 0; i < shown; ++i) {
    out += (i ? ", " : "") + sorted[i].first + ": " + std::to_string(sorted[i].second);
  }
  if (sorted.size() > shown) out += " and " + std::to_string(sorted.size() - shown) + " more";
  return out;
}

std::vector<Fact> Facts(const Message& m) {
  std::vector<Fact> f;
  f.push_back({"Severity", m.severity.empty() ? "none" : m.severity});
  if (!m.verdict.empty()) f.push_back({"Verdict", m.verdict});
  f.push_back({"Since", Since(m)});
  // A resolved "down" alert measured nothing: no ratio, value or samples to show.
  const bool measured = m.kind != Message::Kind::kResolved || m.samples > 0 || !m.value.empty();
  if (measured) {
    f.push_back({m.value.empty() ? "Ratio" : "Value", m.value.empty() ? Percent(m.ratio) : m.value});
    f.push_back({"Samples", std::to_string(m.samples)});
  }
  f.push_back({"Regions above", Regions(m)});
  f.push_back({"Emitters", Emitters(m)});
  return f;
}

std::string Evidence(const Message& m, std::string_view bullet) {
  std::string out;
  for (const auto& line : m.description) {
    out += bullet;
    out += line;
    out += '\n';
  }
  if (!out.empty()) out.pop_back();
  return out;
}

std::string Details(const Message& m) {
  std::string out;
  for (const auto& f : Facts(m)) out += f.name + ": " + f.value + "\n";
  if (!m.description.empty()) out += "Evidence:\n" + Evidence(m, "- ") + "\n";
  out += "Fingerprint: " + m.fingerprint;
  return out;
}

std::string PlainText(const Message& m) { return m.summary + "\n" + Details(m); }

namespace {

constexpr size_t kAnnotationSummaryMax = 2048;
constexpr size_t kAnnotationDescriptionMax = 16384;
constexpr size_t kAnnotationRegionsMax = 2048;

}  // namespace

Json AlertmanagerLabels(const Message& m) {
  Json labels = {{"alertname", m.alert}, {"monitor", m.monitor}};
  if (!m.severity.empty()) labels["severity"] = m.severity;
  return labels;
}

Json AlertmanagerAnnotations(const Message& m) {
  std::string regions;
  for (const auto& r : m.regions) regions += (regions.empty() ? "" : ",") + r;
  char ratio[64];
  std::snprintf(ratio, sizeof ratio, "%g", m.ratio);
  return {{"verdict", m.verdict},
          {"summary", TruncateUtf8(m.summary, kAnnotationSummaryMax)},
          {"description", TruncateUtf8(Details(m), kAnnotationDescriptionMax)},
          {"ratio", ratio},
          {"regions", TruncateUtf8(regions, kAnnotationRegionsMax)}};
}

std::string FitEscaped(std::string_view raw, size_t max_bytes,
                       const std::function<std::string(std::string_view)>& escape,
                       std::string_view marker) {
  size_t budget = max_bytes;
  for (;;) {
    std::string out = escape(TruncateUtf8(raw, budget, marker));
    if (out.size() <= max_bytes) return out;
    const size_t over = out.size() - max_bytes;
    if (budget == 0) return {};
    budget = over >= budget ? 0 : budget - over;
  }
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string FitBody(size_t max_bytes, size_t start,
                    const std::function<std::string(size_t)>& build) {
  size_t budget = start;
  std::string body = build(budget);
  while (body.size() > max_bytes && budget > 0) {
    const size_t over = body.size() - max_bytes;
    budget = over >= budget ? 0 : budget - over;
    body = build(budget);
  }
  return body;
}

}  // namespace gatewatch::alerting::render
