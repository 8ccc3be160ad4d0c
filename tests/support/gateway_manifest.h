#pragma once
// A real gateway from its manifest (tests/gateways/NAME/gateway.json, tests/gateways/README.md)
// for the C++ live tests: the same setup tests/fixtures/responses/capture.py runs, so one
// manifest serves both.
//
//   ManifestGateway gw("nginx");            // upstreams, config, gateway running
//   for (const std::string& s : gw.Situations()) {
//     curl(gw.Url(s));                      // the situation through the gateway
//     curl(gw.UpstreamUrl(s));              // its upstream, probed directly
//   }
//
// The constructor:
//  - ends the test process with kSkipExitCode (ctest SKIP_RETURN_CODE) when the manifest's
//    binary is missing, after printing to stderr which binary and which Debian package; it
//    does so before it creates anything, so construct the gateway first in a test;
//  - starts the upstreams of every situation (SituationUpstreams, behaviour as capture.py's
//    Upstream class);
//  - writes the manifest's templates, placeholders substituted, into a TempDir (mode 0777:
//    gateways that drop privileges write there) and makes its "dirs" (0777);
//  - runs "command" in the foreground with the dir as working directory, the manifest's
//    "env" added, stdout and stderr to DIR/gateway.log, in a session (process group) of its
//    own;
//  - REQUIREs that every port (PORT and the extra ports) accepts within "start_timeout_s"
//    (20 s by default) while the gateway runs, then waits "settle_s" (health checks).
// On a failure it stops what it started and the message carries the gateway's log.
//
// The destructor sends SIGTERM to the whole process group, waits up to 10 s for the gateway
// to exit, then SIGKILLs the group (workers included), waits (bounded) until the group is
// gone, stops the upstreams and removes the dir. Placeholders: @HOST@ (127.0.0.1), @DIR@,
// @PORT@ and the extra ports, @REFUSED@, @SILENT@, @SLOW@, @GARBAGE@, @CLOSE@, @DOWN@,
// @APP503@, @HEALTHY@. 127.0.0.1 only.
//
// Threads: construct and destroy on the test's thread; the accessors are const and may be
// called from any thread while the gateway lives.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/raw_server.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::testing {

// The exit code of a test that cannot run because a gateway is not installed (map it to
// ctest's SKIP_RETURN_CODE).
inline constexpr int kSkipExitCode = 77;

// The eight situations of tests/gateways/README.md, in capture.py's order.
std::span<const std::string_view> AllSituations();

// Upstream behaviour, the same bytes and delays as capture.py (keep the two in step).
inline constexpr std::chrono::seconds kSlowUpstreamDelay{4};
inline constexpr std::string_view kSshBanner = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
inline constexpr std::string_view kSshReply = "Invalid SSH identification string.\r\n";
inline constexpr std::string_view kHealthyReply =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: close\r\n\r\nok\n";
inline constexpr std::string_view kApp503Reply =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n"
    "Retry-After: 120\r\nContent-Length: 71\r\nConnection: close\r\n\r\n"
    "<!doctype html><title>Down for maintenance</title><p>Back at 14:00 UTC.";

// gateway.json, parsed. Accessors for the keys every manifest has; the rest via json().
class GatewayManifest {
 public:
  // Reads GATEWATCH_SOURCE_DIR/tests/gateways/NAME/gateway.json; REQUIREs it parses and has
  // gateway, package, binary, command and situations.
  explicit GatewayManifest(std::string_view name);

  const std::string& name() const { return name_; }  // the folder
  std::string gateway() const;                       // the emitter its own pages should get
  std::string package() const;                       // Debian package
  std::string binary() const;
  std::string folder() const;  // GATEWATCH_SOURCE_DIR/tests/gateways/NAME
  bool Installed() const;      // the binary is executable
  // Situations the manifest defines, in AllSituations() order.
  std::vector<std::string> Situations() const;
  // "why" of the manifest's "absent" entry for `situation`, "" if none.
  std::string AbsentReason(std::string_view situation) const;
  const nlohmann::json& json() const { return json_; }

