#pragma once
// Text helpers of the config loader that do not depend on TOML.

#include <cstddef>
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

// Bounds on the raw config text, checked before the TOML parser sees it. toml++ caps the
// nesting of values (at 256) but not the parts of a dotted key: it builds one nested table
// per part and recurses over the tree, so a key of 40,000 parts on one 80 KB line exhausts
// the stack. Within these bounds the tree is at most about 64 x 64 deep (keys of 64 parts in
// 64 nested inline tables), which takes toml++ well under 1 MiB of stack. No real config comes
// near them: the schema needs 2 levels of nesting (an inline table of headers) and keys of 3
// parts (regions.eu.proxy); the shipped examples are under 3 KiB with lines under 100 bytes.
inline constexpr size_t kMaxConfigBytes = size_t{4} << 20;       // the whole text
inline constexpr size_t kMaxConfigLineBytes = size_t{64} << 10;  // one line, without its \n
inline constexpr int kMaxKeyParts = 64;  // parts of one dotted key ("a.b.c" has 3)
inline constexpr int kMaxNesting = 64;   // arrays and inline tables, one inside another

// Where the text first exceeds a bound, as the TOML parser counts positions: lines from 1
// (a line ends at \n), columns from 1 in characters (UTF-8 sequences).
struct TextBoundError {
  int line = 0;
  int column = 0;
  std::string message;  // names the bound: "a key has more than 64 dotted parts (the limit)"
};

// The first bound the text exceeds, in this order: its size (reported where the limit falls),
// then whichever of line length, dotted-key parts and nesting comes first in the text.
// Strings (all four TOML kinds) and comments are skipped, so dots, brackets and braces in
// them count for nothing. Linear in the text, no recursion; text that is not valid TOML is
// scanned on a best-effort basis (the parser reports it).
std::optional<TextBoundError> CheckTextBounds(std::string_view text);

size_t EditDistance(std::string_view a, std::string_view b);

// The closest candidate when it is a plausible typo of `word`.
std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates);

}  // namespace gatewatch::daemon
