// Every committed fuzz input runs through its target in the ordinary build: the seeds
// (fuzz/corpus/TARGET) and every input that once crashed a target (fuzz/regressions/TARGET,
// named after what it found). Under scripts/test-sanitize.sh this is ASan+UBSan too.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz/targets.h"

namespace gatewatch::fuzz {
namespace {

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

size_t Replay(const NamedTarget& target, const char* kind) {
  const std::filesystem::path dir = std::filesystem::path(GATEWATCH_SOURCE_DIR) / "fuzz" / kind / target.name;
  if (!std::filesystem::is_directory(dir)) return 0;
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string data = ReadAll(entry.path());
    CAPTURE(entry.path().string());
    CHECK(target.run(reinterpret_cast<const uint8_t*>(data.data()), data.size()) == 0);
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("Fuzz replay: every seed and regression input runs through its target") {
  for (const NamedTarget& target : kTargets) {
    CAPTURE(target.name);
    const size_t seeds = Replay(target, "corpus");
    const size_t regressions = Replay(target, "regressions");
    MESSAGE(target.name << ": " << seeds << " seeds, " << regressions << " regression inputs");
    CHECK(seeds >= 3);
  }
}

}  // namespace gatewatch::fuzz