 private:
  std::string name_;
  nlohmann::json json_;
};

// Every folder under tests/gateways/ with a gateway.json, sorted.
std::vector<std::string> ManifestNames();

// Ends the process with kSkipExitCode when the manifest's binary is missing, printing
// "SKIPPED: NAME: BINARY is missing (apt-get install -y PACKAGE)" to stderr first.
void SkipUnlessInstalled(const GatewayManifest& manifest);

// One loopback upstream per behaviour (capture.py's Upstream): silent (accepts, reads the
// request, never answers while a test runs), slow (kHealthyReply after kSlowUpstreamDelay),
// garbage (kSshBanner and kSshReply after the request, then closes), close (reads the
// request, closes without a byte), app503 (kApp503Reply), healthy (kHealthyReply). refused
// and pool_down get loopback ports where nothing listens: each is held by a socket that is
// bound but never listens, so connects are refused and no other socket can take the port
// (not even a gateway's outgoing connection) while the upstreams live.
class SituationUpstreams {
 public:
  SituationUpstreams();
  ~SituationUpstreams();
  SituationUpstreams(const SituationUpstreams&) = delete;
  SituationUpstreams& operator=(const SituationUpstreams&) = delete;

  // The upstream port of a situation (REQUIREs a known situation).
  uint16_t Port(std::string_view situation) const;
  // "SILENT" -> "40123", ...: the upstream placeholders of the manifests.
  std::map<std::string, std::string> Placeholders() const;

 private:
  int refused_fd_ = -1;
  int down_fd_ = -1;
  uint16_t refused_ = 0;
  uint16_t down_ = 0;
  fleet::RawHttpServer silent_;
  fleet::RawHttpServer slow_;
  fleet::RawHttpServer garbage_;
  fleet::RawHttpServer close_;
  fleet::RawHttpServer app503_;
  fleet::RawHttpServer healthy_;
};

class ManifestGateway {
 public:
  explicit ManifestGateway(std::string_view name);
  ~ManifestGateway();
  ManifestGateway(const ManifestGateway&) = delete;
  ManifestGateway& operator=(const ManifestGateway&) = delete;

  const GatewayManifest& manifest() const { return manifest_; }
  std::string name() const { return manifest_.name(); }
  std::string binary() const { return manifest_.binary(); }
  std::string package() const { return manifest_.package(); }
  // The first line the manifest's "version" command prints ("" without one).
  const std::string& version() const { return version_; }

  std::vector<std::string> Situations() const { return manifest_.Situations(); }
  bool Has(std::string_view situation) const;
  // http://127.0.0.1:PORT/path of a situation on the gateway (REQUIREs Has()).
  std::string Url(std::string_view situation) const;
  // http://127.0.0.1:UPSTREAM/ : the situation's upstream, probed directly.
  std::string UpstreamUrl(std::string_view situation) const;
  // The gateway's port for a key ("PORT" or an extra port).
  uint16_t Port(std::string_view key = "PORT") const;
  const std::string& dir() const { return dir_.path(); }

  // What the gateway wrote: DIR/gateway.log (stdout and stderr), then every other file
  // under DIR whose name ends in ".log" or contains "error" (its own logs), each headed by
  // its path and cut to its last `max_bytes_per_file` bytes.
  std::string Log(size_t max_bytes_per_file = 6000) const;

 private:
  class Group;  // the gateway's process group

  GatewayManifest manifest_;
  std::map<std::string, uint16_t> ports_;  // PORT and extra ports
  std::unique_ptr<SituationUpstreams> upstreams_;
  TempDir dir_;
  std::string version_;
  std::unique_ptr<Group> group_;  // last: stopped before the dir and the upstreams go
};

}  // namespace gatewatch::testing
