// bare_loop: the floor gatewatch is compared with (bench/README.md).
//
// One thread, one libcurl multi handle, a fixed request rate with bounded concurrency,
// loopback only. Two uses:
//   * the bare probe loop: a fresh easy handle and a fresh connection per request, one
//     shared CA store (CURLOPT_CAINFO file + CURLOPT_CAPATH NULL, cached by libcurl
//     7.88), plain IP URLs so no resolver thread is ever started;
//   * with --reuse, the load driver of blackbox_exporter: GET /probe?target=... over
//     kept-alive connections, counting bodies that contain --expect-body.
//
// Every run is bounded: it stops scheduling after --duration seconds and waits at most
// --timeout-ms more for what is in flight. It prints one line of key=value figures,
// including its own CPU time (getrusage, whole process).
//
//   bare_loop --url 'http://127.0.0.1:28081/t/{n}' --count 1000 --rate 200 --duration 30
//             [--max-in-flight 256] [--cainfo FILE] [--insecure] [--reuse]
//             [--expect-body TEXT] [--timeout-ms 5000]
// {n} in the URL is replaced by 0 .. count-1 in turn.

#include <curl/curl.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string url;
  long count = 1000;
  double rate = 100;
  double duration_s = 10;
  long max_in_flight = 256;
  std::string cainfo;
  bool insecure = false;
  bool reuse = false;
  std::string expect_body;
  long timeout_ms = 5000;
};

struct Request {
  CURL* easy = nullptr;
  std::string body;
  Clock::time_point started{};
};

struct Totals {
  long started = 0;
  long done = 0;
  long ok = 0;
  long failed = 0;
  long late_skipped = 0;  // not started within 1 s of its due time
  std::vector<double> latency_ms;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr, "bare_loop: %s\n", why);
  std::fprintf(stderr,
               "usage: bare_loop --url URL-with-{n} [--count N] [--rate R] [--duration S]\n"
               "       [--max-in-flight C] [--cainfo FILE] [--insecure] [--reuse]\n"
               "       [--expect-body TEXT] [--timeout-ms MS]\n");
  std::exit(2);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value of " + a).c_str());
      return argv[++i];
    };
    if (a == "--url")
      o.url = value();
    else if (a == "--count")
      o.count = std::stol(value());
    else if (a == "--rate")
      o.rate = std::stod(value());
    else if (a == "--duration")
      o.duration_s = std::stod(value());
    else if (a == "--max-in-flight")
      o.max_in_flight = std::stol(value());
    else if (a == "--cainfo")
      o.cainfo = value();
    else if (a == "--insecure")
      o.insecure = true;
    else if (a == "--reuse")
      o.reuse = true;
    else if (a == "--expect-body")
      o.expect_body = value();
    else if (a == "--timeout-ms")
      o.timeout_ms = std::stol(value());
    else
      Usage(("unknown option " + a).c_str());
  }
  if (o.url.empty()) Usage("--url is required");
  // Loopback only: the bench never sends anything elsewhere.
  if (o.url.rfind("http://127.0.0.1:", 0) != 0 && o.url.rfind("https://127.0.0.1:", 0) != 0) {
    Usage("--url must be http(s)://127.0.0.1:PORT/...");
  }
  if (o.count < 1 || o.rate <= 0 || o.rate > 100000 || o.duration_s <= 0 || o.duration_s > 3600 ||
      o.max_in_flight < 1 || o.max_in_flight > 10000 || o.timeout_ms < 1 || o.timeout_ms > 60000) {
    Usage("a value is out of range");
  }
  return o;
}

size_t Write(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Request*>(user);
  const size_t len = size * n;
  if (r->body.size() < 65536) r->body.append(data, std::min(len, 65536 - r->body.size()));
  return len;
}

std::string UrlFor(const std::string& tmpl, long n) {
  std::string out = tmpl;
  const std::string num = std::to_string(n);
  for (size_t pos = out.find("{n}"); pos != std::string::npos;
       pos = out.find("{n}", pos + num.size())) {
    out.replace(pos, 3, num);
  }
  return out;
}

struct Cpu {
  double user = 0, sys = 0;
};

Cpu CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return {sec(ru.ru_utime), sec(ru.ru_stime)};
}

