#pragma once
// Waiting on a condition with a deadline: the only way tests synchronise (never sleep
// to synchronise; a poll interval inside WaitFor is not a synchronisation).

#include <chrono>
#include <functional>
#include <thread>

namespace gatewatch::testing {

inline bool WaitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace gatewatch::testing
