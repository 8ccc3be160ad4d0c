#pragma once
// The rules of the config loader that span sections (docs/configuration.md): names unique
// within a section, and every name given elsewhere in the file (a monitor's regions and
// upstreams, an alert's monitors and notifiers, a silence's monitors) defined; an alert's
// min_regions within reach of its monitors.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.h"
#include "daemon/toml_reader.h"

namespace gatewatch::daemon::internal {

// Names must be unique within a section: the later one is the error.
template <typename T>
void CheckUnique(Ctx& ctx, const std::vector<T>& items, const std::string& section,
                 std::string_view what) {
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& name = items[i].name;
    if (name.empty()) continue;
    auto [it, inserted] = seen.emplace(name, i);
    if (!inserted) {
      const std::string first = Index(section, it->second);
      ctx.AddAt(Join(Index(section, i), "name"),
                "duplicate " + std::string(what) + " name " + Quote(name) + " (first defined at line " +
                    std::to_string(ctx.At(first).line) + ")");
    }
  }
}

// Checks the names that refer to other sections and resolves them in `cfg`: a monitor
// without regions gets every region, an alert and a silence the monitors their globs match.
void CheckReferences(Ctx& ctx, Config& cfg);

}  // namespace gatewatch::daemon::internal