void Start(CURLM* multi, const Options& o, long n, Totals& t) {
  auto* r = new Request;
  r->started = Clock::now();
  CURL* e = curl_easy_init();
  r->easy = e;
  const std::string url = UrlFor(o.url, n);
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, Write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o.timeout_ms);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!o.reuse) {
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  }
  if (!o.cainfo.empty()) {
    // One CA store for every request: a CA *file* is cached by libcurl 7.88, a path is not.
    curl_easy_setopt(e, CURLOPT_CAINFO, o.cainfo.c_str());
    curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
    curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 24L * 3600);
  }
  if (o.insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_multi_add_handle(multi, e);
  ++t.started;
}

void Reap(CURLM* multi, const Options& o, Totals& t, long* in_flight) {
  int pending = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &pending)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Request* r = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &r);
    long status = 0;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    bool ok = msg->data.result == CURLE_OK && status >= 200 && status < 300;
    if (ok && !o.expect_body.empty()) ok = r->body.find(o.expect_body) != std::string::npos;
    ++t.done;
    if (ok)
      ++t.ok;
    else
      ++t.failed;
    t.latency_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - r->started).count());
    curl_multi_remove_handle(multi, msg->easy_handle);
    curl_easy_cleanup(msg->easy_handle);
    delete r;
    --*in_flight;
  }
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, o.reuse ? o.max_in_flight : 0L);

  Totals t;
  t.latency_ms.reserve(static_cast<size_t>(o.rate * o.duration_s) + 16);
  const Cpu cpu0 = CpuSeconds();
  const Clock::time_point t0 = Clock::now();
  const auto period = std::chrono::duration<double>(1.0 / o.rate);
  const auto stop_at =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
  const auto hard_stop = stop_at + std::chrono::milliseconds(o.timeout_ms + 1000);
  long next = 0;  // index of the next request due
  long in_flight = 0;
  for (;;) {
    const auto now = Clock::now();
    if (now >= hard_stop) break;
    // Start what is due, within the concurrency bound; drop what is more than 1 s late.
    while (now < stop_at) {
      const auto due =
          t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(next));
      if (due > now || due >= stop_at) break;
      if (now - due > std::chrono::seconds(1)) {
        ++t.late_skipped;
        ++next;
        continue;
      }
      if (in_flight >= o.max_in_flight) break;
      Start(multi, o, next % o.count, t);
      ++in_flight;
      ++next;
    }
    if (now >= stop_at && in_flight == 0) break;
    int running = 0;
    curl_multi_perform(multi, &running);
    Reap(multi, o, t, &in_flight);
    // Sleep until the next due request or socket activity.
    long wait_ms = 100;
    if (now < stop_at) {
      const auto due =
          t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(next));
      const auto until =
          std::chrono::duration_cast<std::chrono::microseconds>(due - Clock::now()).count();
      wait_ms = std::clamp<long>(static_cast<long>((until + 999) / 1000), 0, 100);
      if (in_flight >= o.max_in_flight) wait_ms = 100;
    }
    long curl_ms = -1;
    curl_multi_timeout(multi, &curl_ms);
    if (curl_ms >= 0) wait_ms = std::min(wait_ms, curl_ms);
    curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait_ms), nullptr);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const Cpu cpu1 = CpuSeconds();
  const double user = cpu1.user - cpu0.user, sys = cpu1.sys - cpu0.sys, cpu = user + sys;
  const long abandoned = in_flight;
  // Requests still in flight at the hard stop are abandoned (counted), never awaited.
  curl_multi_cleanup(multi);
  std::printf(
      "started=%ld done=%ld ok=%ld failed=%ld late_skipped=%ld abandoned=%ld elapsed_s=%.2f "
      "rate=%.1f cpu_s=%.3f user_s=%.3f sys_s=%.3f cpu_per_1000=%.3f lat_p50_ms=%.2f "
      "lat_p99_ms=%.2f\n",
      t.started, t.done, t.ok, t.failed, t.late_skipped, abandoned, elapsed,
      static_cast<double>(t.done) / std::min(elapsed, o.duration_s), cpu, user, sys,
      t.done > 0 ? cpu / static_cast<double>(t.done) * 1000.0 : 0.0, Percentile(t.latency_ms, 0.5),
      Percentile(t.latency_ms, 0.99));
  curl_global_cleanup();
  return 0;
}
