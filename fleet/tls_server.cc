#include "fleet/tls_server.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <vector>

#include "fleet/http_text.h"

namespace gatewatch::fleet {
namespace {

using Clock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kMaxConnections = 256;
constexpr auto kIoTimeout = std::chrono::seconds(30);
constexpr auto kDrainTimeout = std::chrono::seconds(2);
constexpr const char* kSanValid = "DNS:localhost,IP:127.0.0.1,IP:::1";
constexpr const char* kSanWrong = "DNS:wrong.example";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void DieSsl(const char* what) {
  std::fprintf(stderr, "gatewatch fleet: fatal: %s\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

PkeyPtr NewP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) DieSsl("EC P-256 key generation");
  return key;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) DieSsl("PEM_write_bio_X509");
  return BioText(bio.get());
}

std::string KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    DieSsl("PEM_write_bio_PrivateKey");
  }
  return BioText(bio.get());
}

X509Ptr CertFromPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) DieSsl("PEM_read_bio_X509");
  return cert;
}

PkeyPtr KeyFromPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) DieSsl("PEM_read_bio_PrivateKey");
  return key;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) DieSsl("X509 extension");
  X509_EXTENSION_free(ext);
}

void SetName(X509_NAME* name, const char* common_name) {
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("gatewatch fleet"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(common_name), -1, -1,
                                 0) != 1) {
    DieSsl("X509_NAME_add_entry_by_txt");
  }
}

// A v3 certificate for `key` over [not_before, not_after], subject CN `cn`. `issuer`
// null = self-issued. Signed by `signer`.
X509Ptr MakeCert(EVP_PKEY* key, const char* cn, time_t not_before, time_t not_after, X509* issuer,
                 EVP_PKEY* signer, bool is_ca, const char* san) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) DieSsl("X509_new");
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) DieSsl("RAND_bytes");
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  if (serial == nullptr ||
      BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) == nullptr) {
    DieSsl("serial number");
  }
  BN_free(serial);
  if (X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, 0, &not_before) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, 0, &not_after) == nullptr) {
    DieSsl("X509 validity");
  }
  SetName(X509_get_subject_name(cert.get()), cn);
  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    DieSsl("X509 issuer/pubkey");
  }
  if (is_ca) {
    AddExtension(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), issuer_cert, NID_key_usage, "critical,digitalSignature");
    AddExtension(cert.get(), issuer_cert, NID_ext_key_usage, "serverAuth");
  }
  AddExtension(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) {
    AddExtension(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always");
  }
  if (san != nullptr) AddExtension(cert.get(), issuer_cert, NID_subject_alt_name, san);
  if (X509_sign(cert.get(), signer, EVP_sha256()) <= 0) DieSsl("X509_sign");
  return cert;
}

std::string OkResponse() {
  return BuildResponse("200 OK",
                       {{"Content-Type", "text/plain"},
                        {"Content-Length", std::string(kBodyLength)},
                        {"Connection", "close"}},
                       "ok");
}

}  // namespace

// ---- TestCa ----

TestCa::TestCa(std::string dir) {
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/gatewatch-ca-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) Die("mkdtemp for TestCa");
    own_dir_ = templ;
    dir = templ;
  }
  const time_t now = std::time(nullptr);
  PkeyPtr key = NewP256Key();
  X509Ptr cert = MakeCert(key.get(), "gatewatch test CA", now - 86400, now + 10L * 365 * 86400,
                          nullptr, key.get(), /*is_ca=*/true, nullptr);
  cert_pem_ = CertToPem(cert.get());
  key_pem_ = KeyToPem(key.get());
  ca_file_ = dir + "/ca.pem";
  std::FILE* f = std::fopen(ca_file_.c_str(), "wb");
  if (f == nullptr) Die("cannot write " + ca_file_);
  const bool ok = std::fwrite(cert_pem_.data(), 1, cert_pem_.size(), f) == cert_pem_.size();
  if (std::fclose(f) != 0 || !ok) Die("cannot write " + ca_file_);
}

TestCa::~TestCa() {
  if (own_dir_.empty()) return;
  ::unlink(ca_file_.c_str());
  ::rmdir(own_dir_.c_str());
}

