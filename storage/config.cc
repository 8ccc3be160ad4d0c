#include "storage/config.h"

namespace gatewatch::storage {

std::vector<probes::FieldError> StorageConfig::Validate() const {
  std::vector<probes::FieldError> errors;
  if (failure_retention < raw_retention) {
    errors.push_back({"failure_retention",
                      "failure_retention (" + FormatDuration(failure_retention) +
                          ") must be at least raw_retention (" + FormatDuration(raw_retention) +
                          "): failed results are kept longer than the rest, not shorter"});
  }
  if (hour_rollup_retention < minute_rollup_retention) {
    errors.push_back({"hour_rollup_retention",
                      "hour_rollup_retention (" + FormatDuration(hour_rollup_retention) +
                          ") must be at least minute_rollup_retention (" +
                          FormatDuration(minute_rollup_retention) + ")"});
  }
  return errors;
}

}  // namespace gatewatch::storage
