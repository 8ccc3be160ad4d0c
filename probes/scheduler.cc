#include "probes/scheduler.h"

namespace gatewatch::probes {

namespace {

uint64_t Fnv1a(std::string_view text, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A finaliser so that names differing in one character spread over all shards.
uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

}  // namespace

bool InShard(std::string_view monitor_name, int index, int count) {
  if (count <= 1) return true;
  int best = 1;
  uint64_t best_score = 0;
  for (int i = 1; i <= count; ++i) {
    const uint64_t score = Mix(Fnv1a(monitor_name) ^ Mix(static_cast<uint64_t>(i)));
    if (i == 1 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best == index;
}

Duration Scheduler::Offset(std::string_view monitor_name, Duration interval) {
  const uint64_t h = Fnv1a(monitor_name);
  const auto span = static_cast<uint64_t>(std::max<int64_t>(1, interval.count()));
  return Duration(static_cast<int64_t>(h % span));
}

SystemTime Scheduler::NextAligned(SystemTime at, Duration interval, Duration offset) {
  const int64_t t = std::chrono::duration_cast<Duration>(at.time_since_epoch()).count();
  const int64_t i = std::max<int64_t>(1, interval.count());
  const int64_t o = offset.count() % i;
  // The smallest k*i + o >= t.
  int64_t k = (t - o) / i;
  if (k * i + o < t) ++k;
  const SystemTime aligned{Duration(k * i + o)};
  // `at` may carry sub-millisecond precision: never return a time before it.
  return aligned < at ? aligned + Duration(i) : aligned;
}

void Scheduler::Update(const std::vector<std::shared_ptr<const MonitorConfig>>& monitors,
                       const std::vector<std::shared_ptr<const RegionConfig>>& regions) {
  const SystemTime now = clock_.Now();
  std::lock_guard lock(mu_);
  std::unordered_map<std::string, Entry> next;
  for (const auto& m : monitors) {
    for (const std::string& region_name : m->regions) {
      std::shared_ptr<const RegionConfig> region;
      for (const auto& r : regions) {
        if (r->name == region_name) region = r;
      }
      if (region == nullptr) continue;  // the config loader rejects unknown regions
      const std::string key = m->name + '\x1f' + region_name;
      Entry e;
      e.monitor = m;
      e.region = region;
      auto old = entries_.find(key);
      if (old != entries_.end() && old->second.monitor->probe.interval == m->probe.interval) {
        e.next_due = old->second.next_due;
        e.generation = old->second.generation;  // its heap entry stays valid
      } else {
        e.next_due = NextAligned(now, m->probe.interval, Offset(m->name, m->probe.interval));
        e.generation = next_generation_++;
        heap_.push({e.next_due, key, e.generation});
      }
      next.emplace(key, std::move(e));
    }
  }
  entries_ = std::move(next);
  // Drop stale heap items now and then so reloads cannot grow the heap without bound.
  if (heap_.size() > 2 * entries_.size() + 1024) {
    decltype(heap_) fresh;
    for (const auto& [key, e] : entries_) fresh.push({e.next_due, key, e.generation});
    heap_ = std::move(fresh);
  }
}

std::vector<Scheduler::Slot> Scheduler::TakeDue(SystemTime now) {
  std::vector<Slot> due;
  std::lock_guard lock(mu_);
  while (!heap_.empty() && heap_.top().due <= now) {
    HeapItem item = heap_.top();
    heap_.pop();
    auto it = entries_.find(item.key);
    if (it == entries_.end() || it->second.generation != item.generation ||
        it->second.next_due != item.due) {
      continue;  // removed or rescheduled since
    }
    Entry& e = it->second;
    const Duration interval = e.monitor->probe.interval;
    SystemTime next = item.due + interval;
    if (next <= now) {  // fell behind by more than an interval: skip the missed runs
      const auto behind = std::chrono::duration_cast<Duration>(now - item.due);
      missed_ += static_cast<uint64_t>(behind / interval);
      next = item.due + interval * (behind / interval + 1);
    }
    due.push_back({e.monitor, e.region, item.due, next});
    e.next_due = next;
    heap_.push({next, item.key, e.generation});
  }
  return due;
}

SystemTime Scheduler::NextDue() const {
  std::lock_guard lock(mu_);
  while (!heap_.empty()) {  // drop stale items (removed or rescheduled slots) on top
    const HeapItem& top = heap_.top();
    auto it = entries_.find(top.key);
    if (it != entries_.end() && it->second.generation == top.generation &&
        it->second.next_due == top.due) {
      return top.due;
    }
    heap_.pop();
  }
  return SystemTime::max();
}

size_t Scheduler::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

uint64_t Scheduler::missed() const {
  std::lock_guard lock(mu_);
  return missed_;
}

}  // namespace gatewatch::probes
