#pragma once
// A recording chat/webhook receiver for daemon tests: POST <any path> on 127.0.0.1 is
// recorded (path, body, headers, arrival time) and answered with the next scripted answer
// (default 200 "ok"), optionally after a delay. Header-only: link PkgConfig::HTTPLIB.
//
//   WebhookReceiver hook;
//   hook.Script({{500}, {500}, {429, "", "1"}});   // then 200s
//   ... url = hook.Url("/hook") ...
//   WaitFor([&] { return hook.Count() >= 2; }, 30s);

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/httplib_listen.h"

namespace gatewatch::testing {

class WebhookReceiver {
 public:
  struct Answer {
    int status = 200;
    std::string body = "ok";
    std::string retry_after{};                    // Retry-After header when not empty
    std::chrono::milliseconds delay{0};           // before answering (a hanging receiver)
  };
  struct Request {
    std::string path;
    std::string body;
    std::map<std::string, std::string> headers;  // names as sent
    std::chrono::system_clock::time_point at;
    int answered = 0;  // the status it got
  };

  WebhookReceiver() {
    server_.new_task_queue = [] { return new httplib::ThreadPool(4); };
    server_.set_tcp_nodelay(true);  // else Nagle + delayed ACK add ~40 ms per keep-alive answer
    server_.Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      Answer answer;
      {
        std::lock_guard lock(mu_);
        ++arrived_;
        if (!script_.empty()) {
          answer = script_.front();
          script_.pop_front();
        }
      }
      if (answer.delay.count() > 0) {  // cut short when the receiver is destroyed
        std::unique_lock lock(mu_);
        stop_cv_.wait_for(lock, answer.delay, [this] { return stopping_; });
      }
      Request r{req.path, req.body, {}, std::chrono::system_clock::now(), answer.status};
      for (const auto& [k, v] : req.headers) r.headers[k] = v;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(std::move(r));
      }
      res.status = answer.status;
      if (!answer.retry_after.empty()) res.set_header("Retry-After", answer.retry_after);
      res.set_content(answer.body, "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = ListenInBackground(server_);
  }
  ~WebhookReceiver() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    server_.stop();
    thread_.join();
  }
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  int port() const { return port_; }
  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // Answers for the next requests, in order; 200 "ok" after them.
  void Script(std::vector<Answer> answers) {
    std::lock_guard lock(mu_);
    script_.assign(answers.begin(), answers.end());
  }
  std::vector<Request> Requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // Requests answered with a 2xx (delivered).
  std::vector<Request> Delivered() const {
    std::vector<Request> out;
    for (auto& r : Requests()) {
      if (r.answered >= 200 && r.answered < 300) out.push_back(r);
    }
    return out;
  }
  size_t Count() const {
    std::lock_guard lock(mu_);
    return requests_.size();
  }
  // Requests that arrived, answered or not yet (a delayed answer is still pending).
  size_t Arrived() const {
    std::lock_guard lock(mu_);
    return arrived_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;  // guards script_, requests_ and arrived_
  std::deque<Answer> script_;
  std::vector<Request> requests_;
  size_t arrived_ = 0;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

}  // namespace gatewatch::testing
