#include "daemon/check.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "daemon/cli.h"
#include "daemon/config.h"
#include "daemon/result_json.h"
#include "gatewatch_version.h"
#include "probes/http_prober.h"
#include "probes/url.h"
#include "probes/verdict.h"

namespace gatewatch::daemon {
namespace {

using probes::ProbeResult;

// Slack for the engine beyond the probe timeout before check gives up waiting.
constexpr auto kWaitSlack = std::chrono::seconds(5);

struct Target {
  std::string name;
  std::string url;
};

struct Plan {
  probes::ProbeSettings settings;
  std::vector<probes::RegionConfig> regions;  // the requested ones, in order
  Target target;
  std::vector<Target> upstreams;
};

// results[region][0] is the target's, results[region][1 + i] upstream i's.
using Results = std::vector<std::vector<ProbeResult>>;

// ---------------------------------------------------------------------------------------------
// What to probe from where. Each returns false after writing one clear line to `err`.

bool LoadSettings(const CheckOptions& o, Plan& plan, std::vector<probes::RegionConfig>& known,
                  std::ostream& err) {
  plan.settings.user_agent = std::string("gatewatch/") + kVersion;
  known = {probes::RegionConfig{"local", "", {}, ""}};
  if (o.config) {
    auto cfg = LoadConfigFile(*o.config);
    if (!cfg) {
      for (const ConfigError& e : cfg.error()) err << e.ToString() << "\n";
      return false;
    }
    plan.settings = cfg->defaults;
    known = cfg->regions;  // server.region first
  }
  plan.settings.retries = 0;  // one probe now
  if (o.timeout) {
    plan.settings.timeout = *o.timeout;
    plan.settings.interval = std::max(plan.settings.interval, *o.timeout);
  }
  if (o.insecure) plan.settings.tls_skip_verify = true;
  return true;
}

bool PickRegions(const CheckOptions& o, const std::vector<probes::RegionConfig>& known, Plan& plan,
                 std::ostream& err) {
  const std::vector<std::string> wanted =
      o.regions.empty() ? std::vector<std::string>{known.front().name} : o.regions;
  std::set<std::string> seen;
  for (const std::string& name : wanted) {
    if (!seen.insert(name).second) {
      err << "gatewatch: --region \"" << name << "\" given twice\n";
      return false;
    }
    auto it = std::find_if(known.begin(), known.end(),
                           [&](const probes::RegionConfig& r) { return r.name == name; });
    if (it == known.end()) {
      err << "gatewatch: unknown region \"" << name << "\""
          << (o.config ? " in " + *o.config
                       : std::string(" (give --config FILE with its [regions])"))
          << "\n";
      return false;
    }
    plan.regions.push_back(*it);
  }
  return true;
}

// Short names, except where two upstreams would share one (see check.h).
bool NameTargets(const CheckOptions& o, Plan& plan, std::ostream& err) {
  plan.target = {CheckName(o.url), o.url};
  std::map<std::string, int> short_names;
  std::set<std::string> urls;
  for (const std::string& url : o.upstreams) {
    if (!urls.insert(url).second) {
      err << "gatewatch: --upstream " << url << " given twice\n";
      return false;
    }
    ++short_names[CheckName(url)];
  }
  for (const std::string& url : o.upstreams) {
    plan.upstreams.push_back({short_names[CheckName(url)] > 1 ? url : CheckName(url), url});
  }
  if (auto parsed = ParseHttpUrl(o.url); !parsed) {
    err << "gatewatch: target: " << parsed.error() << "\n";
    return false;
  }
  for (size_t i = 0; i < o.upstreams.size(); ++i) {
    if (auto parsed = ParseHttpUrl(o.upstreams[i]); !parsed) {
      err << "gatewatch: upstream-" << i + 1 << " (" << o.upstreams[i] << "): " << parsed.error()
          << "\n";
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Probing: every target from every region at once, so that the upstreams are compared within
// the same second as the target (the verdict engine's alignment relies on it).

// Collects the results; outlives the prober's callbacks because the prober is stopped first.
struct Collector {
  std::mutex mu;  // guards results and done
  std::condition_variable cv;
  Results results;
  size_t done = 0;
};

std::optional<Results> ProbeAll(const CheckOptions& o, const Plan& plan) {
  std::vector<Target> all = {plan.target};
  all.insert(all.end(), plan.upstreams.begin(), plan.upstreams.end());
  Collector c;
  c.results.assign(plan.regions.size(), std::vector<ProbeResult>(all.size()));
  const size_t total = plan.regions.size() * all.size();

  RealClock clock;
  probes::HttpProber::Options engine_options;
  // All at once: a probe waiting for a slot would no longer be "at the same moment".
  engine_options.max_in_flight = static_cast<int>(std::max<size_t>(64, total));
  if (o.ca_file) engine_options.ca_file = *o.ca_file;
  probes::HttpProber prober(engine_options, clock);
  for (size_t r = 0; r < plan.regions.size(); ++r) {
    auto region = std::make_shared<const probes::RegionConfig>(plan.regions[r]);
    for (size_t t = 0; t < all.size(); ++t) {
      auto monitor = std::make_shared<probes::MonitorConfig>();
      monitor->name = all[t].name;
      monitor->url = all[t].url;
      monitor->regions = {region->name};
      monitor->probe = plan.settings;
      probes::ProbeJob job;
      job.monitor = std::move(monitor);
      job.region = region;
      job.on_result = [&c, r, t](ProbeResult result) {
        std::lock_guard lock(c.mu);
        c.results[r][t] = std::move(result);
        ++c.done;
        c.cv.notify_all();
      };
      prober.Submit(std::move(job));
    }
  }
  bool finished = false;
  {
    std::unique_lock lock(c.mu);
    finished =
        c.cv.wait_for(lock, plan.settings.timeout + kWaitSlack, [&] { return c.done == total; });
  }
  prober.Stop();  // joins the engine thread: no callback runs after this
  if (!finished) return std::nullopt;
  return std::move(c.results);
}

probes::Diagnosis DiagnoseResults(const Plan& plan, const Results& results) {
  probes::DiagnosisInput in;
  in.monitor = plan.target.name;
  for (const auto& per_region : results) {
    in.results.push_back(per_region[0]);
    for (size_t i = 0; i < plan.upstreams.size(); ++i) {
      in.upstreams[plan.upstreams[i].name].push_back(per_region[1 + i]);
    }
  }
  // Every result given counts (window 0): they are all from this moment.
  in.now = RealClock().Now();
  return probes::Diagnose(in);
}

// ---------------------------------------------------------------------------------------------
// Human output: each probe, then the diagnosis.

// "0.4ms", "812.3ms", "2.002s".
std::string Ms(std::chrono::microseconds us) {
  char buf[32];
  const double ms = static_cast<double>(us.count()) / 1000.0;
  if (ms >= 1000.0) {
    std::snprintf(buf, sizeof buf, "%.3fs", ms / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fms", ms);
  }
  return buf;
}

std::string PhaseLine(const probes::PhaseTimings& p) {
  std::string out;
  for (const probes::PhaseField& f : probes::kPhases) {
    if (const auto& value = p.*f.member) {
      out += std::string(out.empty() ? "" : "  ") + std::string(f.name) + " " + Ms(*value);
    }
  }
  return out;
}

std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    const bool space = c == '\n' || c == '\r' || c == '\t';
    out += space ? ' ' : (static_cast<unsigned char>(c) < 0x20 ? '.' : c);
  }
  if (s.size() > max) out += "...";
  return out;
}

void PrintTls(std::ostream& out, const probes::TlsFacts& tls) {
  out << "  tls       " << tls.version << "  subject " << tls.subject << "  issuer " << tls.issuer;
  if (tls.earliest_expiry) out << "  earliest expiry " << FormatTime(*tls.earliest_expiry);
  out << "\n";
}

void PrintResult(std::ostream& out, const std::string& label, const Target& t,
                 const ProbeResult& r) {
  out << label << "  " << t.url << "  (region " << r.region << ")\n";
  out << "  outcome   " << probes::ToString(r.outcome);
  if (r.http_status > 0) out << "  (status " << r.http_status << ", HTTP/" << r.http_version << ")";
  out << "\n";
  if (r.http_status >= 500) {
    out << "  emitter   " << probes::ToString(r.emitter) << "  reason "
        << probes::ToString(r.reason) << "\n";
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
  if (!r.tls.version.empty() || r.tls.earliest_expiry) PrintTls(out, r.tls);
  for (const auto& [name, value] : r.headers)
    out << "  header    " << name << ": " << value << "\n";
  if (!r.body_snippet.empty()) out << "  body      " << Printable(r.body_snippet, 160) << "\n";
  if (!r.detail.empty()) out << "  detail    " << r.detail << "\n";
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : std::string(sep)) + item;
  return s.empty() ? "-" : s;
}

// "http_502 from nginx", "ok (200)", "http_5xx (522) from cloudflare": one result in a phrase.
std::string Describe(const probes::ResultFacts& f) {
  std::string s(probes::ToString(f.outcome));
  const std::string status = std::to_string(f.http_status);
  if (f.http_status > 0 && s.find(status) == std::string::npos) s += " (" + status + ")";
  if (f.emitter != probes::Emitter::kNone) s += " from " + std::string(probes::ToString(f.emitter));
  return s;
}

void PrintRegions(std::ostream& out, const probes::Evidence& ev) {
  std::vector<std::string> failing;
  for (const auto& r : ev.regions) {
    if (r.failing_since) failing.push_back(r.region + " (" + Describe(r.current) + ")");
  }
  out << "failing   " << Join(failing, ", ") << "\n";
  out << "healthy   " << Join(ev.healthy_regions, ", ") << "\n";
}

void PrintUpstreams(std::ostream& out, const probes::Evidence& ev) {
  for (const auto& u : ev.upstreams) {
    out << "upstream  " << u.name << "  " << probes::ToString(u.state);
    if (u.latest) out << "  " << Describe(*u.latest) << " in " << u.latest->region;
    if (u.max_total) out << "  total " << Ms(*u.max_total);
    out << "\n";
  }
  if (!ev.slowest_upstream.empty()) out << "slowest   " << ev.slowest_upstream << "\n";
}

void PrintFacts(std::ostream& out, const probes::Diagnosis& d) {
  const probes::Evidence& ev = d.evidence;
  if (ev.latest_failure && ev.latest_failure->emitter != probes::Emitter::kNone) {
    out << "emitter   " << probes::ToString(ev.latest_failure->emitter) << "  reason "
        << probes::ToString(ev.latest_failure->reason) << "\n";
  }
  if (ev.tls) {
    out << "cert      " << ev.tls->subject << "  issuer " << ev.tls->issuer;
    if (ev.tls->earliest_expiry) out << "  not after " << FormatTime(*ev.tls->earliest_expiry);
    out << "  (region " << ev.tls_region << ")\n";
  }
  if (ev.dns_change) {
    out << "dns       " << ev.dns_change->region << ": " << Join(ev.dns_change->before, " ")
        << " -> " << Join(ev.dns_change->after, " ") << "\n";
  }
  const bool addresses_matter = d.verdict == probes::Verdict::kDns ||
                                d.verdict == probes::Verdict::kRegional ||
                                ev.resolved_sets.size() > 1;
  for (size_t i = 0; addresses_matter && i < ev.resolved_sets.size(); ++i) {
    const probes::AddressSet& set = ev.resolved_sets[i];
    out << "resolved  " << Join(set.addresses, " ") << "  in " << Join(set.regions, ", ") << "\n";
  }
  for (const auto& note : ev.notes) out << "note      " << note << "\n";
}

void PrintHuman(std::ostream& out, const Plan& plan, const Results& results,
                const probes::Diagnosis& d) {
  for (const auto& per_region : results) {
    PrintResult(out, "target", plan.target, per_region[0]);
    for (size_t i = 0; i < plan.upstreams.size(); ++i) {
      PrintResult(out, "upstream " + plan.upstreams[i].name, plan.upstreams[i], per_region[1 + i]);
    }
  }
  out << "\nverdict   " << probes::ToString(d.verdict) << "\n";
  out << "summary   " << d.summary << "\n";
  PrintRegions(out, d.evidence);
  PrintUpstreams(out, d.evidence);
  PrintFacts(out, d);
}

// ---------------------------------------------------------------------------------------------
// JSON output.

nlohmann::ordered_json ResultJson(const Target& t, const ProbeResult& r) {
  nlohmann::ordered_json j = {{"name", t.name}, {"url", t.url}};
  j.update(ToJson(r));
  return j;
}

nlohmann::ordered_json UpstreamsJson(const Plan& plan, const std::vector<ProbeResult>& per_region) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (size_t i = 0; i < plan.upstreams.size(); ++i) {
    list.push_back(ResultJson(plan.upstreams[i], per_region[1 + i]));
  }
  return list;
}

void PrintJson(std::ostream& out, const Plan& plan, const Results& results,
               const probes::Diagnosis& d) {
  nlohmann::ordered_json regions = nlohmann::ordered_json::array();
  for (const auto& r : plan.regions) regions.push_back(r.name);
  nlohmann::ordered_json others = nlohmann::ordered_json::array();
  for (size_t r = 1; r < results.size(); ++r) {
    others.push_back({{"region", plan.regions[r].name},
                      {"target", ResultJson(plan.target, results[r][0])},
                      {"upstreams", UpstreamsJson(plan, results[r])}});
  }
  // The verdict first for people reading it; every object keeps the order written.
  nlohmann::ordered_json j = {{"verdict", probes::ToString(d.verdict)},
                              {"summary", d.summary},
                              {"healthy", d.verdict == probes::Verdict::kHealthy},
                              {"regions", std::move(regions)},
                              {"target", ResultJson(plan.target, results[0][0])},
                              {"upstreams", UpstreamsJson(plan, results[0])},
                              {"other_regions", std::move(others)},
                              {"evidence", nlohmann::ordered_json::parse(probes::EvidenceToJson(d))}};
  // Headers and body snippets are bytes from the network: replace invalid UTF-8, never throw.
  out << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
}

}  // namespace

std::string CheckName(std::string_view url) {
  const size_t scheme_end = url.find("://");
  std::string_view name = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
  // A lone "/" path says nothing: "127.0.0.1:8081/" -> "127.0.0.1:8081".
  if (name.size() > 1 && name.find('/') == name.size() - 1) name.remove_suffix(1);
  return std::string(name);
}

int RunCheck(const CheckOptions& o, std::ostream& out, std::ostream& err) {
  Plan plan;
  std::vector<probes::RegionConfig> known;
  if (!LoadSettings(o, plan, known, err) || !PickRegions(o, known, plan, err) ||
      !NameTargets(o, plan, err)) {
    return kExitUsage;
  }
  const std::optional<Results> results = ProbeAll(o, plan);
  if (!results) {
    err << "gatewatch: probes did not finish within their timeout\n";
    return kExitFailed;
  }
  const probes::Diagnosis d = DiagnoseResults(plan, *results);
  if (o.json) {
    PrintJson(out, plan, *results, d);
  } else {
    PrintHuman(out, plan, *results, d);
  }
  return d.verdict == probes::Verdict::kHealthy ? kExitOk : kExitFailed;
}

}  // namespace gatewatch::daemon
