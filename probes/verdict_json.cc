#include <nlohmann/json.hpp>

#include "probes/verdict.h"

namespace gatewatch::probes {
namespace {

using std::chrono::microseconds;

// ---------------------------------------------------------------------------------------------
// JSON.

using json = nlohmann::ordered_json;  // keys in the order written here (docs/alerts-and-diagnosis.md)

json TimeJson(const std::optional<SystemTime>& t) {
  return t ? json(FormatTime(*t)) : json(nullptr);
}

json MsJson(const std::optional<microseconds>& us) {
  return us ? json(static_cast<double>(us->count()) / 1000.0) : json(nullptr);
}

json CountsJson(const std::vector<NameCount>& counts) {
  json j = json::object();
  for (const auto& c : counts) j[c.name] = c.count;
  return j;
}

json FactsJson(const ResultFacts& f) {
  return {{"region", f.region},
          {"started_at", FormatTime(f.started_at)},
          {"outcome", ToString(f.outcome)},
          {"http_status", f.http_status},
          {"emitter", ToString(f.emitter)},
          {"reason", ToString(f.reason)},
          {"processing_ms", MsJson(f.processing)},
          {"total_ms", MsJson(f.total)},
          {"detail", f.detail}};
}

json FactsJson(const std::optional<ResultFacts>& f) { return f ? FactsJson(*f) : json(nullptr); }

json RegionJson(const RegionEvidence& r) {
  return {{"region", r.region},
          {"results", r.results},
          {"failures", r.failures},
          {"outcomes", CountsJson(r.outcomes)},
          {"failing_since", TimeJson(r.failing_since)},
          {"current", FactsJson(r.current)}};
}

json UpstreamJson(const UpstreamEvidence& u) {
  return {{"name", u.name},
          {"state", ToString(u.state)},
          {"regions", u.regions},
          {"results", u.results},
          {"failures", u.failures},
          {"latest", FactsJson(u.latest)},
          {"failing_since", TimeJson(u.failing_since)},
          {"max_processing_ms", MsJson(u.max_processing)},
          {"max_total_ms", MsJson(u.max_total)}};
}

json TlsJson(const Evidence& ev) {
  if (!ev.tls) return nullptr;
  return {{"region", ev.tls_region},
          {"version", ev.tls->version},
          {"subject", ev.tls->subject},
          {"issuer", ev.tls->issuer},
          {"earliest_expiry", TimeJson(ev.tls->earliest_expiry)},
          {"earliest_expiry_subject", ev.tls->earliest_expiry_subject}};
}

json DnsJson(const Evidence& ev) {
  if (!ev.dns_change) return nullptr;
  return {{"region", ev.dns_change->region},
          {"before", ev.dns_change->before},
          {"after", ev.dns_change->after},
          {"at", FormatTime(ev.dns_change->at)}};
}

json ListJson(const auto& items, auto to_json) {
  json j = json::array();
  for (const auto& item : items) j.push_back(to_json(item));
  return j;
}
}  // namespace

std::string EvidenceToJson(const Diagnosis& d) {
  const Evidence& ev = d.evidence;
  json headers = json::object();
  for (const auto& [name, value] : ev.sample_headers) {
    if (!headers.contains(name)) headers[name] = value;
  }
  json j = {
      {"verdict", ToString(d.verdict)},
      {"summary", d.summary},
      {"monitor", ev.monitor},
      {"window", {{"start", TimeJson(ev.window_start)}, {"end", FormatTime(ev.window_end)}}},
      {"results", ev.results},
      {"failures", ev.failures},
      {"ignored",
       {{"unconfirmed", ev.ignored.unconfirmed},
        {"outside_window", ev.ignored.outside_window},
        {"other_monitor", ev.ignored.other_monitor}}},
      {"first_failure", TimeJson(ev.first_failure)},
      {"last_failure", TimeJson(ev.last_failure)},
      {"failing_since", TimeJson(ev.failing_since)},
      {"regions", ListJson(ev.regions, [](const RegionEvidence& r) { return RegionJson(r); })},
      {"failing_regions", ev.failing_regions},
      {"healthy_regions", ev.healthy_regions},
      {"outcomes", CountsJson(ev.outcomes)},
      {"emitters", CountsJson(ev.emitters)},
      {"reasons", CountsJson(ev.reasons)},
      {"latest_failure", FactsJson(ev.latest_failure)},
      {"sample_headers", headers},
      {"sample_body", ev.sample_body},
      {"upstreams",
       ListJson(ev.upstreams, [](const UpstreamEvidence& u) { return UpstreamJson(u); })},
      {"slowest_upstream", ev.slowest_upstream.empty() ? json(nullptr) : json(ev.slowest_upstream)},
      {"gives_up_after_ms", MsJson(ev.gives_up_after)},
      {"resolved_sets", ListJson(ev.resolved_sets,
                                 [](const AddressSet& s) {
                                   return json{{"addresses", s.addresses},
                                               {"results", s.results},
                                               {"regions", s.regions}};
                                 })},
      {"dns_change", DnsJson(ev)},
      {"tls", TlsJson(ev)},
      {"as_of", TimeJson(ev.as_of)},
      {"recovered_at", TimeJson(ev.recovered_at)},
      {"notes", ev.notes},
  };
  // Body snippets and details are bytes from the network: replace invalid UTF-8, never throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace gatewatch::probes
