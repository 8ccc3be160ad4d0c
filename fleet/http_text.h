#pragma once
// HTTP/1.1 response text helpers shared by the fleet servers and pages.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatewatch::fleet {

// "Bad Gateway" for 502; "Unknown" for codes without a standard phrase.
std::string_view ReasonPhrase(int code);

// A header value that BuildResponse replaces with the body's size in bytes.
inline constexpr std::string_view kBodyLength = "<body-length>";

// "HTTP/1.1 <status_line>\r\n" + "Name: value\r\n" per header (in the given order and
// spelling) + "\r\n" + body. Header values equal to kBodyLength become the body size, so
// a page keeps its emitter's header order and case ("content-length" for Envoy).
std::string BuildResponse(std::string_view status_line,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body);

}  // namespace gatewatch::fleet
