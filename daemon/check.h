#pragma once
// `gatewatch check URL [--upstream URL]... [--region NAME]... [--config FILE] [--json]`: one
// probe of the target now from each requested region, one of each upstream from the same
// regions at the same time, and the verdict of the diagnosis engine (probes::Diagnose,
// docs/alerts-and-diagnosis.md) on those results, with its summary and evidence. check only probes and prints:
// every rule lives in probes/verdict.cc.
//
// Names (they appear in the summary): the target and each upstream are named by their URL
// without the scheme and without a lone trailing "/" ("http://127.0.0.1:8081/" ->
// "127.0.0.1:8081", "https://api:8443/healthz" -> "api:8443/healthz"); upstreams whose short
// names collide (http and https of one address) keep their full URLs. The same upstream URL
// given twice is a usage error.
//
// Regions: each --region must name a region of the config (without --config only "local"
// exists); the same region twice is a usage error. No --region: the config's own region
// (server.region, "local" by default) only.
//
// One probe per target and region, no retries, no history: the verdict is the current state.
// `transient` (an incident that already closed) needs the daemon's stored results; check
// never returns it.
//
// Thread: the caller's; it blocks until every probe finished (at most the probe timeout plus
// a few seconds). Runs its own HttpProber, stopped before returning.

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "probes/duration.h"

namespace gatewatch::daemon {

struct CheckOptions {
  std::string url;
  std::vector<std::string> upstreams;
  std::optional<std::string> config;  // probe defaults and regions from this file
  std::vector<std::string> regions;   // empty: the config's own region (or "local")
  std::optional<Duration> timeout;
  std::optional<std::string> ca_file;
  bool insecure = false;  // tls_skip_verify
  bool json = false;
};

// The name a target or upstream URL gets in the verdict (see the header comment).
std::string CheckName(std::string_view url);

// Returns the exit code: 0 when the verdict is `healthy`, 1 for any other verdict (or when
// the probes did not finish), 2 on bad usage or config (message on `err`, nothing on `out`).
//
// Output (`out`): per probe the region, outcome, status, phases, address, TLS facts, headers,
// body start and detail; then the diagnosis: `verdict`, `summary`, failing and healthy
// regions, each upstream's state and outcome, the failure's emitter and reason, TLS facts
// (tls), resolved addresses (dns, regional), notes. With json: one object {"verdict",
// "summary", "healthy" (verdict == healthy), "regions" (probed, in order), "target" and
// "upstreams" (results of the first region, each with "name" and "url"), "other_regions"
// ([{"region", "target", "upstreams"}] for the rest), "evidence" (probes::EvidenceToJson)}.
int RunCheck(const CheckOptions& options, std::ostream& out, std::ostream& err);

}  // namespace gatewatch::daemon
