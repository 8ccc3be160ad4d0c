#pragma once
// DemoFleet: a small site for `gatewatch demo` and for diagnosis tests. A Gateway (nginx
// 1.22 look-alike) in front of two upstreams "api-1" and "api-2" (RawHttpServers answering
// 200 {"status":"ok","upstream":"api-N"} at /healthz and "ok" elsewhere), cycling through
// scenarios so that a monitor of the gateway with both upstreams linked sees every
// gateway verdict within a minute or two:
//
//   phase                 gateway /healthz            api-1              api-2
//   healthy               200 (relayed)               200                200
//   one upstream down     200 (retries api-2)         connect_refused    200
//   both upstreams down   502 pages::Nginx(502)       connect_refused    connect_refused
//   gateway misrouted     502 pages::Nginx(502)       200                200
//
// then healthy again, repeating. "Down" closes the upstream's listening socket
// (RawHttpServer::SetRefusing), so a probe of it gets a TCP RST on connect; it listens on
// the same port again when the phase ends. "Misrouted" points the gateway at a port where
// nothing listens (RefusedPort()) instead of its pool.
//
// Threads: the gateway's and upstreams' own threads, plus one cycler thread when
// phase_length > 0 (0 = manual: the phase changes only by SetPhase). The cycler waits on a
// condition variable until the phase is due, so the destructor stops it at once. Every
// member function is thread-safe. The phase callback runs on the thread that changed the
// phase (the cycler or SetPhase's caller), one change at a time, in order, after the
// fleet is in the new state; it must not call SetPhase or destroy the fleet. Everything
// listens when the constructor returns; the destructor stops and joins all threads.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "fleet/gateway.h"
#include "fleet/raw_server.h"

namespace gatewatch::fleet {

class DemoFleet {
 public:
  enum class Phase : uint8_t { kHealthy, kOneUpstreamDown, kBothUpstreamsDown, kGatewayMisrouted };
  static constexpr int kUpstreams = 2;

  using PhaseCallback = std::function<void(Phase)>;

  // Starts healthy; with phase_length > 0 the cycler moves to the next phase every
  // phase_length (healthy -> one down -> both down -> misrouted -> healthy ...).
  explicit DemoFleet(std::chrono::milliseconds phase_length = std::chrono::seconds(20),
                     PhaseCallback on_phase = {});
  ~DemoFleet();
  DemoFleet(const DemoFleet&) = delete;
  DemoFleet& operator=(const DemoFleet&) = delete;

  // "http://127.0.0.1:PORT/healthz" of the gateway, or of upstream i.
  // REQUIRES: 0 <= i < kUpstreams (0 is "api-1").
  std::string GatewayUrl(std::string_view path = "/healthz") const;
  std::string UpstreamUrl(int i, std::string_view path = "/healthz") const;
  static std::string UpstreamName(int i);  // "api-1", "api-2"

  Phase phase() const;
  // Applies `phase` now (and, when cycling, restarts the phase clock); calls the callback
  // if the phase changed. Returns when the fleet is in the new state.
  void SetPhase(Phase phase);

  // "healthy", "one upstream down", "both upstreams down", "gateway misrouted".
  static std::string_view PhaseName(Phase phase);
  // One line for a newcomer: what fails and what a monitor should conclude.
  static std::string_view PhaseDescription(Phase phase);
  static Phase NextPhase(Phase phase);

  const Gateway& gateway() const { return *gateway_; }

 private:
  void Cycle();
  void Apply(Phase phase);  // REQUIRES: change_mu_ held

  std::chrono::milliseconds phase_length_;
  PhaseCallback on_phase_;
  int misroute_port_ = 0;
  std::unique_ptr<RawHttpServer> upstreams_[kUpstreams];
  std::unique_ptr<Gateway> gateway_;

  std::mutex change_mu_;   // serialises phase changes and callbacks (held while applying)
  mutable std::mutex mu_;  // guards phase_, due_, stop_
  std::condition_variable cv_;
  Phase phase_ = Phase::kHealthy;
  std::chrono::steady_clock::time_point due_;  // next automatic change
  bool stop_ = false;

  std::thread cycler_;  // last: starts after every member above exists
};

}  // namespace gatewatch::fleet
