#include "probes/config.h"

namespace gatewatch::probes {

std::string StatusMatcher::ToString() const {
  return code != 0 ? std::to_string(code) : std::to_string(klass) + "xx";
}

std::vector<FieldError> RegionConfig::Validate() const {
  std::vector<FieldError> errors;
  if (!proxy.empty() && !dns_servers.empty()) {
    errors.push_back({"dns_servers",
                      "dns_servers cannot be combined with proxy: through a proxy the proxy "
                      "resolves names; remove one of them"});
  }
  return errors;
}

std::vector<FieldError> ProbeSettings::Validate() const {
  std::vector<FieldError> errors;
  if (timeout > interval) {
    errors.push_back({"timeout", "timeout (" + FormatDuration(timeout) +
                                     ") must not exceed interval (" + FormatDuration(interval) +
                                     "): the next probe would be due before this one ends"});
  }
  const std::pair<const char*, const std::optional<Duration>*> phases[] = {
      {"connect_timeout", &connect_timeout},
      {"resolve_timeout", &resolve_timeout},
      {"tls_timeout", &tls_timeout}};
  for (const auto& [key, value] : phases) {
    if (value->has_value() && **value > timeout) {
      errors.push_back({key, std::string(key) + " (" + FormatDuration(**value) +
                                 ") must not exceed timeout (" + FormatDuration(timeout) + ")"});
    }
  }
  if (!body.empty() && (method == "GET" || method == "HEAD")) {
    errors.push_back({"body", "a request body needs method POST, PUT or PATCH (method is " +
                                  method + ")"});
  }
  return errors;
}

std::vector<FieldError> MonitorConfig::Validate() const {
  std::vector<FieldError> errors = probe.Validate();
  for (const std::string& up : upstreams) {
    if (up == name) errors.push_back({"upstreams", "a monitor cannot be its own upstream"});
  }
  return errors;
}

}  // namespace gatewatch::probes
