#pragma once
// Connect-phase failures on loopback without a server thread:
//   RefusedPort()    -> connect() gets RST, ECONNREFUSED (connect_refused)
//   BlackholeServer  -> connect() gets no SYN-ACK and times out (connect_timeout)

#include <string>
#include <string_view>
#include <vector>

#include "fleet/socket_util.h"

namespace gatewatch::fleet {

// A loopback port where nothing listens: binds port 0, reads the port, closes. Another
// process could take the port later; on a test machine that is vanishingly rare.
int RefusedPort(IpFamily family = IpFamily::kV4);

// A listener whose accept queue is full, so the kernel drops further SYNs (Linux drops a
// SYN when sk_acceptq_is_full, even with syncookies on): a client's connect() stays in
// SYN_SENT until its own timeout. listen(backlog 0) takes one established connection; the
// constructor adds filler connections (never accepted) until a probe connect stays in
// progress for `verify_ms`, and keeps the fillers (and the probe) for the object's
// lifetime. No thread.
// Blocks for about verify_ms in the constructor; dies (stderr + abort) if the queue never
// fills, so a BlackholeServer that exists is verified.
class BlackholeServer {
 public:
  explicit BlackholeServer(int verify_ms = 100);
  ~BlackholeServer() = default;
  BlackholeServer(const BlackholeServer&) = delete;
  BlackholeServer& operator=(const BlackholeServer&) = delete;

  int port() const { return port_; }
  std::string Url(std::string_view path = "/") const;  // "http://127.0.0.1:PORT/path"
  // Client sockets held open: established fillers plus the in-progress probe.
  int fillers() const { return static_cast<int>(fillers_.size()); }

 private:
  UniqueFd listener_;
  int port_ = 0;
  std::vector<UniqueFd> fillers_;
};

}  // namespace gatewatch::fleet
