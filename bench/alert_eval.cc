// Alert evaluation cost per result at 10,000 monitors ("evaluation is
// incremental, O(1) per new result ... so 10,000 monitors cost little").
//
//   build/bench/alert_eval [monitors=10000] [results=2000000]
//
// Feeds `results` confirmed results round-robin over `monitors` monitors x 2 regions into an
// Evaluator with three rules matching every monitor (status_rate on 502 with a 5-minute
// window, down after 3, p95 latency), 1 result in 20 a 502, the clock advancing 5 s per
// round (each monitor every 5 s, as at interval = 5s), and Tick() once per simulated second.
// Prints ns per result for Observe(), the Tick() cost, and, as the reference measured in the
// same run, the cost of the work every result costs anyway before evaluation: copying the
// result into the pipeline's queue and one hash lookup by monitor name. CPU time is the
// process's (single thread), so the machine's load affects it less than wall time would.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "alerting/evaluator.h"

using namespace gatewatch;
using namespace std::chrono_literals;

namespace {

// A clock the benchmark moves by hand.
class ManualClock final : public Clock {
 public:
  SystemTime Now() const override { return now; }
  SteadyTime Steady() const override { return SteadyTime(now.time_since_epoch()); }
  SystemTime now = SystemTime(std::chrono::seconds(1'790'000'000));
};

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

alerting::AlertRule Rule(const std::string& name, alerting::AlertKind kind, const std::vector<std::string>& monitors) {
  alerting::AlertRule r;
  r.name = name;
  r.monitors = monitors;
  r.kind = kind;
  r.codes = {502};
  r.above = 0.5;
  r.below = 0.1;
  r.window = 5min;
  r.min_samples = 10;
  r.pending_for = 1min;
  r.resolve_for = 2min;
  r.after = 3;
  r.phase = "processing";
  r.percentile = 95;
  r.latency_above = 800ms;
  r.latency_below = 800ms;
  r.notify = {"ops"};
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int monitors = argc > 1 ? std::atoi(argv[1]) : 10'000;
  const long results = argc > 2 ? std::atol(argv[2]) : 2'000'000;
  if (monitors <= 0 || results <= 0) {
    std::fprintf(stderr, "usage: alert_eval [monitors>0] [results>0]\n");
    return 2;
  }
  std::vector<std::string> names;
  for (int i = 0; i < monitors; ++i) names.push_back("m" + std::to_string(i));
  const std::vector<std::string> regions = {"local", "eu"};

  ManualClock clock;
  alerting::Evaluator eval(clock);
  eval.Configure({Rule("r502", alerting::AlertKind::kStatusRate, names), Rule("down", alerting::AlertKind::kDown, names),
                  Rule("slow", alerting::AlertKind::kLatency, names)},
                 {});

  probes::ProbeResult r;
  r.confirmed = true;
  r.phases.processing = 20ms;
  r.phases.total = 25ms;
  r.headers = {{"server", "nginx/1.22.1"}};

  // Reference: what each result costs anyway (queue copy + lookup), same loop shape.
  std::unordered_map<std::string, int> index;
  for (int i = 0; i < monitors; ++i) index[names[static_cast<size_t>(i)]] = i;
  std::deque<probes::ProbeResult> queue;
  long sink = 0;
  const double ref0 = CpuSeconds();
  for (long i = 0; i < results; ++i) {
    r.monitor = names[static_cast<size_t>(i % monitors)];
    r.region = regions[static_cast<size_t>((i / monitors) % 2)];
    queue.push_back(r);
    sink += index.find(queue.back().monitor)->second;
    if (queue.size() > 1024) queue.clear();
  }
  const double ref = CpuSeconds() - ref0;

  long events = 0;
  double tick_cpu = 0;
  long ticks = 0;
  const long per_round = 2L * monitors;  // every monitor x region once per 5 s
  const double t0 = CpuSeconds();
  for (long i = 0; i < results; ++i) {
    r.monitor = names[static_cast<size_t>(i % monitors)];
    r.region = regions[static_cast<size_t>((i / monitors) % 2)];
    r.started_at = clock.now;
    const bool bad = (i % 20) == 0;
    r.http_status = bad ? 502 : 200;
    r.outcome = bad ? probes::Outcome::kHttp502 : probes::Outcome::kOk;
    r.emitter = bad ? probes::Emitter::kNginx : probes::Emitter::kNone;
    events += static_cast<long>(eval.Observe(r).size());
    // 5 s per round: advance the clock evenly, Tick once per simulated second.
    const auto before = clock.now;
    clock.now = SystemTime(std::chrono::seconds(1'790'000'000)) +
                std::chrono::milliseconds((i + 1) * 5000 / per_round);
    if (std::chrono::floor<std::chrono::seconds>(clock.now) != std::chrono::floor<std::chrono::seconds>(before)) {
      const double k0 = CpuSeconds();
      events += static_cast<long>(eval.Tick(clock.now).size());
      tick_cpu += CpuSeconds() - k0;
      ++ticks;
    }
  }
  const double total = CpuSeconds() - t0;
  const double observe = total - tick_cpu;
  const double ns_observe = observe / static_cast<double>(results) * 1e9;
  const double ns_ref = ref / static_cast<double>(results) * 1e9;
  std::printf("alert evaluation: %d monitors x 2 regions, 3 rules each (status_rate 5m, down, p95 latency)\n", monitors);
  std::printf("  results             %ld (%.0f s simulated at 5 s intervals), events %ld\n", results,
              static_cast<double>(results) / static_cast<double>(per_round) * 5, events);
  std::printf("  Observe             %.0f ns per result (3 rule pairs each) = %.3f CPU-s per 1,000,000 results\n",
              ns_observe, observe / static_cast<double>(results) * 1e6);
  std::printf("  Tick                %.3f ms per tick (%ld ticks; visits only pairs not ok)\n",
              ticks ? tick_cpu / static_cast<double>(ticks) * 1e3 : 0.0, ticks);
  std::printf("  reference           %.0f ns per result (queue copy + hash lookup)\n", ns_ref);
  std::printf("  ratio               evaluation / reference = %.2f\n", ns_ref > 0 ? ns_observe / ns_ref : 0.0);
  std::printf("  at 2,000 probes/s   %.2f%% of one core\n", ns_observe * 2000 / 1e9 * 100);
  return sink == -1 ? 1 : 0;
}
