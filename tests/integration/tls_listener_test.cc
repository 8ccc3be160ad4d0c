// The listener over HTTPS (server.tls_cert / server.tls_key), and clear start-up errors
// when the key cannot be read or does not match.

#include <httplib.h>
#include <signal.h>

#include <doctest/doctest.h>

#include <regex>

#include "fleet/tls_server.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;

std::string Config(const testing::TempDir& dir, const std::string& cert, const std::string& key) {
  return "allow_empty = true\n[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"" + cert + "\"\ntls_key = \"" + key +
         "\"\n[storage]\npath = \"" + dir.File("gw.db") + "\"\n";
}

TEST_CASE("TlsListener: serves /healthz over HTTPS with the configured certificate") {
  fleet::TestCa ca;
  const fleet::IssuedCert leaf = ca.Issue(fleet::LeafKind::kValid);
  testing::TempDir dir;
  const std::string cert = dir.Write("tls.crt", leaf.cert_pem);
  const std::string key = dir.Write("tls.key", leaf.key_pem);
  const std::string config = dir.Write("gw.toml", Config(dir, cert, key));
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"),
                          dir.File("err.log"));
  const int port = testing::WaitForListenPort(dir.File("err.log"));
  REQUIRE_MESSAGE(port > 0, testing::ReadFile(dir.File("err.log")));

  httplib::SSLClient client("127.0.0.1", port);
  client.set_ca_cert_path(ca.CaFile().c_str());
  client.enable_server_certificate_verification(true);
  client.set_connection_timeout(5);
  auto res = client.Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "ok\n");

  httplib::Client plain("127.0.0.1", port);  // plain HTTP to an HTTPS port gets nothing
  plain.set_connection_timeout(2);
  plain.set_read_timeout(2);
  auto no = plain.Get("/healthz");
  CHECK((!no || no->status != 200));

  daemon.Signal(SIGTERM);
  CHECK(daemon.Wait(10s) == 0);
}

TEST_CASE("TlsListener: an unreadable key or a mismatched pair stops start-up with exit 1") {
  fleet::TestCa ca;
  const fleet::IssuedCert a = ca.Issue(fleet::LeafKind::kValid);
  const fleet::IssuedCert b = ca.Issue(fleet::LeafKind::kValid);
  testing::TempDir dir;
  const std::string cert = dir.Write("a.crt", a.cert_pem);
  const std::string other_key = dir.Write("b.key", b.key_pem);

  auto missing = testing::RunCommand(
      {GATEWATCH_BINARY, "run", "--config", dir.Write("m.toml", Config(dir, cert, dir.File("missing.key")))}, 15s);
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("cannot read " + dir.File("missing.key") + ": No such file or directory") !=
        std::string::npos);

  auto mismatch = testing::RunCommand(
      {GATEWATCH_BINARY, "run", "--config", dir.Write("x.toml", Config(dir, cert, other_key))}, 15s);
  CHECK(mismatch.exit_code == 1);
  CHECK(mismatch.err.find("not a valid certificate and key pair") != std::string::npos);
}

}  // namespace
}  // namespace gatewatch::daemon
