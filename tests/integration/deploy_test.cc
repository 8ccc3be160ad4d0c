// deploy/: the Prometheus config and rules pass promtool (syntax and the rules' unit
// tests), the Grafana dashboard is importable JSON that queries only the metric names
// of docs/metrics.md, and the configs shipped for the container, compose and Kubernetes
// validate with the real binary.

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace gatewatch {
namespace {

using nlohmann::json;
using testing::ReadFile;
using testing::RunCommand;

const std::string kSource = GATEWATCH_SOURCE_DIR;
const std::string kDeploy = kSource + "/deploy";

// docs/metrics.md: the metric names are a contract. Self metrics: scheduler lag
// histogram, probes in flight, probes skipped (overload), DB write batch latency and
// write errors, build info.
const std::set<std::string> kSpecMetrics = {
    "gatewatch_probe_success",
    "gatewatch_probe_phase_seconds",
    "gatewatch_probe_http_status_code",
    "gatewatch_probe_emitter_total",
    "gatewatch_probes_total",
    "gatewatch_http_responses_total",
    "gatewatch_alert_ratio",
    "gatewatch_tls_cert_expiry_timestamp_seconds",
    "gatewatch_alert_state",
    "gatewatch_alert_silenced",
    "gatewatch_incident_open",
    "gatewatch_notifications_total",
    "gatewatch_outbox_pending",
    "gatewatch_scheduler_lag_seconds",
    "gatewatch_probes_in_flight",
    "gatewatch_probes_skipped_total",
    "gatewatch_db_write_batch_seconds",
    "gatewatch_db_write_errors_total",
    "gatewatch_build_info",
};
const std::set<std::string> kSpecHistograms = {"gatewatch_scheduler_lag_seconds"};

// Prometheus' own series that the rules may use besides gatewatch's.
const std::set<std::string> kPrometheusSeries = {"up", "ALERTS"};

// promtool comes with Debian's `prometheus` package (scripts/test-packages.txt).
std::string Promtool() {
  for (const char* p : {"/usr/bin/promtool", "/usr/local/bin/promtool"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

// Names a PromQL expression refers to: identifiers outside string literals and outside
// {...} label matchers and [...] ranges, minus functions and keywords (anything
// followed by "(" or a known keyword).
std::set<std::string> SeriesNames(const std::string& expr) {
  static const std::set<std::string> kKeywords = {
      "by",  "without", "on",     "ignoring", "group_left", "group_right", "and", "or",
      "unless", "offset", "bool", "inf",      "nan",        "atan2",
      // aggregation operators may be followed by "by (...)" instead of "(".
      "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
      "bottomk", "topk", "quantile"};
  std::set<std::string> names;
  std::string cleaned;
  int braces = 0, brackets = 0;
  char quote = 0;
  for (size_t i = 0; i < expr.size(); ++i) {
    const char c = expr[i];
    if (quote) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      cleaned += ' ';
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      quote = c;
      cleaned += ' ';
    } else if (c == '{') {
      ++braces;
      cleaned += ' ';
    } else if (c == '}') {
      --braces;
      cleaned += ' ';
    } else if (c == '[') {
      ++brackets;
      cleaned += ' ';
    } else if (c == ']') {
      --brackets;
      cleaned += ' ';
    } else {
      cleaned += (braces > 0 || brackets > 0) ? ' ' : c;
    }
  }
  // Grafana variables ($monitor, ${datasource}, $__rate_interval) are not names.
  cleaned = std::regex_replace(cleaned, std::regex(R"(\$\{?[A-Za-z0-9_]+\}?)"), " ");
  static const std::regex kIdent(R"(([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?)");
  for (auto it = std::sregex_iterator(cleaned.begin(), cleaned.end(), kIdent);
       it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    if ((*it)[2].matched) continue;  // a function call
    if (kKeywords.count(name)) continue;
    // Grouping label lists "by (monitor, region)" follow a keyword: skip them.
    const size_t pos = static_cast<size_t>(it->position(0));
    const std::string before = cleaned.substr(0, pos);
    static const std::regex kInGrouping(
        R"((by|without|on|ignoring|group_left|group_right)\s*\([^()]*$)");
    if (std::regex_search(before, kInGrouping)) continue;
    // Numbers with units ("5m", "1h") never start with a letter; durations after
    // offset are handled by the keyword list. Anything left is a series name.
    names.insert(name);
  }
  return names;
}

// A gatewatch metric name as exposed: histograms add _bucket/_sum/_count.
bool IsSpecMetric(const std::string& name) {
  if (kSpecMetrics.count(name)) return true;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.ends_with(s)) {
      const std::string base = name.substr(0, name.size() - s.size());
      if (kSpecHistograms.count(base)) return true;
    }
  }
  return false;
}

// Recording rule names defined in the rules files ("record: name").
std::set<std::string> RecordedNames() {
  std::set<std::string> names;
  static const std::regex kRecord(R"(^\s*-?\s*record:\s*([A-Za-z_:][A-Za-z0-9_:]*))");
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy + "/prometheus/rules")) {
    std::istringstream in(ReadFile(entry.path().string()));
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_search(line, m, kRecord)) names.insert(m[1]);
    }
  }
  return names;
}

