#include "fleet/dns_server.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace gatewatch::fleet {
namespace {

constexpr size_t kMaxUdp = 512;
constexpr uint8_t kRcodeFormErr = 1;
constexpr uint8_t kRcodeServFail = 2;
constexpr uint8_t kRcodeNxDomain = 3;
constexpr uint8_t kRcodeNotImp = 4;

std::string Normalize(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void Put16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

void Put32(std::string& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v & 0xffff));
}

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// Splits literals into concatenated 4-byte and 16-byte address lists.
void ParseAddresses(const std::vector<std::string>& addrs, std::vector<uint8_t>* v4,
                    std::vector<uint8_t>* v6) {
  for (const std::string& a : addrs) {
    uint8_t bytes[16];
    if (::inet_pton(AF_INET, a.c_str(), bytes) == 1) {
      v4->insert(v4->end(), bytes, bytes + 4);
    } else if (::inet_pton(AF_INET6, a.c_str(), bytes) == 1) {
      v6->insert(v6->end(), bytes, bytes + 16);
    } else {
      errno = EINVAL;
      Die("DnsServer: not an IP literal: " + a);
    }
  }
}

}  // namespace

DnsServer::DnsServer()
    : socket_(BindLoopback(IpFamily::kV4, SOCK_DGRAM, /*backlog=*/-1, /*non_blocking=*/true)),
      port_(LocalPort(socket_.get())),
      thread_([this] { Run(); }) {}

DnsServer::~DnsServer() {
  waker_.Notify();
  thread_.join();
}

std::string DnsServer::Address() const { return "127.0.0.1:" + std::to_string(port_); }

void DnsServer::Set(std::string_view name, Entry entry) {
  std::lock_guard lock(mu_);
  entries_[Normalize(name)] = std::move(entry);
}

void DnsServer::SetAnswer(std::string_view name, std::vector<std::string> addrs) {
  SetRotating(name, {std::move(addrs)});
}

void DnsServer::SetRotating(std::string_view name, std::vector<std::vector<std::string>> sets) {
  Entry e;
  if (sets.empty()) sets.emplace_back();
  for (const auto& set : sets) {
    e.v4_sets.emplace_back();
    e.v6_sets.emplace_back();
    ParseAddresses(set, &e.v4_sets.back(), &e.v6_sets.back());
  }
  Set(name, std::move(e));
}

void DnsServer::SetNxdomain(std::string_view name) {
  Entry e;
  e.kind = Entry::Kind::kNxdomain;
  Set(name, std::move(e));
}

void DnsServer::SetServfail(std::string_view name) {
  Entry e;
  e.kind = Entry::Kind::kServfail;
  Set(name, std::move(e));
}

void DnsServer::SetSilent(std::string_view name) {
  Entry e;
  e.kind = Entry::Kind::kSilent;
  Set(name, std::move(e));
}

void DnsServer::Remove(std::string_view name) {
  std::lock_guard lock(mu_);
  entries_.erase(Normalize(name));
}

int DnsServer::QueryCount(std::string_view name) const {
  const std::string key = Normalize(name);
  std::lock_guard lock(mu_);
  int n = 0;
  for (auto it = counts_.lower_bound({key, 0}); it != counts_.end() && it->first.first == key;
       ++it) {
    n += it->second;
  }
  return n;
}

int DnsServer::QueryCount(std::string_view name, QueryType type) const {
  std::lock_guard lock(mu_);
  const auto it = counts_.find({Normalize(name), static_cast<uint16_t>(type)});
  return it == counts_.end() ? 0 : it->second;
}

