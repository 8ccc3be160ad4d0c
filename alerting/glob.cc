#include "alerting/glob.h"

#include <fnmatch.h>

#include <string>

namespace gatewatch::alerting {

bool HasGlobChars(std::string_view pattern) {
  return pattern.find_first_of("*?[") != std::string_view::npos;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Names are plain text: no '/' or leading-dot rules (flags 0), a backslash escapes.
  return fnmatch(std::string(pattern).c_str(), std::string(text).c_str(), 0) == 0;
}

}  // namespace gatewatch::alerting
