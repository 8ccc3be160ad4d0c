// The gatewatch binary's validate on whole files: exit code, stdout and stderr exactly.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "daemon/cli.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::daemon {
namespace {

TEST_CASE("CLI: the shipped ten-mistakes config gives ten precise errors and exit 2") {
  const std::string file = std::string(GATEWATCH_SOURCE_DIR) + "/examples/ten-mistakes.toml";
  auto r = testing::RunCommand({GATEWATCH_BINARY, "validate", "--config", file});
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  const std::vector<std::string> expected = {
      ":5:10: server.listen: \"0.0.0.0\" has no port; expected HOST:PORT",
      ":8:12: defaults.interval: expected a duration string such as \"30s\" (a bare number has "
      "no unit), got an integer (30)",
      ":9:1: defaults.timout: unknown key; did you mean \"timeout\"?",
      ":13:8: monitors[0].url: expected an http:// or https:// URL, got scheme \"ftp\"",
      ":14:14: monitors[0].upstreams[0]: unknown monitor \"shop-api\"",
      ":17:8: monitors[1].name: duplicate monitor name \"shop\" (first defined at line 11)",
      ":19:12: monitors[1].max_body: size \"64KB\" uses a decimal or ambiguous unit; sizes are "
      "binary: B, KiB, MiB, GiB",
      ":26:9: alerts[0].count: codes and count are mutually exclusive: count = \"gateway_error\" "
      "counts every gateway-class failure, codes lists literal status codes",
      ":28:11: alerts[0].notify[0]: unknown notifier \"ops\"",
      ":33:8: notifiers[0].url: environment variable GATEWATCH_TEST_UNSET_WEBHOOK is not set",
  };
  std::string want;
  for (const auto& line : expected) want += file + line + "\n";
  want += "10 errors in " + file + "\n";
  CHECK(r.err == want);
}

TEST_CASE("CLI: validate refuses a key of 40,000 dotted parts with a positioned error, no crash") {
  testing::TempDir dir;
  std::string key = "a";
  for (int i = 1; i < 40'000; ++i) key += ".a";  // 80 KB on one line
  const std::string file = dir.Write("deep.toml", key + " = 1\n");
  auto r = testing::RunCommand({GATEWATCH_BINARY, "validate", "--config", file});
  CHECK(r.exit_code == kExitUsage);
  CHECK(r.out.empty());
  CHECK(r.err == file + ":1:129: a key has more than 64 dotted parts (the limit)\n1 error in " +
                     file + "\n");
}

}  // namespace
}  // namespace gatewatch::daemon
