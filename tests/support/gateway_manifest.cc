#include "tests/support/gateway_manifest.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "tests/support/gateways.h"
#include "tests/support/process.h"

extern char** environ;

namespace gatewatch::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::array<std::string_view, 8> kSituations = {
    "refused", "silent", "slow", "garbage", "close", "pool_down", "app503", "healthy"};

constexpr auto kDefaultStartTimeout = 20s;
constexpr auto kTermWait = 10s;      // SIGTERM -> exit, as capture.py
constexpr auto kKillWait = 5s;       // SIGKILL -> exit, and for the group to be gone
constexpr auto kVersionTimeout = 10s;
// The silent upstream answers nothing for this long (the longest test is far shorter).
constexpr auto kSilentHold = std::chrono::minutes(10);

std::string GatewaysDir() { return std::string(GATEWATCH_SOURCE_DIR) + "/tests/gateways"; }

std::string Substitute(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    const std::string token = "@" + key + "@";
    for (size_t at = text.find(token); at != std::string::npos; at = text.find(token, at)) {
      text.replace(at, token.size(), value);
      at += value.size();
    }
  }
  return text;
}

std::string StringOr(const json& j, const char* key, std::string fallback = "") {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

double NumberOr(const json& j, const char* key, double fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

std::chrono::milliseconds Seconds(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000.0));
}

// A command of the manifest (["/usr/sbin/x", "-c", "@DIR@/x.conf"]), substituted.
std::vector<std::string> CommandOf(const json& j, const std::map<std::string, std::string>& values,
                                   const std::string& what) {
  REQUIRE_MESSAGE((j.is_array() && !j.empty()), what << " must be a non-empty list of strings");
  std::vector<std::string> argv;
  for (const json& a : j) {
    REQUIRE_MESSAGE(a.is_string(), what << " must be a list of strings, got " << j.dump());
    argv.push_back(Substitute(a.get<std::string>(), values));
  }
  // execve does not search PATH: a bare name is resolved here.
  if (argv[0].find('/') == std::string::npos) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    for (std::string d; std::getline(dirs, d, ':');) {
      const std::string candidate = d + "/" + argv[0];
      if (access(candidate.c_str(), X_OK) == 0) {
        argv[0] = candidate;
        break;
      }
    }
  }
  return argv;
}

// The environment for the gateway: ours, with the manifest's "env" added (replacing).
std::vector<std::string> EnvironmentWith(const json& extra,
                                         const std::map<std::string, std::string>& values) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string kv = *e;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (extra.is_object()) {
    for (const auto& [k, v] : extra.items()) {
      REQUIRE_MESSAGE(v.is_string(), "env." << k << " must be a string");
      env[k] = Substitute(v.get<std::string>(), values);
    }
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// fork + execve in a new session (its own process group), in `cwd`, stdout and stderr
// appended to `log`. Everything the child needs is prepared before fork: between fork and
// exec it only makes async-signal-safe calls. Returns the pid (the group id).
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& cwd, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = fork();
  REQUIRE_MESSAGE(pid >= 0, "fork failed: " << std::strerror(errno));
  if (pid == 0) {
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, nullptr);  // as a shell would start it
    sigaction(SIGXFSZ, &dfl, nullptr);
    if (chdir(cwd.c_str()) != 0) _exit(126);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  return pid;
}

// Whether any process of group `pgid` still exists.
bool GroupExists(pid_t pgid) { return kill(-pgid, 0) == 0 || errno != ESRCH; }

// The last `max_bytes` of a file, with a note when it was cut.
std::string Tail(const std::string& path, size_t max_bytes) {
  std::string text = ReadFile(path);
  if (text.size() > max_bytes) {
    text = "[... " + std::to_string(text.size() - max_bytes) + " bytes cut]\n" +
           text.substr(text.size() - max_bytes);
  }
  return text;
}

}  // namespace

std::span<const std::string_view> AllSituations() { return kSituations; }

// ---- GatewayManifest ----