// Every expression of a rules file: the value of each `expr:` key, plain or block.
std::vector<std::string> RuleExpressions(const std::string& text) {
  std::vector<std::string> exprs;
  std::istringstream in(text);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  static const std::regex kExpr(R"(^(\s*)expr:\s*(.*)$)");
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(lines[i], m, kExpr)) continue;
    const size_t indent = m[1].length();
    std::string value = m[2];
    if (value == "|" || value == ">" || value == "|-" || value == ">-") {
      value.clear();
      for (size_t j = i + 1; j < lines.size(); ++j) {
        const auto first = lines[j].find_first_not_of(' ');
        if (first != std::string::npos && first <= indent) break;
        value += lines[j] + "\n";
      }
    }
    exprs.push_back(value);
  }
  return exprs;
}

// The text of a YAML block scalar `key: |` (de-indented), for the TOML inside the
// Kubernetes ConfigMap.
std::string BlockScalar(const std::string& yaml, const std::string& key) {
  std::istringstream in(yaml);
  std::string out, line;
  bool inside = false;
  size_t key_indent = 0, block_indent = std::string::npos;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(' ');
    if (!inside) {
      if (first != std::string::npos && line.compare(first, key.size() + 1, key + ":") == 0 &&
          line.find('|', first + key.size()) != std::string::npos) {
        inside = true;
        key_indent = first;
      }
      continue;
    }
    if (first == std::string::npos) {
      out += "\n";
      continue;
    }
    if (first <= key_indent) break;
    if (block_indent == std::string::npos) block_indent = first;
    out += line.substr(std::min(block_indent, first)) + "\n";
  }
  return out;
}

void CollectPanels(const json& panels, std::vector<json>* out) {
  for (const auto& p : panels) {
    out->push_back(p);
    if (p.contains("panels")) CollectPanels(p["panels"], out);
  }
}

TEST_CASE("Deploy: promtool accepts the Prometheus config and the rules") {
  const std::string promtool = Promtool();
  REQUIRE_MESSAGE(!promtool.empty(),
                  "promtool not found: install Debian's `prometheus` package "
                  "(scripts/install-deps.sh --tests)");
  auto config = RunCommand({promtool, "check", "config", kDeploy + "/prometheus/prometheus.yml"});
  INFO(config.out << config.err);
  CHECK(config.exit_code == 0);

  std::vector<std::string> argv = {promtool, "check", "rules"};
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy + "/prometheus/rules")) {
    if (entry.path().extension() == ".yml") argv.push_back(entry.path().string());
  }
  REQUIRE(argv.size() > 3);
  auto rules = RunCommand(argv);
  INFO(rules.out << rules.err);
  CHECK(rules.exit_code == 0);
  CHECK(rules.out.find("SUCCESS") != std::string::npos);
}

TEST_CASE("Deploy: the alert rules' unit tests pass (promtool test rules)") {
  const std::string promtool = Promtool();
  REQUIRE_MESSAGE(!promtool.empty(), "promtool not found (Debian package `prometheus`)");
  auto r = RunCommand(
      {promtool, "test", "rules", kDeploy + "/prometheus/tests/gatewatch.rules.test.yml"},
      std::chrono::seconds(60));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("SUCCESS") != std::string::npos);
}

