#pragma once
// A Message as JSON, for the outbox (storage/alert_store.h: OutboxMessage::message). The pipeline
// stores MessageToJson(m) when it enqueues an event; the delivery thread reads it back with
// MessageFromJson() and renders it with the notifier configured at delivery time, so a
// stored message never depends on any platform's payload format.
//
// Format (version 1), one object:
//   {"v": 1, "kind": "firing"|"resolved"|"reminder"|"test", "alert", "monitor", "severity",
//    "summary", "description": [string], "verdict", "ratio": number, "samples": integer,
//    "regions": [string], "emitters": {string: integer}, "at_ms", "started_ms": integer,
//    "ended_ms": integer (present only when ended is set), "value": string (present only when
//    not empty), "fingerprint"}
// Times are unix milliseconds (integers, exact; sub-millisecond parts are dropped, the
// precision of the whole outbox). A ratio that is not finite is written as the string
// "NaN", "Infinity" or "-Infinity" (JSON has no such numbers). Strings are UTF-8; an invalid
// byte sequence is written as U+FFFD, the only lossy case.
//
// Reading is strict about the fields it knows (each must be present with its type; the
// error names the field) and ignores unknown keys, so a newer writer that adds a field stays
// readable. A different "v" is an error.
//
// Thread-safety: pure functions.

#include <string>
#include <string_view>

#include "alerting/notifier.h"
#include "probes/result.h"

namespace gatewatch::alerting {

inline constexpr int kMessageJsonVersion = 1;

// Never fails; compact JSON.
std::string MessageToJson(const Message& m);

// "message json: <what>": invalid JSON, not an object, a missing field or a wrong type.
Result<Message> MessageFromJson(std::string_view json);

}  // namespace gatewatch::alerting
