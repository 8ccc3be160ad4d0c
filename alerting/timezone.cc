#include "alerting/timezone.h"

#include <date/tz.h>

#include <exception>
#include <string>

namespace gatewatch::alerting {

bool IsKnownTimeZone(std::string_view name) {
  if (name == "UTC") return true;
  try {
    return date::locate_zone(std::string(name)) != nullptr;
  } catch (const std::exception&) {
    return false;  // unknown name, or no tzdata installed
  }
}

}  // namespace gatewatch::alerting
