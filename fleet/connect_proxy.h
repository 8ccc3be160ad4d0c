#pragma once
// ConnectProxy: an HTTP CONNECT proxy on loopback that tunnels to loopback targets only
// (127.0.0.1, localhost, ::1; anything else gets 403, so no traffic can leave the host).
// Modes: kTunnel (200 Connection established, then bytes both ways), kRefuse (403) and
// kBadGateway (502) for proxy_error tests. A request that is not CONNECT (e.g. an
// absolute-URI GET from a client that forgot the tunnel option) gets 400, so misuse is
// visible. A tunnel to a target that does not accept gets 502.
//
// Threads: one accept thread (poll loop) plus one thread per client connection, at most
// kMaxClients at once (more are answered 503). SetMode and the counters are thread-safe.
// Listening when the constructor returns; the destructor wakes every thread, closes
// all sockets and joins.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fleet/socket_util.h"

namespace gatewatch::fleet {

class ConnectProxy {
 public:
  enum class Mode { kTunnel, kRefuse, kBadGateway };
  static constexpr int kMaxClients = 32;

  explicit ConnectProxy(Mode mode = Mode::kTunnel);
  ~ConnectProxy();
  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  int port() const { return port_; }
  std::string Url() const;  // "http://127.0.0.1:PORT" (curl's CURLOPT_PROXY)
  void SetMode(Mode mode) { mode_ = mode; }

  int ConnectCount() const { return connects_.load(); }     // CONNECT requests received
  int TunnelCount() const { return tunnels_.load(); }       // tunnels established (200 sent)
  int OtherRequestCount() const { return others_.load(); }  // non-CONNECT requests (400)
  // "host:port" of every CONNECT received, in order (at most 1000 kept).
  std::vector<std::string> Targets() const;

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void AcceptLoop();
  void Serve(UniqueFd client);
  void Tunnel(int client, int target, std::string pending);

  UniqueFd listener_;
  int port_ = 0;
  Waker waker_;
  std::atomic<Mode> mode_;
  std::atomic<int> connects_{0};
  std::atomic<int> tunnels_{0};
  std::atomic<int> others_{0};
  mutable std::mutex mu_;  // guards targets_
  std::vector<std::string> targets_;
  std::vector<Worker> workers_;  // owned by the accept thread until it exits
  std::thread accept_thread_;    // last
};

}  // namespace gatewatch::fleet