IssuedCert TestCa::Issue(LeafKind kind, std::chrono::seconds valid_for) const {
  const time_t now = std::time(nullptr);
  time_t not_before = now - 3600;
  time_t not_after = now + static_cast<time_t>(valid_for.count());
  if (kind == LeafKind::kExpired) {
    not_before = now - 30L * 86400;
    not_after = now - 86400;
  } else if (kind == LeafKind::kNotYetValid) {
    not_before = now + 86400;
    not_after = now + 30L * 86400;
  }
  PkeyPtr key = NewP256Key();
  X509Ptr cert;
  const char* san = kind == LeafKind::kWrongHost ? kSanWrong : kSanValid;
  const char* cn = kind == LeafKind::kWrongHost ? "wrong.example" : "localhost";
  if (kind == LeafKind::kSelfSigned) {
    cert = MakeCert(key.get(), cn, not_before, not_after, nullptr, key.get(), false, san);
  } else {
    X509Ptr ca_cert = CertFromPem(cert_pem_);
    PkeyPtr ca_key = KeyFromPem(key_pem_);
    cert = MakeCert(key.get(), cn, not_before, not_after, ca_cert.get(), ca_key.get(), false, san);
  }
  return IssuedCert{CertToPem(cert.get()), KeyToPem(key.get()),
                    SystemClock::from_time_t(not_before), SystemClock::from_time_t(not_after)};
}

// ---- TlsServer ----

struct TlsServer::Impl {
  SSL_CTX* ctx = nullptr;
  ~Impl() { SSL_CTX_free(ctx); }
};

namespace {

struct TlsConn {
  enum class Phase { kHello, kHandshake, kRead, kWrite, kDrain, kStall };
  UniqueFd fd;
  SSL* ssl = nullptr;
  Phase phase = Phase::kHello;
  bool want_write = false;  // the last SSL call asked for POLLOUT
  Clock::time_point deadline;
  std::string in;
  std::string out;
  size_t out_pos = 0;

  TlsConn() = default;
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;
  ~TlsConn() { SSL_free(ssl); }
};

}  // namespace

TlsServer::TlsServer(const TestCa& ca, TlsServerOptions options) : options_(std::move(options)) {
  Start(ca);
}

TlsServer::TlsServer(TlsServerOptions options)
    : own_ca_(std::make_unique<TestCa>()), options_(std::move(options)) {
  Start(*own_ca_);
}

