#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "daemon/cli.h"

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // glibc gives threads that allocate their own arenas (up to 8 per core), and memory freed in
  // one stays there: each of cpp-httplib's 8 workers that rendered /metrics (several MB at
  // 10,000 monitors) kept its own few MB, and RSS grew with the scrapes. Two arenas, unless
  // the operator says otherwise (MALLOC_ARENA_MAX): in a 10,000-monitor outage the RSS peak
  // went from 182 to 129 MB, at no measurable CPU cost (bench/README.md, session 4).
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
#endif
  std::vector<std::string> args(argv + 1, argv + argc);
  return gatewatch::daemon::RunCli(args, std::cout, std::cerr);
}
