#pragma once
// The probe engine: one thread that owns a libcurl multi handle, the c-ares channels
// and every easy handle; the sole caller of curl_* and ares_*. Other threads Submit()
// jobs (a queue plus curl_multi_wakeup); results leave by value through the job's
// callback, on the engine thread.
//
// Each probe uses a fresh connection. Names are resolved with c-ares on the engine loop
// (timed as `resolve`; the region's own resolvers when it has dns_servers) and handed
// to curl per handle with CURLOPT_CONNECT_TO. Through a region's proxy the proxy
// resolves. One CA store is shared by every probe. Per-phase deadlines are kept here;
// the phase reached decides the outcome. At most max_in_flight probes run at once; the
// rest wait in FIFO order until their start_by passes (then they are skipped).

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "probes/clock.h"
#include "probes/prober.h"

namespace gatewatch::probes {

class HttpProber final : public Prober {
 public:
  struct Options {
    int max_in_flight = 256;
    std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";  // shared CA store
    size_t max_queued = 100'000;  // waiting jobs beyond this are skipped at once
    // Called on the engine thread at the top of every loop iteration (the scheduler
    // submits what is due from here); returns when it next wants to be called.
    std::function<SystemTime(Prober& prober)> on_tick;
  };

  struct Stats {
    int in_flight = 0;
    size_t queued = 0;
    uint64_t started = 0;
    uint64_t skipped = 0;
  };

  HttpProber(Options options, const Clock& clock);
  ~HttpProber() override;  // Stop(0)
  HttpProber(const HttpProber&) = delete;
  HttpProber& operator=(const HttpProber&) = delete;

  void Submit(ProbeJob job) override;

  // Makes the engine loop run now (e.g. after the schedule changed). Thread-safe.
  void Wake();

  // Stops accepting jobs; in-flight probes get `grace` to finish (their results are
  // delivered), then the rest are dropped without results. Joins the thread. Idempotent.
  void Stop(Duration grace = Duration(0));

  Stats GetStats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatewatch::probes
