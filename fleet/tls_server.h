#pragma once
// TLS fixtures made at test time with OpenSSL 3 (ECDSA P-256, SHA-256):
//   TestCa     a throwaway CA whose certificate PEM is written to a file (CaFile()) for
//              clients to trust (curl CAINFO, SSL_CTX_load_verify_locations).
//   TlsServer  a loopback HTTPS server with a leaf of a chosen kind, or a handshake that
//              stalls, answers garbage, or resets.
// OpenSSL types stay in the .cc files; certificates cross as PEM strings.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "fleet/socket_util.h"

namespace gatewatch::fleet {

enum class LeafKind {
  kValid,        // SAN DNS:localhost, IP:127.0.0.1, IP:::1; signed by the CA; valid now
  kExpired,      // as kValid, but notAfter is in the past
  kNotYetValid,  // as kValid, but notBefore is in the future
  kWrongHost,    // SAN DNS:wrong.example only
  kSelfSigned,   // as kValid, but signed by its own key (untrusted)
};

struct IssuedCert {
  std::string cert_pem;
  std::string key_pem;  // PKCS#8, unencrypted
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;  // whole seconds
};

// A CA key and self-signed CA certificate (CN "gatewatch test CA", valid 1 day back to
// 10 years ahead). Thread-safe after construction (Issue is const and reentrant).
class TestCa {
 public:
  // Writes the CA certificate to dir/ca.pem. Empty `dir`: a private temporary directory,
  // removed with the file on destruction.
  explicit TestCa(std::string dir = "");
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& CaFile() const { return ca_file_; }
  const std::string& CertPem() const { return cert_pem_; }

  // A fresh leaf key and certificate of `kind`. For kValid, kWrongHost and kSelfSigned
  // the certificate is valid from 1 hour ago for `valid_for` (so tests can make a cert
  // that "expires in 5 days"); kExpired ended 1 day ago; kNotYetValid starts in 1 day.
  IssuedCert Issue(LeafKind kind,
                   std::chrono::seconds valid_for = std::chrono::hours(24 * 30)) const;

 private:
  std::string own_dir_;  // removed on destruction when non-empty
  std::string ca_file_;
  std::string cert_pem_;
  std::string key_pem_;
};

struct TlsServerOptions {
  enum class Mode {
    kServe,             // complete the handshake, read a request head, write `response`
    kStallHandshake,    // accept TCP, never answer the ClientHello (TLS timeout)
    kGarbageHandshake,  // answer the ClientHello with non-TLS bytes, then close (tls_error)
    kResetHandshake,    // RST after the ClientHello arrived (tls_error)
  };
  LeafKind leaf = LeafKind::kValid;
  Mode mode = Mode::kServe;
  std::chrono::seconds valid_for = std::chrono::hours(24 * 30);  // see TestCa::Issue
  std::string response;  // raw HTTP response; empty = 200 "ok"
};

// Loopback TLS server (TLS 1.2 and 1.3). Threads: one server thread with a poll() loop
// over the listener and every connection (non-blocking SSL). Listening when the
// constructor returns; the destructor stops, closes every client socket and joins.
// One request per connection; then close_notify and close.
class TlsServer {
 public:
  // Leaf issued by `ca`. REQUIRES: `ca` outlives the server (CaFile() refers to it).
  TlsServer(const TestCa& ca, TlsServerOptions options);
  // With a private TestCa, owned by the server.
  explicit TlsServer(TlsServerOptions options = {});
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  int port() const { return port_; }
  // "https://127.0.0.1:PORT/path"; UrlFor("localhost", "/x") -> "https://localhost:PORT/x".
  std::string Url(std::string_view path = "/") const;
  std::string UrlFor(std::string_view host, std::string_view path = "/") const;
  std::string CaFile() const { return ca_file_; }
  std::chrono::system_clock::time_point LeafNotAfter() const { return leaf_.not_after; }
  const std::string& LeafCertPem() const { return leaf_.cert_pem; }

  int AcceptCount() const { return accepts_.load(); }
  int HandshakeCount() const { return handshakes_.load(); }  // completed handshakes
  int RequestCount() const { return requests_.load(); }

 private:
  struct Impl;
  void Start(const TestCa& ca);  // issues the leaf, listens, starts the thread
  void Run();

  std::unique_ptr<TestCa> own_ca_;
  std::string ca_file_;
  TlsServerOptions options_;
  IssuedCert leaf_;
  std::unique_ptr<Impl> impl_;  // SSL_CTX
  UniqueFd listener_;
  int port_ = 0;
  Waker waker_;
  std::atomic<int> accepts_{0};
  std::atomic<int> handshakes_{0};
  std::atomic<int> requests_{0};
  std::thread thread_;  // last
};

}  // namespace gatewatch::fleet
