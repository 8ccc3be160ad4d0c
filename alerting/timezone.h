#pragma once
// Time-zone names for silences' weekly windows (IANA names such as "Europe/Berlin",
// from the system's tzdata).

#include <string_view>

namespace gatewatch::alerting {

bool IsKnownTimeZone(std::string_view name);

}  // namespace gatewatch::alerting
