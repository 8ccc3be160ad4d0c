#include <sys/resource.h>

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
  // glibc gives threads that allocate their own arenas (up to 8 per core), and memory freed
  // in one stays there: each HTTP worker that rendered /metrics (several MB at 10,000
  // monitors) would keep its own few MB, and RSS would grow with the scrapes. Two arenas,
  // unless the operator says otherwise (MALLOC_ARENA_MAX); bench/README.md has the figures.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
#endif
  // Every listener connection and every probe is a descriptor: take the whole hard limit
  // (the soft one is often 1024), as Go programs do.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  return gatewatch::daemon::RunCli(args, std::cout, std::cerr);
}
