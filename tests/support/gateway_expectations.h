#pragma once
// What each real gateway (tests/gateways/) answers in each situation, and what gatewatch
// must make of it: written by hand from the captures in tests/fixtures/responses/GATEWAY/
// and the gateways' logs, never from the rule table in probes/fingerprint.cc. Three tests
// read it: the fingerprint test over the committed captures, and the live tests that run
// `gatewatch check` and the daemon against the running gateways.

#include <span>
#include <string_view>

namespace gatewatch::testing {

struct GatewayCase {
  std::string_view gateway;    // folder under tests/gateways/
  std::string_view situation;  // refused, silent, slow, garbage, close, pool_down, app503, healthy
  int status;                  // HTTP status the gateway answers; 0: no HTTP response
  std::string_view outcome;    // gatewatch's outcome for a probe of the gateway
  std::string_view emitter;    // who generated the page ("none" below 500)
  std::string_view reason;     // what the page says went wrong ("unknown" where it cannot tell)
  // The verdict of `check GATEWAY --upstream UPSTREAM` (the situation's upstream probed
  // directly), and of the gateway alone (a monitor without linked upstreams).
  std::string_view verdict_linked;
  std::string_view verdict_alone;
};

// Every gateway x situation the manifests define (a situation a gateway cannot be in is
// absent, with the reason in its manifest's "absent").
std::span<const GatewayCase> GatewayCases();

}  // namespace gatewatch::testing
