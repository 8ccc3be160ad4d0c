// The admission queue: jobs wait in it until a slot is free, confirmation retries first,
// then monitors owed a run, then the newest; a job whose start_by passes is skipped. An
// attempt holds its slot from Start() until Deliver(), which queues a confirmation retry.

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "probes/http_prober_impl.h"

namespace gatewatch::probes {
namespace {

constexpr auto kSweepEvery = std::chrono::seconds(1);  // expired first attempts, all

}  // namespace

void HttpProber::Impl::Enqueue(ProbeJob job) {
  if (queued.load() >= options.max_queued) {
    skipped.fetch_add(1);
    if (job.on_skip) job.on_skip();
    return;
  }
  Queue(std::make_shared<const ProbeJob>(std::move(job)));
  queued.fetch_add(1);
}

// A first attempt waits in `fresh`, or in `owed` when its monitor x region was skipped
// last time: under overload owed ones start first, so every monitor gets its turn instead
// of the same newest few running every interval.
void HttpProber::Impl::Queue(std::shared_ptr<const ProbeJob> job) {
  Waiting w{std::move(job), 0, SteadyTime{}};
  w.start_by = w.job->start_by;
  w.seq = next_seq++;
  if (const auto it = skip_streak.find(KeyOf(*w.job)); it != skip_streak.end()) {
    w.streak = it->second.count;
    owed.push_back(std::move(w));
    std::push_heap(owed.begin(), owed.end(), OwedOrder{});
  } else {
    fresh.push_back(std::move(w));
  }
}

void HttpProber::Impl::TakeIncoming(bool* stop_now) {
  std::deque<ProbeJob> jobs;
  SteadyTime deadline{};
  {
    std::lock_guard lock(mu);
    jobs.swap(incoming);
    deadline = stop_deadline;
  }
  for (ProbeJob& job : jobs) Queue(std::make_shared<const ProbeJob>(std::move(job)));
  if (stopping.load()) {
    // No new probes and no retries while stopping; in-flight ones get the grace period.
    queued.fetch_sub(fresh.size() + owed.size() + retries.size());
    fresh.clear();
    owed.clear();
    retries.clear();
    timers.clear();
    *stop_now = attempts.empty() || std::chrono::steady_clock::now() >= deadline;
  }
}

void HttpProber::Impl::Skip(const Waiting& w) {
  skipped.fetch_add(1);
  if (w.number == 0) {
    Streak& streak = skip_streak[KeyOf(*w.job)];
    streak.count = std::max(streak.count, w.streak) + 1;
    streak.config = w.job->monitor;
  }
  if (w.job->on_skip) w.job->on_skip();
}

// First attempts whose start_by passed are skipped now rather than when they would
// be reached. start_by mostly grows with submission order, so the head is checked every
// time and the whole queue once a second (monitors with different intervals interleave).
void HttpProber::Impl::ExpireWaiting(SteadyTime now) {
  while (!fresh.empty() && fresh.front().start_by < now) {
    Waiting w = std::move(fresh.front());
    fresh.pop_front();
    queued.fetch_sub(1);
    Skip(w);  // may Submit() more: fresh is re-read every turn
  }
  if ((fresh.empty() && owed.empty()) || now - last_sweep < kSweepEvery) return;
  last_sweep = now;
  std::deque<Waiting> keep;
  std::vector<Waiting> keep_owed;
  std::vector<Waiting> expired;
  for (Waiting& w : fresh) {
    if (w.start_by < now) expired.push_back(std::move(w));
    else keep.push_back(std::move(w));
  }
  for (Waiting& w : owed) {
    if (w.start_by < now) expired.push_back(std::move(w));
    else keep_owed.push_back(std::move(w));
  }
  fresh.swap(keep);
  owed.swap(keep_owed);
  std::make_heap(owed.begin(), owed.end(), OwedOrder{});
  queued.fetch_sub(expired.size());
  for (const Waiting& w : expired) Skip(w);  // may Submit(): appended to fresh or owed
}

void HttpProber::Impl::StartWaiting() {
  const SteadyTime now = std::chrono::steady_clock::now();
  ExpireWaiting(now);
  while (!retries.empty() && in_flight.load() < options.max_in_flight) {
    Waiting w = std::move(retries.front());
    retries.pop_front();
    queued.fetch_sub(1);
    Start(std::move(w.job), w.number);
  }
  // Owed first: each start or skip below may deliver at once and Submit() more, so the
  // heap is re-read every turn.
  while (!owed.empty() && in_flight.load() < options.max_in_flight) {
    std::pop_heap(owed.begin(), owed.end(), OwedOrder{});
    Waiting w = std::move(owed.back());
    owed.pop_back();
    queued.fetch_sub(1);
    if (now > w.start_by) {
      Skip(w);
    } else {
      Start(std::move(w.job), w.number);
    }
  }
  if (!skip_streak.empty() && now - last_streak_sweep >= 10 * kSweepEvery) {
    last_streak_sweep = now;
    std::erase_if(skip_streak, [](const auto& kv) { return kv.second.config.expired(); });
  }
  const int free_slots = options.max_in_flight - in_flight.load();
  if (fresh.empty() || free_slots <= 0) return;
  // The newest that fit start, in submission order; the older ones wait (and expire).
  const size_t take = std::min(fresh.size(), static_cast<size_t>(free_slots));
  std::vector<Waiting> batch(std::make_move_iterator(fresh.end() - static_cast<ptrdiff_t>(take)),
                             std::make_move_iterator(fresh.end()));
  fresh.erase(fresh.end() - static_cast<ptrdiff_t>(take), fresh.end());
  queued.fetch_sub(take);
  // Start() may deliver a result at once, whose callback may Submit(): fresh is not
  // touched from here on.
  for (Waiting& w : batch) {
    if (now > w.start_by) {
      Skip(w);
      continue;
    }
    Start(std::move(w.job), w.number);
  }
}

void HttpProber::Impl::Start(std::shared_ptr<const ProbeJob> job, int number) {
  auto a = std::make_unique<Attempt>();
  a->id = next_id++;
  a->job = std::move(job);
  a->number = number;
  a->started = std::chrono::steady_clock::now();
  a->started_at = clock.Now();
  const MonitorConfig& m = *a->job->monitor;
  a->deadline = a->started + m.probe.timeout;
  a->body_limit = std::max<int64_t>(m.probe.max_body, kFingerprintBytes);
  a->wants_all_headers = !m.header_contains.empty();
  a->prep = PrepFor(a->job->monitor);
  if (number == 0 && !skip_streak.empty()) skip_streak.erase(KeyOf(*a->job));
  in_flight.fetch_add(1);
  started.fetch_add(1);
  Attempt& ref = *a;
  const uint64_t id = a->id;
  attempts.emplace(id, std::move(a));
  if (!ref.prep->url) {  // validated at config load; guard anyway
    Abort(id, Outcome::kMalformedResponse, "invalid URL: " + ref.prep->url_error);
    return;
  }
  ref.via_proxy = !ref.job->region->proxy.empty();
  if (ref.via_proxy || ref.url().host_is_ip) {
    StartTransfer(ref, ref.url().host_is_ip ? ref.url().host : "");
    return;
  }
  Resolve(ref);
}

void HttpProber::Impl::Deliver(std::unique_ptr<Attempt> a, ProbeResult result) {
  in_flight.fetch_sub(1);
  const bool failed = IsFailure(result.outcome);
  const int retries_allowed = a->job->monitor->probe.retries;
  result.confirmed = !failed || a->number >= retries_allowed;
  if (!result.confirmed && !stopping.load()) {
    auto job = a->job;
    const int next = a->number + 1;
    timers.emplace(std::chrono::steady_clock::now() + a->job->monitor->probe.retry_delay,
                   [this, job, next] {
                     retries.push_back({job, next, SteadyTime::max()});  // before new probes
                     queued.fetch_add(1);
                   });
  }
  if (a->job->on_result) a->job->on_result(std::move(result));
}

}  // namespace gatewatch::probes
