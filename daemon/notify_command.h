#pragma once
// `gatewatch notify-test --config FILE --notifier NAME` (docs/cli.md): sends a sample
// firing and then a sample resolved message through one configured notifier, exactly as
// the delivery thread would render and POST them, and reports each receiver answer (status,
// time, the start of the body; never the notifier's url or secret). A console notifier
// prints the two messages to `out`.

#include <ostream>
#include <string>

namespace gatewatch::daemon {

struct NotifyTestOptions {
  std::string config;    // the TOML config file
  std::string notifier;  // a [[notifiers]] name in it
};

// Exit code: 0 when both messages were accepted (2xx), 1 when the receiver refused one or
// could not be reached, 2 on bad usage, an invalid config or an unknown notifier.
int RunNotifyTest(const NotifyTestOptions& options, std::ostream& out, std::ostream& err);

}  // namespace gatewatch::daemon
