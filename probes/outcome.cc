#include "probes/outcome.h"

namespace gatewatch::probes {

std::string_view ToString(Outcome o) { return kOutcomeNames[static_cast<size_t>(o)]; }

std::optional<Outcome> OutcomeFromString(std::string_view name) {
  for (size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == name) return static_cast<Outcome>(i);
  }
  return std::nullopt;
}

Outcome OutcomeForUnexpectedStatus(int status) {
  switch (status) {
    case 500: return Outcome::kHttp500;
    case 502: return Outcome::kHttp502;
    case 503: return Outcome::kHttp503;
    case 504: return Outcome::kHttp504;
    default: break;
  }
  if (status >= 500) return Outcome::kHttp5xx;  // incl. Cloudflare's 520-526
  if (status >= 400) return Outcome::kHttp4xx;
  return Outcome::kUnexpectedStatus;
}

}  // namespace gatewatch::probes
