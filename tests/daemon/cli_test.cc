#include "daemon/cli.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon/check.h"
#include "gatewatch_version.h"
#include "probes/log.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::daemon {
namespace {

struct Run {
  int code;
  std::string out, err;
};
Run Cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

TEST_CASE("CLI: version and help exit 0, each command has its own help") {
  auto v = Cli({"version"});
  CHECK(v.code == 0);
  CHECK(v.out == std::string("gatewatch ") + kVersion + "\n");
  for (const auto& args : std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    auto h = Cli(args);
    CHECK(h.code == 0);
    for (const char* command : {"run", "validate", "check", "demo", "backup", "notify-test"}) {
      CHECK(h.out.find(std::string("\n  ") + command + " ") != std::string::npos);
    }
    CHECK(h.out.find(kDefaultConfigPath) != std::string::npos);
    CHECK(h.err.empty());
  }
  auto check_help = Cli({"check", "--help"});
  CHECK(check_help.code == 0);
  CHECK(check_help.out.find("Usage: gatewatch check [OPTIONS] [URL]") != std::string::npos);
  CHECK(check_help.out.find("Exit codes: 0 the verdict is healthy") != std::string::npos);
  CHECK(check_help.out.find("--upstream URL") != std::string::npos);
  CHECK(check_help.out.find("--listen") == std::string::npos);  // demo's, not check's
  auto backup_help = Cli({"backup", "-h"});
  CHECK(backup_help.code == 0);
  CHECK(backup_help.out.find("--force") != std::string::npos);
  CHECK(backup_help.out.find("--upstream") == std::string::npos);
}

TEST_CASE("CLI: usage errors exit 2 with the problem and the command's one-line usage") {
  struct Case {
    std::vector<std::string> args;
    std::string problem, usage;
  };
  const std::string all = "usage: gatewatch <command> [options]; commands: run validate check";
  for (const Case& c : std::vector<Case>{
           {{}, "gatewatch: no command given\n", all},
           {{"frobnicate"}, "gatewatch: unknown command \"frobnicate\"\n", all},
           {{"validate", "--config"}, "gatewatch: --config needs a value\n",
            "usage: gatewatch validate [FILE | --config FILE]\n"},
           {{"run", "--bogus"}, "gatewatch: the following argument was not expected: --bogus\n",
            "usage: gatewatch run [FILE | --config FILE]\n"},
           {{"version", "extra"}, "gatewatch: the following argument was not expected: extra\n",
            "usage: gatewatch version\n"},
           {{"--log-level", "loud", "version"},
            "gatewatch: --log-level must be debug, info, warn or error\n", "usage: gatewatch version\n"},
           {{"validate", "a.toml", "--config", "b.toml"},
            "gatewatch: the config file is given twice (FILE and --config); give it once\n",
            "usage: gatewatch validate"},
           {{"backup", "--config", "a.toml"}, "gatewatch: DEST is required\n",
            "usage: gatewatch backup [--config FILE] DEST [--force]\n"},
           {{"notify-test", "--config", "a.toml"}, "gatewatch: --notifier is required\n",
            "usage: gatewatch notify-test"}}) {
    CAPTURE(c.problem);
    auto r = Cli(c.args);
    CHECK(r.code == kExitUsage);
    CHECK(r.err.rfind(c.problem, 0) == 0);
    CHECK(r.err.find(c.usage) != std::string::npos);
    CHECK(r.err.size() < 300);  // a short error, not the whole help text
    CHECK(r.out.empty());
  }
}

TEST_CASE("CLI: the config file is FILE, --config, $GATEWATCH_CONFIG or the default path") {
  testing::TempDir dir;
  const std::string a = dir.Write("a.toml", "[[monitors]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\n");
  const std::string b = dir.Write("b.toml", "[[monitors]]\nname = \"b\"\nurl = \"http://127.0.0.1:1/\"\n");
  auto positional = Cli({"validate", a});
  CHECK(positional.code == 0);
  CHECK(positional.out.find("config OK: " + a) != std::string::npos);
  auto log_level_after = Cli({"validate", a, "--log-level", "warn"});  // global options go anywhere
  CHECK(log_level_after.code == 0);
  log::SetMinLevel(log::Level::kInfo);
  ::setenv("GATEWATCH_CONFIG", b.c_str(), 1);
  auto env = Cli({"validate"});
  CHECK(env.code == 0);
  CHECK(env.out.find("config OK: " + b) != std::string::npos);
  auto flag_wins = Cli({"validate", "--config", a});
  CHECK(flag_wins.out.find("config OK: " + a) != std::string::npos);
  ::unsetenv("GATEWATCH_CONFIG");
  auto fallback = Cli({"validate"});
  CHECK(fallback.code == kExitUsage);
  CHECK(fallback.err.rfind(std::string(kDefaultConfigPath) + ":", 0) == 0);
}

TEST_CASE("CLI: validate refuses a file without monitors unless allow_empty = true") {
  testing::TempDir dir;
  for (const std::string text : {"", "# truncated\n", "[server]\nlisten = \"127.0.0.1:9464\"\n"}) {
    CAPTURE(text);
    const std::string file = dir.Write("empty.toml", text);
    auto r = Cli({"validate", "--config", file});
    CHECK(r.code == kExitUsage);
    CHECK(r.err == file + ": monitors: no monitors: the file defines no [[monitors]] (empty or truncated?); "
                          "add monitors, or set allow_empty = true at the top if that is meant\n1 error in " +
                              file + "\n");
  }
  const std::string meant = dir.Write("meant.toml", "allow_empty = true\n");
  auto ok = Cli({"validate", "--config", meant});
  CHECK(ok.code == 0);
  CHECK(ok.out.find("config OK: " + meant) != std::string::npos);
  auto typed = Cli({"validate", "--config", dir.Write("typed.toml", "allow_empty = \"yes\"\n")});
  CHECK(typed.code == kExitUsage);
  CHECK(typed.err.find("allow_empty: expected true or false") != std::string::npos);
}

TEST_CASE("CLI: validate prints a summary for a good file and all errors for a bad one") {
  testing::TempDir dir;
  const std::string good = dir.Write("good.toml",
                                     "[[monitors]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\n");
  auto ok = Cli({"validate", "--config=" + good});
  CHECK(ok.code == 0);
  CHECK(ok.out.find("config OK: " + good) != std::string::npos);
  CHECK(ok.out.find("monitors:  1 x regions = 1 probe schedule") != std::string::npos);

  const std::string bad = dir.Write("bad.toml", "[server]\nlisten = 1\n[defaults]\nretries = \"x\"\n");
  auto r = Cli({"validate", "-c", bad});
  CHECK(r.code == kExitUsage);
  CHECK(r.err == bad + ":2:10: server.listen: expected a string, got an integer (1)\n" + bad +
                     ":4:11: defaults.retries: expected an integer, got a string (\"x\")\n"
                     "2 errors in " + bad + "\n");
}

TEST_CASE("CLI: check usage errors exit 2, a failing probe exits 1") {
  auto no_url = Cli({"check"});
  CHECK(no_url.code == kExitUsage);
  CHECK(no_url.err.find("check needs a URL") != std::string::npos);
  auto bad_url = Cli({"check", "ftp://example.com/"});
  CHECK(bad_url.code == kExitUsage);
  CHECK(bad_url.err.find("scheme \"ftp\"") != std::string::npos);
  auto bad_upstream = Cli({"check", "http://127.0.0.1:1/", "--upstream", "nope"});
  CHECK(bad_upstream.code == kExitUsage);
  CHECK(bad_upstream.err.find("upstream-1") != std::string::npos);
  auto bad_timeout = Cli({"check", "http://127.0.0.1:1/", "--timeout", "5"});
  CHECK(bad_timeout.code == kExitUsage);
  CHECK(bad_timeout.err.find("has no unit") != std::string::npos);
  auto region = Cli({"check", "http://127.0.0.1:1/", "--region", "mars"});
  CHECK(region.code == kExitUsage);
  CHECK(region.err.find("unknown region \"mars\"") != std::string::npos);
  auto misplaced = Cli({"validate", "--config", "x.toml", "--json"});
  CHECK(misplaced.code == kExitUsage);
  auto region_twice = Cli({"check", "http://127.0.0.1:1/", "--region", "local", "--region=local"});
  CHECK(region_twice.code == kExitUsage);
  CHECK(region_twice.err.find("--region \"local\" given twice") != std::string::npos);
  auto upstream_twice = Cli({"check", "http://127.0.0.1:1/", "--upstream", "http://127.0.0.1:2/",
                             "--upstream", "http://127.0.0.1:2/"});
  CHECK(upstream_twice.code == kExitUsage);
  CHECK(upstream_twice.err.find("given twice") != std::string::npos);
  auto region_no_value = Cli({"check", "http://127.0.0.1:1/", "--region"});
  CHECK(region_no_value.code == kExitUsage);
  CHECK(region_no_value.err.find("--region needs a value") != std::string::npos);
  auto region_misplaced = Cli({"validate", "--config", "x.toml", "--region", "local"});
  CHECK(region_misplaced.code == kExitUsage);
  for (const Run* r : {&region_twice, &upstream_twice, &region_no_value, &region_misplaced}) {
    CHECK(r->out.empty());
  }

  // Port 1 on loopback: nothing listens, so the probe fails and check exits 1 with a verdict
  // from the failure itself.
  auto refused = Cli({"check", "http://127.0.0.1:1/", "--timeout=2s"});
  CHECK(refused.code == kExitFailed);
  CHECK(refused.out.find("outcome   connect_refused") != std::string::npos);
  CHECK(refused.out.find("\nverdict   not_listening\n") != std::string::npos);
  CHECK(refused.out.find("\nsummary   127.0.0.1:1 refuses connections (connect_refused) in 1/1 "
                         "regions") != std::string::npos);
}

TEST_CASE("CLI: check names targets by their URL without the scheme") {
  CHECK(CheckName("http://127.0.0.1:8081/") == "127.0.0.1:8081");
  CHECK(CheckName("https://api.internal:8443/healthz") == "api.internal:8443/healthz");
  CHECK(CheckName("http://shop.example.com") == "shop.example.com");
  CHECK(CheckName("http://a/b/") == "a/b/");  // only a lone "/" path is dropped
}

TEST_CASE("CLI: check --region takes several regions of the config, in order") {
  testing::TempDir dir;
  const std::string config =
      dir.Write("gw.toml", "[server]\nregion = \"home\"\n[regions.second]\n[regions.third]\n");
  auto r = Cli({"check", "http://127.0.0.1:1/", "--config", config, "--region", "third", "--region",
                "home", "--timeout=2s", "--json"});
  CHECK(r.code == kExitFailed);
  const auto j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE(j.is_object());
  CHECK(j.at("regions") == nlohmann::json{"third", "home"});
  CHECK(j.at("target").value("region", "") == "third");
  CHECK(j.at("other_regions").at(0).value("region", "") == "home");
  CHECK(j.at("evidence").at("failing_regions") == nlohmann::json{"home", "third"});
  auto own = Cli({"check", "http://127.0.0.1:1/", "--config", config, "--timeout=2s"});
  CHECK(own.code == kExitFailed);
  CHECK(own.out.find("(region home)") != std::string::npos);  // the config's own region only
  CHECK(own.out.find("(region second)") == std::string::npos);
}

}  // namespace
}  // namespace gatewatch::daemon