void TlsServer::Start(const TestCa& ca) {
  ca_file_ = ca.CaFile();
  leaf_ = ca.Issue(options_.leaf, options_.valid_for);
  if (options_.response.empty()) options_.response = OkResponse();
  impl_ = std::make_unique<Impl>();
  impl_->ctx = SSL_CTX_new(TLS_server_method());
  if (impl_->ctx == nullptr) DieSsl("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(impl_->ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(impl_->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  X509Ptr cert = CertFromPem(leaf_.cert_pem);
  PkeyPtr key = KeyFromPem(leaf_.key_pem);
  if (SSL_CTX_use_certificate(impl_->ctx, cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(impl_->ctx, key.get()) != 1 ||
      SSL_CTX_check_private_key(impl_->ctx) != 1) {
    DieSsl("TlsServer certificate/key");
  }
  listener_ = BindLoopback(IpFamily::kV4, SOCK_STREAM, 128, /*non_blocking=*/true);
  port_ = LocalPort(listener_.get());
  thread_ = std::thread([this] { Run(); });
}

TlsServer::~TlsServer() {
  waker_.Notify();
  if (thread_.joinable()) thread_.join();
}

std::string TlsServer::Url(std::string_view path) const { return UrlFor("127.0.0.1", path); }

std::string TlsServer::UrlFor(std::string_view host, std::string_view path) const {
  std::string url = "https://" + std::string(host) + ":" + std::to_string(port_);
  if (path.empty() || path.front() != '/') url += '/';
  url.append(path);
  return url;
}

void TlsServer::Run() {
  using Mode = TlsServerOptions::Mode;
  // OpenSSL's socket BIO writes with write(), not send(MSG_NOSIGNAL): a client that
  // rejected our certificate and closed would kill the process with SIGPIPE. SIGPIPE is
  // sent to the writing thread, so blocking it here is enough (write() returns EPIPE).
  sigset_t sigpipe;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
  std::vector<std::unique_ptr<TlsConn>> conns;
  std::vector<pollfd> fds;
  char buf[16 * 1024];

  const auto finish = [](TlsConn& c) {
    ::shutdown(c.fd.get(), SHUT_WR);
    c.phase = TlsConn::Phase::kDrain;
    c.deadline = Clock::now() + kDrainTimeout;
  };
  // Handles an SSL call's result; returns false when the connection must close.
  const auto ssl_wait = [](TlsConn& c, int ret) {
    const int err = SSL_get_error(c.ssl, ret);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_READ) {
      c.want_write = false;
      return true;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
      c.want_write = true;
      return true;
    }
    return false;
  };
  // Advances a kServe connection as far as it can go without blocking.
  const auto step = [&](TlsConn& c) {
    for (int guard = 0; guard < 64 && c.fd.valid(); ++guard) {
      if (c.phase == TlsConn::Phase::kHandshake) {
        const int ret = SSL_accept(c.ssl);
        if (ret == 1) {
          ++handshakes_;
          c.phase = TlsConn::Phase::kRead;
          continue;
        }
        if (!ssl_wait(c, ret)) c.fd.Reset();  // e.g. the client rejected our certificate
        return;
      }
      if (c.phase == TlsConn::Phase::kRead) {
        const int n = SSL_read(c.ssl, buf, sizeof(buf));
        if (n <= 0) {
          if (!ssl_wait(c, n)) c.fd.Reset();
          return;
        }
        c.in.append(buf, static_cast<size_t>(n));
        if (FindHeadEnd(c.in) != std::string::npos || c.in.size() > kMaxHeadBytes) {
          ++requests_;
          c.out = options_.response;
          c.phase = TlsConn::Phase::kWrite;
        }
        continue;
      }
      if (c.phase == TlsConn::Phase::kWrite) {
        if (c.out_pos == c.out.size()) {
          ERR_clear_error();
          SSL_shutdown(c.ssl);  // close_notify; we do not wait for the peer's
          finish(c);
          return;
        }
        const int n =
            SSL_write(c.ssl, c.out.data() + c.out_pos,
                      static_cast<int>(std::min<size_t>(c.out.size() - c.out_pos, 1 << 20)));
        if (n <= 0) {
          if (!ssl_wait(c, n)) c.fd.Reset();
          return;
        }
        c.out_pos += static_cast<size_t>(n);
        continue;
      }
      return;
    }
  };

  while (true) {
    fds.clear();
    fds.push_back({waker_.fd(), POLLIN, 0});
    fds.push_back(
        {listener_.get(), static_cast<short>(conns.size() < kMaxConnections ? POLLIN : 0), 0});
    Clock::time_point next = Clock::now() + std::chrono::seconds(1);
    for (const auto& c : conns) {
      short events = POLLIN;
      if (c->phase == TlsConn::Phase::kStall) events = POLLRDHUP;
      if (c->want_write) events |= POLLOUT;
      fds.push_back({c->fd.get(), events, 0});
      if (c->phase != TlsConn::Phase::kStall) next = std::min(next, c->deadline);
    }
    const int ready = ::poll(fds.data(), fds.size(), PollTimeoutMs(next));
    if (ready < 0 && errno != EINTR) Die("poll() in TlsServer");
    if (fds[0].revents != 0) break;

    const auto now = Clock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      TlsConn& c = *conns[i];
      const short rev = fds[i + 2].revents;
      if (c.phase == TlsConn::Phase::kStall) {
        if (rev != 0) c.fd.Reset();  // the client gave up
        continue;
      }
      if (c.phase == TlsConn::Phase::kHello || c.phase == TlsConn::Phase::kDrain) {
        if (rev & (POLLIN | POLLERR | POLLHUP)) {
          const ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
          if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) c.fd.Reset();
            continue;
          }
          if (c.phase == TlsConn::Phase::kHello) {  // a ClientHello (or its start) arrived
            if (options_.mode == Mode::kResetHandshake) {
              ResetAndClose(c.fd);
              continue;
            }
            static constexpr char kGarbage[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
            ::send(c.fd.get(), kGarbage, sizeof(kGarbage) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            finish(c);
          }
        } else if (now >= c.deadline) {
          c.fd.Reset();
        }
        continue;
      }
      // kServe phases.
      if (rev != 0) step(c);
      if (c.fd.valid() && c.phase != TlsConn::Phase::kDrain && now >= c.deadline) c.fd.Reset();
    }
    std::erase_if(conns, [](const std::unique_ptr<TlsConn>& c) { return !c->fd.valid(); });

    if (fds[1].revents & POLLIN) {
      for (int i = 0; i < 64 && conns.size() < kMaxConnections; ++i) {
        UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd.valid()) break;
        ++accepts_;
        auto c = std::make_unique<TlsConn>();
        c->fd = std::move(fd);
        c->deadline = Clock::now() + kIoTimeout;
        switch (options_.mode) {
          case Mode::kStallHandshake:
            c->phase = TlsConn::Phase::kStall;
            break;
          case Mode::kGarbageHandshake:
          case Mode::kResetHandshake:
            c->phase = TlsConn::Phase::kHello;
            break;
          case Mode::kServe:
            c->ssl = SSL_new(impl_->ctx);
            if (c->ssl == nullptr || SSL_set_fd(c->ssl, c->fd.get()) != 1) DieSsl("SSL_new");
            c->phase = TlsConn::Phase::kHandshake;
            step(*c);
            break;
        }
        if (c->fd.valid()) conns.push_back(std::move(c));
      }
    }
  }
}

}  // namespace gatewatch::fleet