TEST_CASE("Deploy: the rules query only gatewatch metrics, Prometheus' own series and recorded names") {
  const std::set<std::string> recorded = RecordedNames();
  CHECK(recorded.size() >= 5);
  size_t expressions = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy + "/prometheus/rules")) {
    for (const auto& expr : RuleExpressions(ReadFile(entry.path().string()))) {
      ++expressions;
      for (const auto& name : SeriesNames(expr)) {
        CAPTURE(expr);
        CAPTURE(name);
        CHECK((IsSpecMetric(name) || recorded.count(name) || kPrometheusSeries.count(name)));
      }
    }
  }
  CHECK(expressions >= 20);
}

TEST_CASE("Deploy: SeriesNames finds series, not functions, labels or variables") {
  CHECK(SeriesNames(R"(sum by (monitor, region) (rate(gatewatch_probes_total{outcome="http_502",monitor=~"$monitor"}[$__rate_interval])))") ==
        std::set<std::string>{"gatewatch_probes_total"});
  CHECK(SeriesNames("a:b:c > 0.05 and on (monitor) up == 0") ==
        std::set<std::string>{"a:b:c", "up"});
  CHECK(SeriesNames(R"(histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))))") ==
        std::set<std::string>{"x_bucket"});
  CHECK(IsSpecMetric("gatewatch_scheduler_lag_seconds_bucket"));
  CHECK_FALSE(IsSpecMetric("gatewatch_probes_total_bucket"));
  CHECK_FALSE(IsSpecMetric("gatewatch_probe_duration_seconds"));
}

TEST_CASE("Deploy: the Grafana dashboard is importable and queries only gatewatch metrics") {
  json dash;
  REQUIRE_NOTHROW(dash = json::parse(ReadFile(kDeploy + "/grafana/gatewatch.json")));
  REQUIRE(dash.is_object());
  CHECK(dash.value("title", "") != "");
  CHECK(dash.value("uid", "") != "");
  CHECK(dash["schemaVersion"].is_number_integer());

  // Template variables: a Prometheus datasource picker and a multi-value monitor list.
  std::map<std::string, json> vars;
  for (const auto& v : dash.at("templating").at("list")) vars[v.at("name")] = v;
  REQUIRE(vars.count("datasource"));
  CHECK(vars["datasource"]["type"] == "datasource");
  CHECK(vars["datasource"]["query"] == "prometheus");
  REQUIRE(vars.count("monitor"));
  CHECK(vars["monitor"]["type"] == "query");
  const std::string monitor_query = vars["monitor"]["query"].is_object()
                                        ? vars["monitor"]["query"].value("query", "")
                                        : vars["monitor"]["query"].get<std::string>();
  std::smatch m;
  REQUIRE(std::regex_search(monitor_query, m,
                            std::regex(R"(^label_values\(([A-Za-z_:][A-Za-z0-9_:]*)\s*[,{])")));
  CHECK(IsSpecMetric(m[1]));
  // Every other variable query names gatewatch metrics too.
  for (const auto& [name, v] : vars) {
    if (v.value("type", "") != "query") continue;
    const std::string q = v["query"].is_object() ? v["query"].value("query", "")
                                                  : v["query"].get<std::string>();
    CAPTURE(q);
    REQUIRE(std::regex_search(q, m,
                              std::regex(R"(^label_values\(([A-Za-z_:][A-Za-z0-9_:]*)\s*[,{])")));
    CHECK(IsSpecMetric(m[1]));
  }

  std::vector<json> panels;
  CollectPanels(dash.at("panels"), &panels);
  REQUIRE(panels.size() >= 8);
  std::set<int> ids;
  std::set<std::string> used;
  size_t queries = 0;
  for (const auto& p : panels) {
    CAPTURE(p.value("title", "?"));
    REQUIRE(p.contains("id"));
    CHECK(ids.insert(p["id"].get<int>()).second);  // unique panel ids
    CHECK(p.contains("gridPos"));
    if (p.value("type", "") == "row") continue;
    REQUIRE(p.contains("targets"));
    CHECK(p["datasource"]["uid"] == "${datasource}");
    for (const auto& t : p["targets"]) {
      const std::string expr = t.at("expr");
      CAPTURE(expr);
      ++queries;
      const auto names = SeriesNames(expr);
      CHECK_FALSE(names.empty());
      for (const auto& name : names) {
        CAPTURE(name);
        CHECK(IsSpecMetric(name));
        used.insert(name);
      }
    }
  }
  CHECK(queries >= 8);
  // The panels the dashboard promises (docs/deploy.md).
  for (const char* metric :
       {"gatewatch_probe_success", "gatewatch_probe_phase_seconds", "gatewatch_probes_total",
        "gatewatch_probe_emitter_total", "gatewatch_alert_state", "gatewatch_notifications_total",
        "gatewatch_scheduler_lag_seconds_bucket", "gatewatch_probes_skipped_total"}) {
    CAPTURE(metric);
    CHECK(used.count(metric));
  }
}