GatewayManifest::GatewayManifest(std::string_view name) : name_(name) {
  const std::string path = folder() + "/gateway.json";
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "no manifest " << path);
  json_ = json::parse(in, nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(json_.is_object(), path << " is not a JSON object");
  for (const char* key : {"gateway", "package", "binary"}) {
    REQUIRE_MESSAGE(json_.contains(key), path << " has no \"" << key << "\"");
    REQUIRE_MESSAGE(json_[key].is_string(), path << ": \"" << key << "\" must be a string");
  }
  REQUIRE_MESSAGE(json_.contains("command"), path << " has no \"command\"");
  REQUIRE_MESSAGE(json_.contains("situations"), path << " has no \"situations\"");
  REQUIRE_MESSAGE(json_["situations"].is_object(), path << ": \"situations\" must be an object");
  for (const auto& [situation, spec] : json_["situations"].items()) {
    REQUIRE_MESSAGE(
        std::find(kSituations.begin(), kSituations.end(), situation) != kSituations.end(),
        path << ": unknown situation \"" << situation << "\"");
    REQUIRE_MESSAGE((spec.is_string() || (spec.is_object() && spec.contains("path"))),
                    path << ": situation " << situation << " must be a path or {\"path\": ...}");
  }
}

std::string GatewayManifest::gateway() const { return json_["gateway"].get<std::string>(); }
std::string GatewayManifest::package() const { return json_["package"].get<std::string>(); }
std::string GatewayManifest::binary() const { return json_["binary"].get<std::string>(); }
std::string GatewayManifest::folder() const { return GatewaysDir() + "/" + name_; }

bool GatewayManifest::Installed() const { return access(binary().c_str(), X_OK) == 0; }

std::vector<std::string> GatewayManifest::Situations() const {
  std::vector<std::string> out;
  for (std::string_view s : kSituations) {
    if (json_["situations"].contains(s)) out.emplace_back(s);
  }
  return out;
}

std::string GatewayManifest::AbsentReason(std::string_view situation) const {
  const auto it = json_.find("absent");
  if (it == json_.end() || !it->is_object()) return "";
  return StringOr(*it, std::string(situation).c_str());
}

std::vector<std::string> ManifestNames() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(GatewaysDir(), ec)) {
    if (fs::is_regular_file(entry.path() / "gateway.json", ec)) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

void SkipUnlessInstalled(const GatewayManifest& manifest) {
  if (manifest.Installed()) return;
  std::cerr << "SKIPPED: " << manifest.name() << ": " << manifest.binary()
            << " is missing (apt-get install -y " << manifest.package()
            << "; scripts/test-packages.txt); exit code " << kSkipExitCode << std::endl;
  std::cout << std::flush;
  std::_Exit(kSkipExitCode);
}

// ---- SituationUpstreams ----

SituationUpstreams::SituationUpstreams()
    : silent_(fleet::Behavior::Raw("").After(kSilentHold)),
      slow_(fleet::Behavior::Raw(std::string(kHealthyReply)).After(kSlowUpstreamDelay)),
      garbage_(fleet::Behavior::Garbage(std::string(kSshBanner) + std::string(kSshReply))),
      close_(fleet::Behavior::EmptyReply()),
      app503_(fleet::Behavior::Raw(std::string(kApp503Reply))),
      healthy_(fleet::Behavior::Raw(std::string(kHealthyReply))) {
  refused_fd_ = BindLoopback(&refused_);
  down_fd_ = BindLoopback(&down_);
}

SituationUpstreams::~SituationUpstreams() {
  if (refused_fd_ >= 0) close(refused_fd_);
  if (down_fd_ >= 0) close(down_fd_);
}

uint16_t SituationUpstreams::Port(std::string_view situation) const {
  if (situation == "refused") return refused_;
  if (situation == "pool_down") return down_;
  if (situation == "silent") return static_cast<uint16_t>(silent_.port());
  if (situation == "slow") return static_cast<uint16_t>(slow_.port());
  if (situation == "garbage") return static_cast<uint16_t>(garbage_.port());
  if (situation == "close") return static_cast<uint16_t>(close_.port());
  if (situation == "app503") return static_cast<uint16_t>(app503_.port());
  if (situation == "healthy") return static_cast<uint16_t>(healthy_.port());
  FAIL("unknown situation " << situation);
  return 0;
}

std::map<std::string, std::string> SituationUpstreams::Placeholders() const {
  std::map<std::string, std::string> out;
  for (std::string_view s : kSituations) {
    std::string key = s == "pool_down" ? "DOWN" : std::string(s);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    out[key] = std::to_string(Port(s));
  }
  return out;
}

// ---- ManifestGateway::Group ----

// The gateway's process group: its leader is our child (reaped here), its workers die with
// the group.
class ManifestGateway::Group {
 public:
  explicit Group(pid_t pid) : pid_(pid) {}
  ~Group() { Stop(); }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  pid_t pid() const { return pid_; }
  std::optional<int> status() const { return status_; }

  bool Running() {
    if (status_) return false;
    int st = 0;
    const pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return false;
    }
    return r == 0;
  }

  // Waits (bounded) for the leader to exit.
  bool WaitExit(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Running()) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  // SIGTERM to the group, SIGKILL after kTermWait, then SIGKILL to whatever is left of the
  // group (workers of forking gateways) and a bounded wait until none is left.
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    if (Running()) {
      Signal(SIGTERM);
      if (!WaitExit(kTermWait)) {
        Signal(SIGKILL);
        WaitExit(kKillWait);
      }
    }
    Signal(SIGKILL);
    const auto deadline = Clock::now() + kKillWait;
    while (GroupExists(pid_) && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  }

 private:
  void Signal(int sig) {
    kill(-pid_, sig);
    if (Running()) kill(pid_, sig);  // not yet in its own group (setsid pending)
  }

  pid_t pid_;
  std::optional<int> status_;
  bool stopped_ = false;
};

