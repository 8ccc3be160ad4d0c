#include "daemon/toml_reader.h"

#include <algorithm>
#include <sstream>
#include <tuple>

namespace gatewatch::daemon::internal {

using probes::FieldError;

std::string Describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string (" + Quote(*n.value<std::string>()) + ")";
    case toml::node_type::integer: return "an integer (" + std::to_string(*n.value<int64_t>()) + ")";
    case toml::node_type::floating_point: {
      std::ostringstream os;
      os << *n.value<double>();
      return "a float (" + os.str() + ")";
    }
    case toml::node_type::boolean: return std::string("a boolean (") + (*n.value<bool>() ? "true" : "false") + ")";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string Ratio(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

Pos Ctx::At(std::string path) const {
  while (!path.empty()) {
    if (auto it = index_.find(path); it != index_.end()) return it->second;
    const size_t cut = path.find_last_of(".[");
    path = cut == std::string::npos ? std::string() : path.substr(0, cut);
  }
  return {1, 1};
}

void Ctx::AddFieldErrors(const std::string& path, const std::vector<FieldError>& errors) {
  if (HasErrorsUnder(path)) return;
  for (const FieldError& e : errors) AddAt(e.field.empty() ? path : Join(path, e.field), e.message);
}

bool Ctx::HasErrorsUnder(const std::string& path) const {
  for (const ConfigError& e : errors_) {
    if (e.path.compare(0, path.size(), path) == 0 &&
        (e.path.size() == path.size() || e.path[path.size()] == '.' || e.path[path.size()] == '[')) {
      return true;
    }
  }
  return false;
}

ConfigErrors Ctx::TakeErrors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return std::move(errors_);
}

std::optional<std::string> TableReader::String(std::string_view key, bool secret) {
  const toml::node* n = Get(key);
  if (n == nullptr) return std::nullopt;
  return StringValue(*n, Path(key), secret);
}
std::optional<std::string> TableReader::StringValue(const toml::node& n, const std::string& path,
                                                    bool secret) {
  const auto* s = n.as_string();
  if (s == nullptr) {
    ctx_.Add(PosOf(n), path, "expected a string, got " + (secret ? std::string("another type") : Describe(n)));
    return std::nullopt;
  }
  auto substituted = SubstituteEnv(s->get(), ctx_.env());
  if (!substituted) {
    ctx_.Add(PosOf(n), path, substituted.error());
    return std::nullopt;
  }
  return std::move(substituted).value();
}

std::optional<int64_t> TableReader::Int(std::string_view key, int64_t lo, int64_t hi) {
  const toml::node* n = Get(key);
  if (n == nullptr) return std::nullopt;
  const auto* v = n->as_integer();
  if (v == nullptr) {
    WrongType(key, *n, "an integer");
    return std::nullopt;
  }
  if (v->get() < lo || v->get() > hi) {
    ctx_.Add(PosOf(*n), Path(key),
             "must be from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got " +
                 std::to_string(v->get()));
    return std::nullopt;
  }
  return v->get();
}

std::optional<double> TableReader::Number(std::string_view key, double lo, double hi) {
  const toml::node* n = Get(key);
  if (n == nullptr) return std::nullopt;
  std::optional<double> v;
  if (const auto* f = n->as_floating_point()) v = f->get();
  if (const auto* i = n->as_integer()) v = static_cast<double>(i->get());
  if (!v) {
    WrongType(key, *n, "a number");
    return std::nullopt;
  }
  if (!(*v >= lo && *v <= hi)) {
    ctx_.Add(PosOf(*n), Path(key),
             "must be from " + Ratio(lo) + " to " + Ratio(hi) + ", got " + Ratio(*v));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> TableReader::Bool(std::string_view key) {
  const toml::node* n = Get(key);
  if (n == nullptr) return std::nullopt;
  if (const auto* b = n->as_boolean()) return b->get();
  WrongType(key, *n, "true or false");
  return std::nullopt;
}

std::optional<Duration> TableReader::Dur(std::string_view key, Duration lo, Duration hi) {
  const toml::node* n = Get(key);
  if (n == nullptr) return std::nullopt;
  if (n->is_integer() || n->is_floating_point()) {
    ctx_.Add(PosOf(*n), Path(key),
             "expected a duration string such as \"30s\" (a bare number has no unit), got " +
                 Describe(*n));
    return std::nullopt;
  }
  auto text = StringValue(*n, Path(key));
  if (!text) return std::nullopt;
  auto d = ParseDuration(*text);
  if (!d) {
    ctx_.Add(PosOf(*n), Path(key), d.error());
    return std::nullopt;
  }
  if (*d < lo || *d > hi) {
    ctx_.Add(PosOf(*n), Path(key),
             "must be from " + FormatDuration(lo) + " to " + FormatDuration(hi) + ", got " +
                 Quote(*text));
    return std::nullopt;
  }
  return *d;
}

std::optional<int64_t> TableReader::Size(std::string_view key, int64_t lo, int64_t hi) {
  const toml::node* n = Get(key);
  if (n == nullptr) return std::nullopt;
  if (n->is_integer()) {
    ctx_.Add(PosOf(*n), Path(key),
             "expected a size string such as \"64KiB\" (a bare number has no unit), got " +
                 Describe(*n));
    return std::nullopt;
  }
  auto text = StringValue(*n, Path(key));
  if (!text) return std::nullopt;
  auto size = ParseSize(*text);
  if (!size) {
    ctx_.Add(PosOf(*n), Path(key), size.error());
    return std::nullopt;
  }
  if (*size < lo || *size > hi) {
    ctx_.Add(PosOf(*n), Path(key),
             "must be from " + FormatSize(lo) + " to " + FormatSize(hi) + ", got " + Quote(*text));
    return std::nullopt;
  }
  return *size;
}

const toml::array* TableReader::Array(std::string_view key, std::string_view expected) {
  const toml::node* n = Get(key);
  if (n == nullptr) return nullptr;
  const auto* a = n->as_array();
  if (a == nullptr) {
    WrongType(key, *n, expected);
    return nullptr;
  }
  for (size_t i = 0; i < a->size(); ++i) ctx_.Remember(Index(Path(key), i), PosOf(*a->get(i)));
  return a;
}

std::optional<std::vector<std::string>> TableReader::StringArray(std::string_view key) {
  const toml::array* a = Array(key, "an array of strings");
  if (a == nullptr) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < a->size(); ++i) {
    auto s = StringValue(*a->get(i), Index(Path(key), i));
    if (s) {
      out.push_back(std::move(*s));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

const toml::table* TableReader::Table(std::string_view key) {
  const toml::node* n = Get(key);
  if (n == nullptr) return nullptr;
  const auto* t = n->as_table();
  if (t == nullptr) WrongType(key, *n, "a table");
  return t;
}

std::vector<const toml::table*> TableReader::Tables(std::string_view key) {
  std::vector<const toml::table*> out;
  const toml::array* a = Array(key, "an array of tables ([[" + std::string(key) + "]] sections)");
  if (a == nullptr) return out;
  for (size_t i = 0; i < a->size(); ++i) {
    const auto* t = a->get(i)->as_table();
    if (t == nullptr) {
      ctx_.Add(PosOf(*a->get(i)), Index(Path(key), i),
               "expected a table, got " + Describe(*a->get(i)));
    }
    out.push_back(t);
  }
  return out;
}

void TableReader::Finish() {
  for (const auto& [key, node] : table_) {
    if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
    std::string message = "unknown key";
    if (auto near = Suggest(key.str(), known_)) message += "; did you mean " + Quote(*near) + "?";
    Pos pos = PosOf(key.source());
    if (pos.line == 0) pos = PosOf(node);
    ctx_.Add(pos, Path(key.str()), message);
  }
}

}  // namespace gatewatch::daemon::internal
