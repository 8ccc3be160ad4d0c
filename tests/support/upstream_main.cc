// An HTTP upstream in a process of its own, for tests that kill one for real (SIGKILL: the
// kernel closes its sockets, connects are refused, whatever was in flight is reset) and
// start it again on the same port. Answers 200 "ok" to every request (fleet::RawHttpServer).
//
//   gatewatch_test_upstream [PORT]     (no PORT or 0: a port the kernel chooses)
//
// Prints "port N" once it listens, then "requests N" (the total so far) whenever the count
// changed, at most every 20 ms. SIGTERM or SIGINT end it with exit 0. Loopback only.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "fleet/raw_server.h"

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
    return 2;
  }
  const int port = argc == 2 ? std::atoi(argv[1]) : 0;
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "bad port: %s\n", argv[1]);
    return 2;
  }
  // Blocked before the server's thread starts, so only sigtimedwait below takes them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  gatewatch::fleet::RawHttpServer server(gatewatch::fleet::Behavior::Ok(),
                                         gatewatch::fleet::IpFamily::kV4, port);
  std::printf("port %d\n", server.port());
  std::fflush(stdout);
  int reported = 0;
  const timespec tick{0, 20'000'000};
  while (sigtimedwait(&stop, nullptr, &tick) < 0) {
    if (const int n = server.RequestCount(); n != reported) {
      reported = n;
      std::printf("requests %d\n", n);
      std::fflush(stdout);
    }
  }
  return 0;
}