// ---- ManifestGateway ----

namespace {

GatewayManifest InstalledManifest(std::string_view name) {
  GatewayManifest m(name);
  SkipUnlessInstalled(m);
  return m;
}

}  // namespace

ManifestGateway::ManifestGateway(std::string_view name)
    : manifest_(InstalledManifest(name)), upstreams_(std::make_unique<SituationUpstreams>()) {
  const json& m = manifest_.json();
  REQUIRE(chmod(dir_.path().c_str(), 0777) == 0);  // gateways that drop privileges write here

  // The gateway's ports: held together while chosen (so they differ), released just before
  // the gateway starts.
  std::vector<std::string> keys = {"PORT"};
  if (const auto it = m.find("extra_ports"); it != m.end()) {
    for (const json& k : *it) keys.push_back(k.get<std::string>());
  }
  struct Held {
    std::vector<int> fds;
    void Release() {
      for (int fd : fds) close(fd);
      fds.clear();
    }
    ~Held() { Release(); }
  } held;
  for (const std::string& k : keys) {
    uint16_t port = 0;
    held.fds.push_back(BindLoopback(&port));
    ports_[k] = port;
  }

  std::map<std::string, std::string> values = upstreams_->Placeholders();
  values["HOST"] = "127.0.0.1";
  values["DIR"] = dir_.path();
  for (const auto& [k, port] : ports_) values[k] = std::to_string(port);

  if (const auto it = m.find("dirs"); it != m.end()) {
    for (const json& d : *it) {
      const fs::path sub = fs::path(dir_.path()) / Substitute(d.get<std::string>(), values);
      std::error_code ec;
      fs::create_directories(sub, ec);
      REQUIRE_MESSAGE(!ec, "cannot make " << sub << ": " << ec.message());
      REQUIRE(chmod(sub.c_str(), 0777) == 0);
    }
  }
  if (const auto it = m.find("files"); it != m.end()) {
    for (const json& f : *it) {
      const std::string file = f.get<std::string>();
      const std::string source = manifest_.folder() + "/" + file;
      std::ifstream in(source, std::ios::binary);
      REQUIRE_MESSAGE(in.good(), "template " << source << " is missing");
      std::ostringstream text;
      text << in.rdbuf();
      const fs::path dest = fs::path(dir_.path()) / file;
      std::error_code ec;
      fs::create_directories(dest.parent_path(), ec);
      dir_.Write(fs::relative(dest, dir_.path()).string(), Substitute(text.str(), values));
      // Same permission bits as the template (a script stays executable).
      fs::permissions(dest, fs::status(source, ec).permissions(), ec);
    }
  }
  const std::vector<std::string> env = EnvironmentWith(m.value("env", json::object()), values);
  const std::string log = dir_.File("gateway.log");

  if (const auto it = m.find("version"); it != m.end() && it->is_array() && !it->empty()) {
    const RunResult r = RunCommand(CommandOf(*it, values, "version"), kVersionTimeout);
    std::istringstream lines(r.out + "\n" + r.err);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) {
        version_ = line;
        break;
      }
    }
  }

  held.Release();
  group_ = std::make_unique<Group>(
      Spawn(CommandOf(m["command"], values, "command"), env, dir_.path(), log));

  const auto start_timeout = Seconds(NumberOr(m, "start_timeout_s", 20.0));
  const auto deadline = Clock::now() + std::max<std::chrono::milliseconds>(start_timeout, 1s);
  bool up = false;
  while (group_->Running() && Clock::now() < deadline) {
    up = std::all_of(ports_.begin(), ports_.end(),
                     [](const auto& kv) { return Accepts(kv.second); });
    if (up) break;
    std::this_thread::sleep_for(50ms);
  }
  if (!up || !group_->Running()) {
    const bool exited = !group_->Running();
    group_->Stop();
    std::string ports;
    for (const auto& [k, port] : ports_) ports += " " + k + "=" + std::to_string(port);
    FAIL(manifest_.name() << " (" << manifest_.binary() << ") "
                          << (exited
                                  ? "exited with " + std::to_string(group_->status().value_or(-1))
                                  : "did not accept on every port within " +
                                        std::to_string(start_timeout.count()) + " ms")
                          << " (ports" << ports << "); log:\n"
                          << Log());
  }
  // The manifest's settle time (health checks marking a dead server down): a fixed wait the
  // manifest asks for, not a synchronisation.
  std::this_thread::sleep_for(Seconds(NumberOr(m, "settle_s", 0.0)));
  REQUIRE_MESSAGE(group_->Running(), manifest_.name() << " exited during its settle time; log:\n"
                                                      << Log());
}

