#pragma once
// The fuzz targets: each takes arbitrary bytes and must neither crash, hang nor leak,
// whatever they are. fuzz/entry.cc makes one libFuzzer binary per target (scripts/fuzz.sh);
// tests/fuzz/replay_test.cc runs every committed seed and regression input through them.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gatewatch::fuzz {

using Target = int (*)(const uint8_t* data, size_t size);

int Config(const uint8_t* data, size_t size);       // the config loader (bounds, TOML, validation)
int Ingest(const uint8_t* data, size_t size);       // an ingest batch (JSON, strict result types)
int Response(const uint8_t* data, size_t size);     // a raw HTTP response: classification, fingerprint
int Url(const uint8_t* data, size_t size);          // monitor URLs and HOST:PORT
int HttpRequest(const uint8_t* data, size_t size);  // the listener's request parser

struct NamedTarget {
  std::string_view name;  // the folder under fuzz/corpus and fuzz/regressions
  Target run;
};
inline constexpr NamedTarget kTargets[] = {
    {"config", Config}, {"ingest", Ingest}, {"response", Response}, {"url", Url}, {"http_request", HttpRequest},
};

}  // namespace gatewatch::fuzz
