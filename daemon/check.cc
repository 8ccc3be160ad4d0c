#include "daemon/check.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "daemon/config.h"
#include "daemon/result_json.h"
#include "gatewatch_version.h"
#include "probes/engine.h"
#include "probes/url.h"

namespace gatewatch::daemon {
namespace {

using probes::ProbeResult;

std::string Ms(std::chrono::microseconds us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fms", static_cast<double>(us.count()) / 1000.0);
  return buf;
}

std::string PhaseLine(const probes::PhaseTimings& p) {
  std::string out;
  const std::pair<const char*, const std::optional<std::chrono::microseconds>*> all[] = {
      {"resolve", &p.resolve}, {"connect", &p.connect},   {"tls", &p.tls},
      {"processing", &p.processing}, {"transfer", &p.transfer}, {"total", &p.total}};
  for (const auto& [name, value] : all) {
    if (value->has_value()) out += std::string(out.empty() ? "" : "  ") + name + " " + Ms(**value);
  }
  return out;
}

std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : (static_cast<unsigned char>(c) < 0x20 ? '.' : c);
  }
  if (s.size() > max) out += "...";
  return out;
}

void PrintResult(std::ostream& out, const std::string& label, const std::string& url,
                 const ProbeResult& r) {
  out << label << "  " << url << "  (region " << r.region << ")\n";
  out << "  outcome   " << probes::ToString(r.outcome);
  if (r.http_status > 0) out << "  (status " << r.http_status << ", HTTP/" << r.http_version << ")";
  out << "\n";
  if (r.http_status >= 500) {
    out << "  emitter   " << probes::ToString(r.emitter) << "  reason " << probes::ToString(r.reason) << "\n";
  }
  out << "  phases    " << PhaseLine(r.phases) << "\n";
  if (!r.remote_ip.empty() || !r.resolved.empty()) {
    out << "  address   " << (r.remote_ip.empty() ? "-" : r.remote_ip);
    if (!r.resolved.empty()) {
      out << "  (resolved:";
      for (const auto& a : r.resolved) out << " " << a;
      out << ")";
    }
    out << "\n";
  }
  if (!r.tls.version.empty() || r.tls.earliest_expiry) {
    out << "  tls       " << r.tls.version << "  subject " << r.tls.subject << "  issuer " << r.tls.issuer;
    if (r.tls.earliest_expiry) out << "  earliest expiry " << FormatTime(*r.tls.earliest_expiry);
    out << "\n";
  }
  for (const auto& [name, value] : r.headers) out << "  header    " << name << ": " << value << "\n";
  if (!r.body_snippet.empty()) out << "  body      " << Printable(r.body_snippet, 160) << "\n";
  if (!r.detail.empty()) out << "  detail    " << r.detail << "\n";
}

std::string Describe(const ProbeResult& r) {
  std::string s(probes::ToString(r.outcome));
  if (r.http_status >= 500 && r.emitter != probes::Emitter::kNone) {
    s += " from " + std::string(probes::ToString(r.emitter));
    if (r.reason != probes::Reason::kUnknown) s += " (" + std::string(probes::ToString(r.reason)) + ")";
  }
  return s;
}

// One line: how the gateway and its upstreams compare. The full verdict engine comes
// with the diagnosis work; this states the facts side by side.
std::string Comparison(const ProbeResult& target, const std::vector<ProbeResult>& ups) {
  int failing = 0;
  std::string failures;
  for (const auto& u : ups) {
    if (!probes::IsFailure(u.outcome)) continue;
    ++failing;
    failures += std::string(failures.empty() ? "" : ", ") + u.monitor + " " + Describe(u);
  }
  std::string line = probes::IsFailure(target.outcome) ? "target fails: " + Describe(target)
                                                       : std::string("target healthy");
  line += "; " + std::to_string(failing) + "/" + std::to_string(ups.size()) + " upstreams failing";
  if (!failures.empty()) line += " (" + failures + ")";
  return line;
}

}  // namespace

