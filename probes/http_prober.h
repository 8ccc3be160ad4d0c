#pragma once
// The probe engine: one thread that owns a libcurl multi handle, the c-ares channels
// and every easy handle; the sole caller of curl_* and ares_*. Other threads Submit()
// jobs (a queue plus an eventfd wakeup); results leave by value through the job's
// callback, on the engine thread. Submit() on the engine thread itself (from on_tick or
// a result callback) enqueues directly, without a wakeup.
//
// The loop waits in one epoll set holding curl's sockets (curl_multi_socket_action), the
// c-ares sockets and the wakeup eventfd, so a wakeup costs O(sockets with events), not
// O(probes in flight).
//
// Each probe uses a fresh connection (FRESH_CONNECT + FORBID_REUSE, no TLS session
// reuse); easy handles are pooled and reset between probes. Names are resolved with
// c-ares on the engine loop (timed as `resolve`; the region's own resolvers when it has
// dns_servers) and handed to curl per handle with CURLOPT_CONNECT_TO. Through a region's
// proxy the proxy resolves. One CA store is shared by every probe. Per-phase deadlines
// are kept here; the phase reached decides the outcome.
//
// At most max_in_flight probes run at once; the rest wait. Confirmation retries start
// first (oldest first). Then first attempts of a monitor x region whose previous first
// attempt was skipped ("owed"): the most skips in a row first, so under lasting overload
// every monitor takes its turn. Then the others, newest first: the probes that run measure
// the present. A waiting one whose start_by passes is skipped (on_skip, counted) within
// about tick_batch (owed ones within a second), not when it reaches the head of a queue.

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "probes/clock.h"
#include "probes/duration.h"
#include "probes/prober.h"

namespace gatewatch::probes {

class HttpProber final : public Prober {
 public:
  struct Options {
    int max_in_flight = 256;
    std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";  // shared CA store
    size_t max_queued = 100'000;  // waiting jobs beyond this are skipped at once
    // Called on the engine thread (the scheduler submits what is due from here); returns
    // when it next wants to be called. It is called when that time has come, after
    // Wake(), and at least once a second; never while stopping.
    std::function<SystemTime(Prober& prober)> on_tick;
    // The loop does not wake for on_tick sooner than this after the previous call (it
    // still calls it whenever it is awake and the time has come): slots due within
    // tick_batch of each other share one wakeup, which adds at most this to their lag.
    Duration tick_batch = Duration(5);
  };

  struct Stats {
    int in_flight = 0;
    size_t queued = 0;
    uint64_t started = 0;
    uint64_t skipped = 0;
    uint64_t easy_handles_created = 0;  // libcurl handles made; the rest were reused
  };

  HttpProber(Options options, const Clock& clock);
  ~HttpProber() override;  // Stop(0)
  HttpProber(const HttpProber&) = delete;
  HttpProber& operator=(const HttpProber&) = delete;

  void Submit(ProbeJob job) override;

  // Makes the engine loop call on_tick now (e.g. after the schedule changed). Thread-safe.
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
