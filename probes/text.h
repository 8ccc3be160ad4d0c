#pragma once
// Text helpers shared by every module: UTF-8 well-formedness, and values quoted in error
// messages and log lines. A config value or a request byte must not break an error over
// several lines (each error is one line with file:line:col), put terminal escapes into an
// operator's terminal or CI log, or print a secret.

#include <cstddef>
#include <string>
#include <string_view>

namespace gatewatch {

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no overlongs,
// surrogates or code points past U+10FFFF), 0 when there is none. REQUIRES: i < s.size().
size_t Utf8SequenceLength(std::string_view s, size_t i);

// Whether all of `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

// `text` in double quotes, one line whatever it holds: `"` and `\` escaped, \n \r \t as
// such, other control characters, DEL and C1 controls as \xNN / \uNNNN, U+2028 and U+2029
// as \u2028 / \u2029, bytes that are not UTF-8 as \xNN. Printable UTF-8 stays as it is.
std::string Quoted(std::string_view text);

// The same escaping without the quotes and with '"' and '\' as they are: for a whole error
// line that may carry such bytes (a parser's message, a key path).
std::string OneLine(std::string_view text);

// `text` with ASCII letters lower-cased (header names, tokens); other bytes unchanged.
std::string AsciiLower(std::string_view text);

// `text` without leading spaces and tabs and without trailing spaces, tabs, CR and LF: a
// header line's name or value as read off the wire.
std::string_view TrimHttpSpace(std::string_view text);

// An http(s) URL with the user info of its authority ("user:secret@") replaced by "***@";
// anything else unchanged.
std::string RedactUserInfo(std::string_view url);

}  // namespace gatewatch
