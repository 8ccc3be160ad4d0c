#pragma once
// The section readers of the config loader (docs/configuration.md): each reads one table
// of the file into its module's config struct through a TableReader (daemon/toml_reader.h)
// and reports what is wrong with it.
//
// daemon/config_sections.cc: names, [server], [storage], probe settings ([defaults] and
// [[monitors]]), [regions.NAME]. daemon/config_alert_sections.cc: [[alerts]], [[notifiers]],
// [[silences]].

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/config.h"
#include "daemon/toml_reader.h"

namespace gatewatch::daemon::internal {

bool ValidName(std::string_view name);
inline constexpr std::string_view kNameRule =
    "1 to 128 letters, digits, '-', '_' or '.', starting with a letter or digit";

// Reads and checks a "name" key (required).
std::optional<std::string> ReadName(TableReader& r);

std::string Lower(std::string s);

// Keys shared by [defaults] and [[monitors]]; `s` holds the inherited values.
void ReadProbeSettings(TableReader& r, Ctx& ctx, probes::ProbeSettings& s);

void ReadServer(TableReader& r, ServerConfig& s);
void ReadStorage(TableReader& r, Ctx& ctx, storage::StorageConfig& s);
void ReadRegion(TableReader& r, probes::RegionConfig& region);
void ReadMonitor(TableReader& r, Ctx& ctx, const probes::ProbeSettings& defaults,
                 probes::MonitorConfig& m);

void ReadAlert(TableReader& r, alerting::AlertRule& a);
// Returns false when type or url were already reported, so Validate() would only repeat them.
bool ReadNotifier(TableReader& r, alerting::NotifierConfig& n);
void ReadSilence(TableReader& r, Ctx& ctx, size_t index, alerting::SilenceConfig& s);

}  // namespace gatewatch::daemon::internal
