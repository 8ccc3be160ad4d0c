// One notifier POST with libcurl (Send): the request, its Retry-After, and result texts with
// the notifier's url and secret redacted.

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>

#include "alerting/delivery.h"
#include "alerting/http_post_request.h"
#include "gatewatch_version.h"
#include "probes/text.h"

namespace gatewatch::alerting {

namespace {

using internal::Finish;
using internal::NewRequest;
using internal::Request;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr size_t kBodyKeep = 4096;   // response bytes kept: Discord's retry_after, the excerpt
constexpr size_t kExcerptMax = 200;  // bytes of response body in a log line or last_error

// What must never appear in a result: the url, its path and query ("/services/T/B/X", where
// webhook urls keep their token), each long piece of those (a receiver may echo the bare
// token; ids and tokens are long, words like "services" and "webhooks" are not), the secret.
std::vector<std::string> SecretsOf(const NotifierConfig& config) {
  constexpr size_t kTokenMin = 16;
  std::vector<std::string> out = {config.url, config.secret};
  const std::string_view url = config.url;
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string_view::npos ? 0 : scheme + 3);
  if (slash == std::string_view::npos) return out;
  const std::string_view path = url.substr(slash);
  out.emplace_back(path);
  size_t start = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i < path.size() && std::string_view("/?&=#").find(path[i]) == std::string_view::npos) {
      continue;
    }
    if (i - start >= kTokenMin) out.emplace_back(path.substr(start, i - start));
    start = i + 1;
  }
  // Longest first, so a token inside the path does not break the path's replacement.
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return out;
}

void ReplaceAll(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (size_t pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + with.size())) {
    text.replace(pos, what.size(), with);
  }
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Request*>(user);
  const size_t bytes = size * n;
  // Keep the start; read (and drop) the rest so the exchange ends normally.
  if (r->response.size() < kBodyKeep) {
    r->response.append(data, std::min(bytes, kBodyKeep - r->response.size()));
  }
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Request*>(user);
  const std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    r->retry_after.clear();  // a new response (after a 1xx): only the final one counts
  } else if (const size_t colon = line.find(':');
             colon != std::string_view::npos && AsciiLower(line.substr(0, colon)) == "retry-after") {
    r->retry_after = std::string(TrimHttpSpace(line.substr(colon + 1)));
  }
  return size * n;
}

// Printable, bounded, with the request's secrets removed.
std::string Excerpt(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) ReplaceAll(text, s, "<redacted>");
  text = TruncateUtf8(TrimHttpSpace(text), kExcerptMax, kEllipsis);
  for (char& c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return text;
}

// curl's own words, never its error buffer: that one names the host and port.
std::string CurlReason(CURL* e, CURLcode code, Duration timeout) {
  if (code == CURLE_OPERATION_TIMEDOUT) return "timeout after " + FormatDuration(timeout);
  std::string reason = curl_easy_strerror(code);
  long os_errno = 0;
  if (curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0) {
    reason += std::string(": ") + std::strerror(static_cast<int>(os_errno));
  }
  return reason;
}

std::optional<int> MonthIndex(std::string_view m) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (kMonths[i] == m) return static_cast<int>(i) + 1;
  }
  return std::nullopt;
}

}  // namespace

namespace internal {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<std::unique_ptr<Request>> NewRequest(const NotifierConfig& config, const Payload& payload,
                                            Duration timeout) {
  if (config.type == NotifierType::kConsole) {
    return Error("a console notifier prints to stdout; it has no url to send to");
  }
  if (config.url.empty()) return Error("notifier " + config.name + " has no url");
  GlobalInit();
  auto r = std::make_unique<Request>();
  r->easy = curl_easy_init();
  if (r->easy == nullptr) return Error("cannot create a curl handle");
  r->body = payload.body;
  r->timeout = timeout;
  r->secrets = SecretsOf(config);
  const std::string url = config.url + payload.url_suffix;

  std::vector<std::string> lines = {"Content-Type: " + payload.content_type,
                                    "Expect:",  // no 100-continue round trip (up to 1 s)
                                    std::string("User-Agent: gatewatch/") + kVersion};
  for (const auto& [name, value] : payload.headers) lines.push_back(name + ": " + value);
  for (const std::string& l : lines) {
    curl_slist* next = curl_slist_append(r->headers, l.c_str());
    if (next == nullptr) return Error("cannot build request headers");
    r->headers = next;
  }
  // A zero curl timeout means "none": one millisecond is the shortest real deadline.
  const long ms = static_cast<long>(std::max<int64_t>(1, timeout.count()));
  CURL* e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());  // copied by curl
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r->body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for resolver timeouts
  curl_easy_setopt(e, CURLOPT_PROXY, "");     // never a proxy from the environment
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r.get());
  curl_easy_setopt(e, CURLOPT_PRIVATE, r.get());
  r->started = RealSteady::now();
  return r;
}

