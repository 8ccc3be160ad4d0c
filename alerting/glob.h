#pragma once
// Shell-style globs for monitor names in alerts and silences (POSIX fnmatch): `*` any run
// of characters, `?` one character, `[abc]` / `[a-z]` / `[!a]` a set, `\*` a literal star.
// No path semantics.

#include <string_view>

namespace gatewatch::alerting {

bool GlobMatch(std::string_view pattern, std::string_view text);
bool HasGlobChars(std::string_view pattern);

}  // namespace gatewatch::alerting
