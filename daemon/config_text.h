#pragma once
// Text helpers of the config loader that do not depend on TOML.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/result.h"

namespace gatewatch::daemon {

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnv();

// Replaces every ${NAME} with the variable's value. "$${" is a literal "${".
// Errors: unset variable (named), unterminated "${", invalid variable name.
Result<std::string> SubstituteEnv(std::string_view text, const EnvLookup& env);

size_t EditDistance(std::string_view a, std::string_view b);

// The closest candidate when it is a plausible typo of `word`.
std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates);

}  // namespace gatewatch::daemon