SendResult Finish(Request& r, CURLcode code, SystemTime now) {
  SendResult res;
  res.elapsed = duration_cast<milliseconds>(RealSteady::now() - r.started);
  if (code != CURLE_OK) {
    // A status seen before a timeout says nothing about the message: it did not complete.
    res.error = CurlReason(r.easy, code, r.timeout);
    return res;
  }
  long status = 0;
  curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &status);
  res.http_status = static_cast<int>(status);
  if (res.http_status == 0) res.error = "no HTTP status in the answer";
  if (!r.retry_after.empty()) res.retry_after = ParseRetryAfter(r.retry_after, now);
  if (res.http_status == 429) {
    if (auto discord = DiscordRetryAfter(r.response)) {
      res.retry_after = res.retry_after ? std::max(*res.retry_after, *discord) : *discord;
    }
  }
  res.body_excerpt = Excerpt(r.response, r.secrets);
  return res;
}

std::string Reason(const SendResult& r) {
  if (!r.error.empty()) return r.error;
  std::string out = "http " + std::to_string(r.http_status);
  if (r.retry_after) out += " (retry after " + FormatDuration(*r.retry_after) + ")";
  if (!r.body_excerpt.empty()) out += ": " + r.body_excerpt;
  return out;
}

}  // namespace internal

// --- One request ---------------------------------------------------------------------------

SendVerdict Classify(const SendResult& r) {
  if (!r.error.empty()) return SendVerdict::kRetry;
  if (r.http_status >= 200 && r.http_status < 300) return SendVerdict::kDelivered;
  if (r.http_status == 429) return SendVerdict::kRateLimited;
  if (r.http_status >= 500 || r.http_status == 408) return SendVerdict::kRetry;
  return SendVerdict::kRejected;
}

SendResult Send(const NotifierConfig& config, const Payload& payload, Duration timeout) {
  auto r = NewRequest(config, payload, timeout);
  if (!r) {
    SendResult res;
    res.error = r.error();
    return res;
  }
  const CURLcode code = curl_easy_perform((*r)->easy);
  return Finish(**r, code, std::chrono::system_clock::now());
}

std::optional<Duration> ParseRetryAfter(std::string_view value, SystemTime now) {
  value = TrimHttpSpace(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::nullopt;  // over 30 years: not a real delay
    return Duration(std::stoll(std::string(value)) * 1000);
  }
  // IMF-fixdate, the only HTTP-date form senders may generate (RFC 9110 5.6.7).
  char weekday[4] = {}, month[4] = {}, zone[4] = {};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  const std::string text(value);
  if (std::sscanf(text.c_str(), "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3s", weekday, &day,
                  month, &year, &hour, &minute, &second, zone) != 8 ||
      std::string_view(zone) != "GMT") {
    return std::nullopt;
  }
  const auto mon = MonthIndex(month);
  if (!mon || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(year),
                                        std::chrono::month(static_cast<unsigned>(*mon)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;
  const SystemTime at = std::chrono::sys_days(ymd) + std::chrono::hours(hour) +
                        std::chrono::minutes(minute) + std::chrono::seconds(second);
  if (at <= now) return Duration(0);
  return std::chrono::ceil<Duration>(at - now);
}

std::optional<Duration> DiscordRetryAfter(std::string_view body) {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  const auto it = j.find("retry_after");
  if (it == j.end() || !it->is_number()) return std::nullopt;
  const double seconds = it->get<double>();
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e7) return std::nullopt;
  return Duration(static_cast<int64_t>(std::ceil(seconds * 1000)));
}

}  // namespace gatewatch::alerting
