#pragma once
// Probe results for the storage tests: one with every field set, small hand-made ones, and a
// seeded generator of varied results.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "probes/probe_result.h"

namespace gatewatch::storage::testing {

using namespace std::chrono_literals;
using std::chrono::microseconds;

inline SystemTime Ms(int64_t unix_ms) {
  return SystemTime(
      std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(unix_ms)));
}
// 2027-01-15T00:00:00Z: aligned to the hour, so minute and hour buckets start on it.
inline constexpr int64_t kBaseMs = 1'800'000'000'000 - (1'800'000'000'000 % 3'600'000);

// Every field set, including bytes that are not UTF-8 (body) and a NUL.
inline probes::ProbeResult FullResult() {
  probes::ProbeResult r;
  r.monitor = "shop";
  r.region = "eu-proxy";
  r.started_at = Ms(kBaseMs + 12'345);
  r.attempt = 1;
  r.confirmed = true;
  r.outcome = probes::Outcome::kHttp502;
  r.http_status = 502;
  r.phases.resolve = microseconds(1'234);
  r.phases.connect = microseconds(2'345);
  r.phases.tls = microseconds(34'567);
  r.phases.processing = microseconds(456'789);
  r.phases.transfer = microseconds(5);
  r.phases.total = microseconds(500'940);
  r.bytes_read = 157;
  r.remote_ip = "2001:db8::1";
  r.resolved = {"192.0.2.10", "192.0.2.11", "2001:db8::1"};
  r.http_version = "2";
  r.tls.version = "TLSv1.3";
  r.tls.subject = "CN=shop.example.com";
  r.tls.issuer = "CN=R3,O=Let's Encrypt,C=US";
  r.tls.earliest_expiry = Ms(kBaseMs + 86'400'000LL * 40 + 7);
  r.tls.earliest_expiry_subject = "CN=R3 \"intermediate\"";
  r.emitter = probes::Emitter::kNginx;
  r.reason = probes::Reason::kUpstreamConnectFailed;
  r.headers = {{"server", "nginx/1.22.1"},
               {"via", "1.1 varnish (Varnish/7.1)"},
               {"x-cache", "MISS"},
               {"retry-after", "30"}};
  static constexpr char kBody[] = "<html>\x00\xff\xfe bad gateway \xc3\x28</html>";
  r.body_snippet = std::string(kBody, sizeof(kBody) - 1);
  r.detail = "upstream said: \"no\"\nsecond line \xe2\x9c\x93";
  return r;
}

inline probes::ProbeResult Simple(std::string monitor, std::string region, int64_t unix_ms,
                                  probes::Outcome outcome = probes::Outcome::kOk,
                                  bool confirmed = true, int http_status = 200) {
  probes::ProbeResult r;
  r.monitor = std::move(monitor);
  r.region = std::move(region);
  r.started_at = Ms(unix_ms);
  r.outcome = outcome;
  r.confirmed = confirmed;
  r.http_status = http_status;
  if (http_status != 0) {
    r.phases.resolve = microseconds(100);
    r.phases.connect = microseconds(200);
    r.phases.processing = microseconds(3'000);
    r.phases.transfer = microseconds(10);
    r.phases.total = microseconds(3'310);
  }
  return r;
}

// `count` varied results from `seed` over [start_ms, start_ms + span_ms): monitors m0..m2,
// regions local/eu, every outcome, statuses of every class and none, phases sometimes absent,
// latencies spread over every bucket (including exact bucket bounds and +Inf), confirmed or
// not, attempts 0..2. Not sorted by time.
inline std::vector<probes::ProbeResult> Generate(uint32_t seed, int count, int64_t start_ms,
                                                 int64_t span_ms) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  const std::vector<int> statuses = {0, 101, 200, 204, 301, 404, 429, 500, 502, 503, 504, 522};
  std::vector<probes::ProbeResult> out;
  out.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    probes::ProbeResult r;
    r.monitor = "m" + std::to_string(pick(3));
    r.region = pick(2) == 0 ? "local" : "eu";
    r.started_at = Ms(start_ms + static_cast<int64_t>(rng() % static_cast<uint64_t>(span_ms)));
    r.attempt = pick(3);
    r.confirmed = pick(5) != 0;
    r.outcome = static_cast<probes::Outcome>(pick(static_cast<int>(probes::kOutcomeNames.size())));
    r.http_status = statuses[static_cast<size_t>(pick(static_cast<int>(statuses.size())))];
    auto latency = [&]() -> std::optional<microseconds> {
      switch (pick(6)) {
        case 0:
          return std::nullopt;
        case 1:
          return microseconds(1'000 * (1 + pick(12'000)));  // whole ms, hits bounds
        case 2:
          return microseconds(pick(2'000));  // sub-ms
        case 3:
          return microseconds(10'000'000 + pick(5'000'000));  // +Inf and its edge
        default:
          return microseconds(pick(3'000'000));
      }
    };
    r.phases.total = latency();
    r.phases.processing = latency();
    if (pick(2) == 0) r.phases.resolve = microseconds(pick(5'000));
    r.bytes_read = pick(70'000);
    r.emitter = r.http_status >= 500 ? probes::Emitter::kEnvoy : probes::Emitter::kNone;
    r.detail = "generated " + std::to_string(i);
    out.push_back(std::move(r));
  }
  return out;
}

// Field-by-field comparison with doctest CHECKs (so a failure names the field).
inline void CheckSame(const probes::ProbeResult& got, const probes::ProbeResult& want) {
  CHECK(got.monitor == want.monitor);
  CHECK(got.region == want.region);
  CHECK(got.started_at == want.started_at);
  CHECK(got.attempt == want.attempt);
  CHECK(got.confirmed == want.confirmed);
  CHECK(got.outcome == want.outcome);
  CHECK(got.http_status == want.http_status);
  CHECK(got.phases.resolve == want.phases.resolve);
  CHECK(got.phases.connect == want.phases.connect);
  CHECK(got.phases.tls == want.phases.tls);
  CHECK(got.phases.processing == want.phases.processing);
  CHECK(got.phases.transfer == want.phases.transfer);
  CHECK(got.phases.total == want.phases.total);
  CHECK(got.bytes_read == want.bytes_read);
  CHECK(got.remote_ip == want.remote_ip);
  CHECK(got.resolved == want.resolved);
  CHECK(got.http_version == want.http_version);
  CHECK(got.tls.version == want.tls.version);
  CHECK(got.tls.subject == want.tls.subject);
  CHECK(got.tls.issuer == want.tls.issuer);
  CHECK(got.tls.earliest_expiry == want.tls.earliest_expiry);
  CHECK(got.tls.earliest_expiry_subject == want.tls.earliest_expiry_subject);
  CHECK(got.emitter == want.emitter);
  CHECK(got.reason == want.reason);
  CHECK(got.headers == want.headers);
  CHECK(got.body_snippet == want.body_snippet);
  CHECK(got.detail == want.detail);
}

}  // namespace gatewatch::storage::testing
