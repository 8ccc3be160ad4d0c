#include "storage/store.h"

namespace gatewatch::storage {

size_t LatencyBucket(std::chrono::microseconds d) {
  const int64_t us = d.count();
  for (size_t i = 0; i < kLatencyBucketBoundsMs.size(); ++i) {
    if (us <= kLatencyBucketBoundsMs[i] * 1000) return i;
  }
  return kLatencyBuckets - 1;
}

StatusClass StatusClassOf(int http_status) {
  if (http_status < 100 || http_status > 599) return StatusClass::kNone;
  return static_cast<StatusClass>(http_status / 100);
}

std::chrono::milliseconds WidthOf(RollupWidth w) {
  return w == RollupWidth::kMinute ? std::chrono::milliseconds(60'000)
                                   : std::chrono::milliseconds(3'600'000);
}

namespace {
int64_t CountFailures(const std::array<int64_t, kOutcomeCount>& by_outcome) {
  int64_t n = 0;
  for (size_t i = 0; i < by_outcome.size(); ++i) {
    if (probes::IsFailure(static_cast<probes::Outcome>(i))) n += by_outcome[i];
  }
  return n;
}
}  // namespace

int64_t OutcomeCounts::Total() const {
  int64_t n = 0;
  for (int64_t c : by_outcome) n += c;
  return n;
}

int64_t OutcomeCounts::Failures() const { return CountFailures(by_outcome); }

int64_t Rollup::Failures() const { return CountFailures(by_outcome); }

}  // namespace gatewatch::storage