std::string DnsServer::Answer(const uint8_t* q, size_t len) {
  if (len < 12 || (q[2] & 0x80) != 0) return "";  // too short, or a response
  const uint8_t opcode = (q[2] >> 3) & 0x0f;
  const auto header = [&](uint8_t rcode, uint16_t qdcount, uint16_t ancount) {
    std::string out;
    out += static_cast<char>(q[0]);
    out += static_cast<char>(q[1]);
    out += static_cast<char>(0x80 | (opcode << 3) | 0x04 | (q[2] & 0x01));  // QR AA RD
    out += static_cast<char>(0x80 | rcode);                                 // RA
    Put16(out, qdcount);
    Put16(out, ancount);
    Put16(out, 0);
    Put16(out, 0);
    return out;
  };
  if (opcode != 0) return header(kRcodeNotImp, 0, 0);
  if (Get16(q + 4) != 1) return header(kRcodeFormErr, 0, 0);

  // QNAME: uncompressed labels.
  size_t pos = 12;
  std::string name;
  while (true) {
    if (pos >= len) return header(kRcodeFormErr, 0, 0);
    const uint8_t label = q[pos++];
    if (label == 0) break;
    if ((label & 0xc0) != 0 || pos + label > len || name.size() + label > 253) {
      return header(kRcodeFormErr, 0, 0);
    }
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char*>(q + pos), label);
    pos += label;
  }
  if (pos + 4 > len) return header(kRcodeFormErr, 0, 0);
  const uint16_t qtype = Get16(q + pos);
  pos += 4;
  name = Normalize(name);
  const std::string_view question(reinterpret_cast<const char*>(q + 12), pos - 12);

  ++total_;
  std::vector<uint8_t> rdata;  // concatenated addresses of qtype's size
  size_t rdlen = 0;
  uint8_t rcode = 0;
  {
    std::lock_guard lock(mu_);
    ++counts_[{name, qtype}];
    const auto it = entries_.find(name);
    if (it == entries_.end()) {
      rcode = kRcodeNxDomain;
    } else {
      Entry& e = it->second;
      switch (e.kind) {
        case Entry::Kind::kSilent:
          return "";
        case Entry::Kind::kNxdomain:
          rcode = kRcodeNxDomain;
          break;
        case Entry::Kind::kServfail:
          rcode = kRcodeServFail;
          break;
        case Entry::Kind::kAnswer:
          if (qtype == static_cast<uint16_t>(QueryType::kA)) {
            rdata = e.v4_sets[e.current];
            rdlen = 4;
            e.current = (e.current + 1) % e.v4_sets.size();
          } else if (qtype == static_cast<uint16_t>(QueryType::kAaaa)) {
            rdata = e.v6_sets[e.current];
            rdlen = 16;
          }
          break;
      }
    }
  }
  const size_t record_size = 12 + rdlen;  // pointer, type, class, ttl, rdlength, rdata
  const size_t fixed = 12 + question.size();
  size_t count = rdlen == 0 ? 0 : rdata.size() / rdlen;
  if (count > 0) count = std::min(count, (kMaxUdp - fixed) / record_size);  // never TC
  std::string out = header(rcode, 1, static_cast<uint16_t>(count));
  out.append(question);
  for (size_t i = 0; i < count; ++i) {
    Put16(out, 0xc00c);  // the question's name
    Put16(out, qtype);
    Put16(out, 1);  // IN
    Put32(out, ttl_.load());
    Put16(out, static_cast<uint16_t>(rdlen));
    out.append(reinterpret_cast<const char*>(rdata.data() + i * rdlen), rdlen);
  }
  return out;
}

void DnsServer::Run() {
  uint8_t buf[4096];
  while (true) {
    pollfd p[2] = {{waker_.fd(), POLLIN, 0}, {socket_.get(), POLLIN, 0}};
    if (::poll(p, 2, 1000) < 0 && errno != EINTR) Die("poll() in DnsServer");
    if (p[0].revents != 0) return;
    if ((p[1].revents & POLLIN) == 0) continue;
    for (int i = 0; i < 64; ++i) {  // bounded burst per wake-up
      sockaddr_storage from{};
      socklen_t from_len = sizeof(from);
      const ssize_t n = ::recvfrom(socket_.get(), buf, sizeof(buf), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) break;
      const std::string reply = Answer(buf, static_cast<size_t>(n));
      if (reply.empty()) continue;
      ::sendto(socket_.get(), reply.data(), reply.size(), MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&from), from_len);
    }
  }
}

}  // namespace gatewatch::fleet
