#pragma once
// DnsServer: a tiny authoritative-style UDP DNS server on 127.0.0.1:PORT for resolver
// tests (c-ares `servers` = Address()). Hand-written wire format: one question per
// query; answers A and AAAA (other types get NOERROR with no answers), TTL ttl()
// (default 0), never sets TC (answers are capped to fit 512 bytes). Per-name behaviour:
// a fixed address list, a rotating sequence of lists, NXDOMAIN, SERVFAIL, or silence
// (the query is counted and never answered -> resolver timeout). Unknown names get
// NXDOMAIN. Names are case-insensitive, with or without the trailing dot.
//
// Threads: one server thread (poll loop). Setters and counters are thread-safe and take
// effect for the next query. Listening when the constructor returns; the destructor
// stops and joins.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fleet/socket_util.h"

namespace gatewatch::fleet {

class DnsServer {
 public:
  enum class QueryType : uint16_t { kA = 1, kAaaa = 28 };

  DnsServer();
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  int port() const { return port_; }
  std::string Address() const;  // "127.0.0.1:PORT"

  // `addrs` are IPv4 and/or IPv6 literals; A queries get the IPv4 ones, AAAA the IPv6
  // ones. REQUIRES: every entry parses as an IP literal (else the process aborts).
  void SetAnswer(std::string_view name, std::vector<std::string> addrs);
  // One address set per resolution: the set advances after every A query for the name
  // (AAAA queries use the current set), wrapping around.
  void SetRotating(std::string_view name, std::vector<std::vector<std::string>> sets);
  void SetNxdomain(std::string_view name);
  void SetServfail(std::string_view name);
  void SetSilent(std::string_view name);
  void Remove(std::string_view name);  // back to NXDOMAIN
  void SetTtl(uint32_t ttl) { ttl_ = ttl; }
  uint32_t ttl() const { return ttl_.load(); }

  int QueryCount(std::string_view name) const;  // every query for the name (A, AAAA, ...)
  int QueryCount(std::string_view name, QueryType type) const;
  int TotalQueries() const { return total_.load(); }

 private:
  struct Entry {
    enum class Kind { kAnswer, kNxdomain, kServfail, kSilent } kind = Kind::kAnswer;
    std::vector<std::vector<uint8_t>> v4_sets;  // per rotation step: 4-byte addresses
    std::vector<std::vector<uint8_t>> v6_sets;  // per rotation step: 16-byte addresses
    size_t current = 0;
  };
  void Set(std::string_view name, Entry entry);
  void Run();
  // Builds the reply for one datagram; empty = do not answer.
  std::string Answer(const uint8_t* query, size_t len);

  UniqueFd socket_;
  int port_ = 0;
  Waker waker_;
  std::atomic<uint32_t> ttl_{0};
  std::atomic<int> total_{0};
  mutable std::mutex mu_;  // guards entries_ and counts_
  std::map<std::string, Entry> entries_;
  std::map<std::pair<std::string, uint16_t>, int> counts_;  // (name, qtype) -> queries
  std::thread thread_;                                      // last
};

}  // namespace gatewatch::fleet