int RunCheck(const CheckOptions& o, std::ostream& out, std::ostream& err) {
  probes::ProbeSettings settings;
  settings.user_agent = std::string("gatewatch/") + kVersion;
  std::vector<probes::RegionConfig> regions = {probes::RegionConfig{"local", "", {}, ""}};
  if (o.config) {
    auto cfg = LoadConfigFile(*o.config);
    if (!cfg) {
      for (const ConfigError& e : cfg.error()) err << e.ToString() << "\n";
      return 2;
    }
    settings = cfg->defaults;
    regions = cfg->regions;
  }
  const std::string region_name = o.region.value_or(regions.front().name);
  auto region_it = std::find_if(regions.begin(), regions.end(),
                                [&](const auto& r) { return r.name == region_name; });
  if (region_it == regions.end()) {
    err << "gatewatch: unknown region \"" << region_name << "\""
        << (o.config ? " in " + *o.config : std::string(" (give --config FILE with its [regions]"))
        << (o.config ? "" : ")") << "\n";
    return 2;
  }
  settings.retries = 0;  // one probe now
  if (o.timeout) {
    settings.timeout = *o.timeout;
    settings.interval = std::max(settings.interval, *o.timeout);
  }
  if (o.insecure) settings.tls_skip_verify = true;

  std::vector<std::pair<std::string, std::string>> targets = {{"target", o.url}};
  for (size_t i = 0; i < o.upstreams.size(); ++i) {
    targets.emplace_back("upstream-" + std::to_string(i + 1), o.upstreams[i]);
  }
  for (const auto& [name, url] : targets) {
    if (auto parsed = ParseHttpUrl(url); !parsed) {
      err << "gatewatch: " << name << ": " << parsed.error() << "\n";
      return 2;
    }
  }

  RealClock clock;
  probes::HttpProber::Options engine_options;
  engine_options.max_in_flight = 64;
  if (o.ca_file) engine_options.ca_file = *o.ca_file;
  probes::HttpProber prober(engine_options, clock);
  auto region = std::make_shared<const probes::RegionConfig>(*region_it);

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<ProbeResult>> results(targets.size());
  size_t done = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    auto monitor = std::make_shared<probes::MonitorConfig>();
    monitor->name = targets[i].first;
    monitor->url = targets[i].second;
    monitor->regions = {region_name};
    monitor->probe = settings;
    probes::ProbeJob job;
    job.monitor = std::move(monitor);
    job.region = region;
    job.on_result = [&, i](ProbeResult r) {
      std::lock_guard lock(mu);
      results[i] = std::move(r);
      ++done;
      cv.notify_all();
    };
    prober.Submit(std::move(job));
  }
  {
    std::unique_lock lock(mu);
    const bool all = cv.wait_for(lock, settings.timeout + std::chrono::seconds(5),
                                 [&] { return done == targets.size(); });
    if (!all) {
      err << "gatewatch: probes did not finish within their timeout\n";
      return 1;
    }
  }
  prober.Stop();

  std::vector<ProbeResult> ups;
  for (size_t i = 1; i < results.size(); ++i) ups.push_back(*results[i]);
  bool healthy = !probes::IsFailure(results[0]->outcome);
  for (const auto& u : ups) healthy = healthy && !probes::IsFailure(u.outcome);

  if (o.json) {
    nlohmann::json j = {{"target", ToJson(*results[0])}, {"healthy", healthy}};
    j["target"]["url"] = o.url;
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 0; i < ups.size(); ++i) {
      auto u = ToJson(ups[i]);
      u["url"] = o.upstreams[i];
      list.push_back(std::move(u));
    }
    j["upstreams"] = std::move(list);
    if (!ups.empty()) j["comparison"] = Comparison(*results[0], ups);
    out << j.dump(2) << "\n";
  } else {
    PrintResult(out, "target", o.url, *results[0]);
    for (size_t i = 0; i < ups.size(); ++i) PrintResult(out, ups[i].monitor, o.upstreams[i], ups[i]);
    if (!ups.empty()) out << "comparison: " << Comparison(*results[0], ups) << "\n";
    out << (healthy ? "healthy" : "NOT healthy") << "\n";
  }
  return healthy ? 0 : 1;
}

}  // namespace gatewatch::daemon
