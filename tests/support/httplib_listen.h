#pragma once
// Starts a bound cpp-httplib server's listen loop on its own thread and returns once the
// loop runs. cpp-httplib 0.11 loses a stop() that comes before listen_after_bind() has
// begun (accept() then blocks for ever and join() hangs), so every test server waits here.

#include <httplib.h>

#include <chrono>
#include <thread>

namespace gatewatch::testing {

inline std::thread ListenInBackground(httplib::Server& server) {
  std::thread thread([&server] { server.listen_after_bind(); });
  for (int i = 0; i < 1000 && !server.is_running(); ++i) {  // bounded: 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return thread;
}

}  // namespace gatewatch::testing
