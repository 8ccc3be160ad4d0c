#pragma once
// The generic TOML reader of the config loader (daemon/config.h): typed getters with
// ranges, durations and sizes, ${ENV} substitution, unknown-key checks, and errors
// collected with the file:line:col of the key they are about. Nothing here knows a
// section of gatewatch's config; the section readers (daemon/config_sections.h) do.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <vector>

#include "daemon/config.h"
#include "probes/text.h"

namespace gatewatch::daemon::internal {

struct Pos {
  int line = 0;
  int column = 0;
};

inline Pos PosOf(const toml::source_region& src) {
  return {static_cast<int>(src.begin.line), static_cast<int>(src.begin.column)};
}
inline Pos PosOf(const toml::node& node) { return PosOf(node.source()); }

inline std::string Quote(std::string_view s) { return Quoted(s); }

inline std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
inline std::string Index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// "an integer (30)", "a string", ...: what the file has where something else was expected.
std::string Describe(const toml::node& n);

// `v` as a default ostream prints it ("0.05", "1e+06").
std::string Ratio(double v);

// Collects errors and remembers where every key path sits in the file, so that rules
// checked after reading (references, Validate() of the module structs) can still
// point at file:line:col.
class Ctx {
 public:
  Ctx(std::string file, const EnvLookup& env) : file_(std::move(file)), env_(env) {}

  const EnvLookup& env() const { return env_; }

  void Add(Pos pos, std::string path, std::string message) {
    errors_.push_back({file_, pos.line, pos.column, std::move(path), std::move(message)});
  }
  // Error at the position of `path` (or its closest ancestor with a position).
  void AddAt(const std::string& path, std::string message) { Add(At(path), path, std::move(message)); }

  void Remember(const std::string& path, Pos pos) { index_.emplace(path, pos); }

  Pos At(std::string path) const;

  // Cross-field rules of a struct (its Validate()) run only when every field of it was
  // read cleanly: on a half-read struct they would report consequences, not causes.
  void AddFieldErrors(const std::string& path, const std::vector<probes::FieldError>& errors);

  bool HasErrorsUnder(const std::string& path) const;

  ConfigErrors TakeErrors();
  bool ok() const { return errors_.empty(); }

 private:
  std::string file_;
  const EnvLookup& env_;
  ConfigErrors errors_;
  std::map<std::string, Pos> index_;
};

// Reads one TOML table: every getter checks the type and range of its key and
// records an error with the key's position; Finish() reports the keys nobody asked
// for as unknown, with a "did you mean" among the keys that were asked for.
class TableReader {
 public:
  TableReader(Ctx& ctx, const toml::table& table, std::string path)
      : ctx_(ctx), table_(table), path_(std::move(path)) {
    ctx_.Remember(path_, PosOf(table_));
    for (const auto& [key, node] : table_) ctx_.Remember(Join(path_, key.str()), PosOf(node));
  }

  const std::string& path() const { return path_; }
  std::string Path(std::string_view key) const { return Join(path_, key); }
  Pos pos() const { return PosOf(table_); }
  const toml::table& table() const { return table_; }

  const toml::node* Get(std::string_view key) {
    known_.emplace_back(key);
    return table_.get(key);
  }
  bool Has(std::string_view key) const { return table_.contains(key); }

  void Error(std::string_view key, std::string message) {
    ctx_.AddAt(Path(key), std::move(message));
  }
  void Missing(std::string_view key, std::string_view what) {
    ctx_.Add(pos(), Path(key), "required key is missing; expected " + std::string(what));
  }
  void WrongType(std::string_view key, const toml::node& n, std::string_view expected) {
    ctx_.Add(PosOf(n), Path(key), "expected " + std::string(expected) + ", got " + Describe(n));
  }

  // A string with ${ENV} substituted. `secret` keeps the value out of error messages.
  std::optional<std::string> String(std::string_view key, bool secret = false);
  std::optional<std::string> StringValue(const toml::node& n, const std::string& path,
                                         bool secret = false);

  std::optional<int64_t> Int(std::string_view key, int64_t lo, int64_t hi);
  std::optional<double> Number(std::string_view key, double lo, double hi);
  std::optional<bool> Bool(std::string_view key);
  std::optional<Duration> Dur(std::string_view key, Duration lo, Duration hi);
  std::optional<int64_t> Size(std::string_view key, int64_t lo, int64_t hi);

  const toml::array* Array(std::string_view key, std::string_view expected);
  std::optional<std::vector<std::string>> StringArray(std::string_view key);
  const toml::table* Table(std::string_view key);
  // [[key]] sections: an array whose elements are tables.
  std::vector<const toml::table*> Tables(std::string_view key);

  // Reports every key that no getter asked for.
  void Finish();

 private:
  Ctx& ctx_;
  const toml::table& table_;
  std::string path_;
  std::vector<std::string> known_;
};

}  // namespace gatewatch::daemon::internal
