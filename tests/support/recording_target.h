#pragma once
// A probed site for daemon tests: GET /m/<name>[/slow] answers 200 "ok" (after `slow`
// for /slow paths) and remembers when each request arrived. Header-only: link
// PkgConfig::HTTPLIB where it is used.

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "probes/clock.h"
#include "tests/support/httplib_listen.h"

namespace gatewatch::testing {

class RecordingTarget {
 public:
  explicit RecordingTarget(std::chrono::milliseconds slow = std::chrono::milliseconds(1500)) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(8); };
    server_.Get(R"(/m/([^/]+)(/slow)?)", [this, slow](const httplib::Request& req, httplib::Response& res) {
      const std::string name = req.matches[1];
      {
        std::lock_guard lock(mu_);
        requests_.emplace_back(name, std::chrono::system_clock::now());
      }
      if (req.matches[2].length() > 0) {  // the slow upstream itself; woken on destruction
        std::unique_lock lock(mu_);
        stop_cv_.wait_for(lock, slow, [this] { return stopping_; });
      }
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = ListenInBackground(server_);
  }
  ~RecordingTarget() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    server_.stop();
    thread_.join();
  }
  RecordingTarget(const RecordingTarget&) = delete;
  RecordingTarget& operator=(const RecordingTarget&) = delete;

  int port() const { return port_; }
  std::string Url(const std::string& name, bool slow = false) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/m/" + name + (slow ? "/slow" : "");
  }
  std::vector<std::pair<std::string, SystemTime>> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<SystemTime> RequestsOf(const std::string& name) {
    std::vector<SystemTime> out;
    for (const auto& [n, t] : Requests()) {
      if (n == name) out.push_back(t);
    }
    return out;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;  // guards requests_ and stopping_
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::vector<std::pair<std::string, SystemTime>> requests_;
};

}  // namespace gatewatch::testing
