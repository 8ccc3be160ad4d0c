#pragma once
// Internal to alerting/: included only by alerting/*.cc. The Request of one notifier POST on a
// curl easy handle: built by NewRequest(), performed alone by Send() (alerting/http_post.cc) or
// on the delivery thread's multi handle (alerting/delivery.cc), read by Finish().

#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "alerting/config.h"
#include "alerting/delivery.h"
#include "alerting/notifier.h"
#include "storage/alert_store.h"

namespace gatewatch::alerting::internal {

using RealSteady = std::chrono::steady_clock;

// curl_global_init, once per process, before the first curl handle.
void GlobalInit();

// One POST, in flight on the multi handle or performed alone by Send().
struct Request {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;                  // CURLOPT_POSTFIELDS does not copy
  std::string response;              // the first kBodyKeep bytes
  std::string retry_after;           // Retry-After of the final response, raw
  std::vector<std::string> secrets;  // never to appear in a result: url, its path, secret
  Duration timeout{0};
  RealSteady::time_point started{};
  // Delivery's bookkeeping.
  std::string lane;
  std::optional<storage::OutboxMessage> message;  // nullopt: an Alertmanager re-post
  size_t reposted = 0;                            // alerts in a re-post

  Request() = default;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

// A POST of `payload` to config.url + payload.url_suffix, ready to perform: every option set,
// `timeout` the deadline of the whole exchange. An error for a console notifier or a
// notifier without url.
Result<std::unique_ptr<Request>> NewRequest(const NotifierConfig& config, const Payload& payload,
                                            Duration timeout);

// The result of a performed request: `code` is curl's, `now` dates a Retry-After HTTP-date.
SendResult Finish(Request& r, CURLcode code, SystemTime now);

// What to store as last_error and log: short, no url.
std::string Reason(const SendResult& r);

}  // namespace gatewatch::alerting::internal
