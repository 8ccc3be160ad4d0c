#pragma once
// Storage configuration (docs/configuration.md[storage]).

#include <string>
#include <vector>

#include "probes/config.h"
#include "probes/duration.h"

namespace gatewatch::storage {

using namespace std::chrono_literals;

struct StorageConfig {
  std::string path = "/var/lib/gatewatch/gatewatch.db";
  Duration raw_retention = 24h;                     // every probe result
  Duration failure_retention = 24h * 30;            // failed results (incident evidence)
  Duration minute_rollup_retention = 24h * 14;      // per-minute aggregates
  Duration hour_rollup_retention = 24h * 400;       // per-hour aggregates

  std::vector<probes::FieldError> Validate() const;
};

}  // namespace gatewatch::storage