TEST_CASE("Deploy: the container, compose and Kubernetes configs validate") {
  const std::vector<std::string> env = {
      "GATEWATCH_API_TOKEN=0123456789abcdef0123",
      "GATEWATCH_WEBHOOK_URL=https://hooks.example.com/services/T000/B000/xyz",
      "GATEWATCH_SHARD=2/3",
  };
  testing::TempDir dir;
  const std::string k8s_toml =
      dir.Write("k8s.toml", BlockScalar(ReadFile(kDeploy + "/kubernetes/configmap.yaml"),
                                        "gatewatch.toml"));
  CHECK(ReadFile(k8s_toml).find("[server]") != std::string::npos);
  for (const std::string& file : {kDeploy + "/gatewatch.container.toml",
                                  kDeploy + "/compose/gatewatch.toml", k8s_toml}) {
    CAPTURE(file);
    auto r = RunCommand({GATEWATCH_BINARY, "validate", "--config", file},
                        std::chrono::seconds(30), env);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("0123456789abcdef0123") == std::string::npos);  // no secret echoed
  }
}

TEST_CASE("Deploy: image, systemd unit and manifests agree on paths, port and probes") {
  const std::string dockerfile = ReadFile(kDeploy + "/Dockerfile");
  for (const char* s : {"FROM ${BASE_IMAGE} AS build", "USER gatewatch", "EXPOSE 9464",
                        "VOLUME [\"/var/lib/gatewatch\"]", "STOPSIGNAL SIGTERM",
                        "ENTRYPOINT [\"gatewatch\"]",
                        "CMD [\"gatewatch\", \"check\", \"http://127.0.0.1:9464/healthz\"",
                        "CMD [\"run\", \"--config\", \"/etc/gatewatch/gatewatch.toml\"]",
                        "COPY deploy/gatewatch.container.toml /etc/gatewatch/gatewatch.toml"}) {
    CAPTURE(s);
    CHECK(dockerfile.find(s) != std::string::npos);
  }
  const std::string unit = ReadFile(kDeploy + "/gatewatch.service");
  CHECK(unit.find("ExecStart=/usr/local/bin/gatewatch run --config /etc/gatewatch/gatewatch.toml") !=
        std::string::npos);
  CHECK(unit.find("ExecReload=/bin/kill -HUP $MAINPID") != std::string::npos);
  CHECK(unit.find("StateDirectory=gatewatch") != std::string::npos);

  const std::string sts = ReadFile(kDeploy + "/kubernetes/statefulset.yaml");
  for (const char* s : {"path: /readyz", "path: /healthz", "containerPort: 9464",
                        "mountPath: /var/lib/gatewatch", "runAsNonRoot: true",
                        "volumeClaimTemplates:"}) {
    CAPTURE(s);
    CHECK(sts.find(s) != std::string::npos);
  }
  const std::string compose = ReadFile(kDeploy + "/compose.yaml");
  CHECK(compose.find("./prometheus/prometheus.yml") != std::string::npos);
  CHECK(compose.find("./compose/gatewatch.toml") != std::string::npos);
}

TEST_CASE("Deploy: amtool accepts the Alertmanager example (when installed)") {
  const char* amtool = "/usr/bin/amtool";
  if (access(amtool, X_OK) != 0) {
    MESSAGE("skipped: amtool not installed (Debian package prometheus-alertmanager)");
    return;
  }
  auto r = RunCommand({amtool, "check-config", kDeploy + "/alertmanager/alertmanager.yml"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
}

}  // namespace
}  // namespace gatewatch
