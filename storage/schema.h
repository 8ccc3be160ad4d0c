#pragma once
// Internal to storage/: included only by storage/*.cc. The column layout of the rollup tables,
// which the schema migrations create (storage/schema.cc, where every table is described) and
// SqliteStore writes and reads.

#include <cstddef>
#include <string>
#include <vector>

#include "storage/store.h"

namespace gatewatch::storage::internal {

// Rollup counter columns, in one fixed order shared by the migration, the upsert and the
// reader.
inline constexpr size_t kColAttempts = 0;
inline constexpr size_t kColConfirmed = 1;
inline constexpr size_t kColOutcome0 = 2;
inline constexpr size_t kColStatus0 = kColOutcome0 + kOutcomeCount;
inline constexpr size_t kColTotal0 = kColStatus0 + kStatusClassNames.size();
inline constexpr size_t kColTotalCount = kColTotal0 + kLatencyBuckets;
inline constexpr size_t kColTotalSum = kColTotalCount + 1;
inline constexpr size_t kColProc0 = kColTotalSum + 1;
inline constexpr size_t kColProcCount = kColProc0 + kLatencyBuckets;
inline constexpr size_t kColProcSum = kColProcCount + 1;
inline constexpr size_t kRollupCounters = kColProcSum + 1;

// The counter columns' names, in the order above.
std::vector<std::string> RollupCounterColumns();

const char* RollupTable(RollupWidth w);

}  // namespace gatewatch::storage::internal
