#pragma once
// The current config, shared by the main thread (which swaps it on reload) and readers
// on other threads (HTTP handlers): each reader takes its own reference and keeps a
// consistent snapshot for as long as it needs it.

#include <memory>
#include <mutex>

#include "daemon/config.h"

namespace gatewatch::daemon {

class ConfigHolder {
 public:
  explicit ConfigHolder(std::shared_ptr<const Config> config) : config_(std::move(config)) {}
  std::shared_ptr<const Config> Get() const {
    std::lock_guard lock(mu_);
    return config_;
  }
  void Set(std::shared_ptr<const Config> config) {
    std::lock_guard lock(mu_);
    config_ = std::move(config);
  }

 private:
  mutable std::mutex mu_;  // guards config_
  std::shared_ptr<const Config> config_;
};

}  // namespace gatewatch::daemon
