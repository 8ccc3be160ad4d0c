#include "daemon/config_text.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace gatewatch::daemon {

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<std::string> SubstituteEnv(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "$${") == 0) {
      out.append("${");
      i += 2;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out.push_back(text[i]);
      continue;
    }
    const size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Error("unterminated \"${\" (write \"$${\" for a literal \"${\")");
    }
    const std::string name(text.substr(i + 2, close - i - 2));
    const bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                       std::all_of(name.begin(), name.end(), [](unsigned char c) {
                         return std::isalnum(c) || c == '_';
                       });
    if (!valid) {
      return Error("\"${" + name + "}\" is not a valid environment variable reference (letters, "
                   "digits and _ only)");
    }
    auto value = env(name);
    if (!value) return Error("environment variable " + name + " is not set");
    out.append(*value);
    i = close;
  }
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  // Damerau-Levenshtein (optimal string alignment): a swap of two letters is one typo.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_distance = 0;
  // Allow one edit for short words, up to three for long ones.
  const size_t limit = std::clamp<size_t>(word.size() / 3, 1, 3);
  for (const std::string& c : candidates) {
    const size_t dist = EditDistance(word, c);
    if (dist <= limit && (!best || dist < best_distance)) {
      best = c;
      best_distance = dist;
    }
  }
  return best;
}

}  // namespace gatewatch::daemon