ManifestGateway::~ManifestGateway() {
  if (group_) group_->Stop();
}

bool ManifestGateway::Has(std::string_view situation) const {
  return manifest_.json()["situations"].contains(situation);
}

std::string ManifestGateway::Url(std::string_view situation) const {
  REQUIRE_MESSAGE(Has(situation), manifest_.name() << " has no situation " << situation);
  const json& spec = manifest_.json()["situations"][std::string(situation)];
  const std::string path = spec.is_string() ? spec.get<std::string>() : StringOr(spec, "path", "/");
  const std::string key = spec.is_object() ? StringOr(spec, "port", "PORT") : "PORT";
  return "http://127.0.0.1:" + std::to_string(Port(key)) + path;
}

std::string ManifestGateway::UpstreamUrl(std::string_view situation) const {
  return "http://127.0.0.1:" + std::to_string(upstreams_->Port(situation)) + "/";
}

uint16_t ManifestGateway::Port(std::string_view key) const {
  const auto it = ports_.find(std::string(key));
  REQUIRE_MESSAGE(it != ports_.end(), manifest_.name() << " has no port " << key);
  return it->second;
}

std::string ManifestGateway::Log(size_t max_bytes_per_file) const {
  std::string out =
      "--- " + dir_.File("gateway.log") + "\n" + Tail(dir_.File("gateway.log"), max_bytes_per_file);
  std::error_code ec;
  std::vector<std::string> others;
  for (auto it = fs::recursive_directory_iterator(dir_.path(), ec);
       !ec && it != fs::recursive_directory_iterator() && others.size() < 10; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (!it->is_regular_file(ec) || file == "gateway.log") continue;
    const bool is_log =
        file.ends_with(".log") || file.ends_with("_log") || file.find("error") != std::string::npos;
    if (is_log) others.push_back(it->path().string());
  }
  std::sort(others.begin(), others.end());
  for (const std::string& path : others) {
    out += "--- " + path + "\n" + Tail(path, max_bytes_per_file);
  }
  return out;
}

}  // namespace gatewatch::testing
