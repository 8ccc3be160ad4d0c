#include "fleet/demo_fleet.h"

#include <cstdio>
#include <optional>
#include <utility>

#include "fleet/http_text.h"
#include "fleet/tcp_faults.h"

namespace gatewatch::fleet {
namespace {

using Clock = std::chrono::steady_clock;

Behavior HealthzOk(const std::string& name) {
  return Behavior::Raw(BuildResponse("200 OK",
                                     {{"Content-Type", "application/json"},
                                      {"Content-Length", std::string(kBodyLength)},
                                      {"Connection", "close"}},
                                     "{\"status\":\"ok\",\"upstream\":\"" + name + "\"}\n"));
}

}  // namespace

DemoFleet::DemoFleet(std::chrono::milliseconds phase_length, PhaseCallback on_phase)
    : phase_length_(phase_length), on_phase_(std::move(on_phase)), misroute_port_(RefusedPort()) {
  GatewayOptions options;
  for (int i = 0; i < kUpstreams; ++i) {
    upstreams_[i] = std::make_unique<RawHttpServer>();
    upstreams_[i]->Route("/healthz", HealthzOk(UpstreamName(i)));
    options.upstreams.push_back(upstreams_[i]->port());
  }
  gateway_ = std::make_unique<Gateway>(std::move(options));
  if (phase_length_.count() > 0) {
    due_ = Clock::now() + phase_length_;
    cycler_ = std::thread([this] { Cycle(); });
  }
}

DemoFleet::~DemoFleet() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (cycler_.joinable()) cycler_.join();
}

std::string DemoFleet::GatewayUrl(std::string_view path) const { return gateway_->Url(path); }

std::string DemoFleet::UpstreamUrl(int i, std::string_view path) const {
  return upstreams_[i]->Url(path);
}

std::string DemoFleet::UpstreamName(int i) { return "api-" + std::to_string(i + 1); }

DemoFleet::Phase DemoFleet::phase() const {
  std::lock_guard lock(mu_);
  return phase_;
}

std::string_view DemoFleet::PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kHealthy:
      return "healthy";
    case Phase::kOneUpstreamDown:
      return "one upstream down";
    case Phase::kBothUpstreamsDown:
      return "both upstreams down";
    case Phase::kGatewayMisrouted:
      return "gateway misrouted";
  }
  return "unknown";
}

std::string_view DemoFleet::PhaseDescription(Phase phase) {
  switch (phase) {
    case Phase::kHealthy:
      return "gateway, api-1 and api-2 answer 200";
    case Phase::kOneUpstreamDown:
      return "api-1 refuses connections; the gateway retries api-2 and still answers 200 "
             "(expect partial_upstream_failure)";
    case Phase::kBothUpstreamsDown:
      return "api-1 and api-2 refuse connections; the gateway answers nginx 502 "
             "(expect upstream_down)";
    case Phase::kGatewayMisrouted:
      return "api-1 and api-2 answer 200, but the gateway proxies to a dead port and answers "
             "nginx 502 (expect gateway_fault)";
  }
  return "unknown";
}

DemoFleet::Phase DemoFleet::NextPhase(Phase phase) {
  switch (phase) {
    case Phase::kHealthy:
      return Phase::kOneUpstreamDown;
    case Phase::kOneUpstreamDown:
      return Phase::kBothUpstreamsDown;
    case Phase::kBothUpstreamsDown:
      return Phase::kGatewayMisrouted;
    case Phase::kGatewayMisrouted:
      return Phase::kHealthy;
  }
  return Phase::kHealthy;
}

void DemoFleet::SetPhase(Phase phase) {
  std::lock_guard change(change_mu_);
  Apply(phase);
}

void DemoFleet::Apply(Phase phase) {
  const bool refuse[kUpstreams] = {
      phase == Phase::kOneUpstreamDown || phase == Phase::kBothUpstreamsDown,
      phase == Phase::kBothUpstreamsDown};
  const bool misrouted = phase == Phase::kGatewayMisrouted;
  // Misroute before the upstreams come back and clear it after they changed, so the
  // gateway never answers 200 between "both down" and "misrouted".
  if (misrouted) gateway_->SetMisroute(misroute_port_);
  for (int i = 0; i < kUpstreams; ++i) {
    if (!upstreams_[i]->SetRefusing(refuse[i])) {
      std::fprintf(stderr, "gatewatch fleet: %s could not %s port %d yet (retrying)\n",
                   UpstreamName(i).c_str(), refuse[i] ? "close" : "listen on",
                   upstreams_[i]->port());
    }
  }
  if (!misrouted) gateway_->SetMisroute(std::nullopt);

  bool changed = false;
  {
    std::lock_guard lock(mu_);
    changed = phase_ != phase;
    phase_ = phase;
    due_ = Clock::now() + phase_length_;
  }
  cv_.notify_all();
  if (changed && on_phase_) on_phase_(phase);
}

void DemoFleet::Cycle() {
  for (;;) {  // until the destructor sets stop_; each pass waits for the phase to be due
    {
      std::unique_lock lock(mu_);
      while (!stop_ && Clock::now() < due_) cv_.wait_until(lock, due_);
      if (stop_) return;
    }
    std::lock_guard change(change_mu_);
    Phase next = Phase::kHealthy;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      if (Clock::now() < due_) continue;  // SetPhase restarted the clock meanwhile
      next = NextPhase(phase_);
    }
    Apply(next);
  }
}

}  // namespace gatewatch::fleet
