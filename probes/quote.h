#pragma once
// Values quoted in error messages and log lines. A config value or a request byte must not
// break an error over several lines (each error is one line with file:line:col), put
// terminal escapes into an operator's terminal or CI log, or print a secret.

#include <string>
#include <string_view>

namespace gatewatch {

// `text` in double quotes, one line whatever it holds: `"` and `\` escaped, \n \r \t as
// such, other control characters, DEL and C1 controls as \xNN / \uNNNN, U+2028 and U+2029
// as \u2028 / \u2029, bytes that are not UTF-8 as \xNN. Printable UTF-8 stays as it is.
std::string Quoted(std::string_view text);

// The same escaping without the quotes and with '"' and '\' as they are: for a whole error
// line that may carry such bytes (a parser's message, a key path).
std::string OneLine(std::string_view text);

// An http(s) URL with the user info of its authority ("user:secret@") replaced by "***@";
// anything else unchanged.
std::string RedactUserInfo(std::string_view url);

}  // namespace gatewatch
