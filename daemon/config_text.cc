#include "daemon/config_text.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <utility>

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

namespace {

bool IsBareKeyByte(unsigned char c) {
  // Bytes of non-ASCII characters count as key bytes: a parser that accepts Unicode bare keys
  // must not see more parts than this scan counts.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c >= 0x80;
}

// One pass over the text for the structural bounds. Positions are byte offsets; the caller
// turns the first violation into line:column.
class BoundsScan {
 public:
  explicit BoundsScan(std::string_view text) : text_(text) {}

  // The offset and message of the first key or nesting violation.
  std::optional<std::pair<size_t, std::string>> Run() {
    // At a statement (start of a line outside arrays), after "{" and after "," in an inline
    // table, what comes next is a key.
    bool expect_key = true;
    while (i_ < text_.size() && !error_) {
      const char c = text_[i_];
      if (c == ' ' || c == '\t' || c == '\r') {
        ++i_;
        continue;
      }
      if (c == '\n') {
        ++i_;
        if (nest_.empty()) expect_key = true;
        continue;
      }
      if (c == '#') {
        SkipComment();
        continue;
      }
      if (expect_key) {
        expect_key = false;
        if (nest_.empty() && c == '[') {  // [table] or [[array of tables]]
          ++i_;
          if (i_ < text_.size() && text_[i_] == '[') ++i_;
          SkipBlanks();
          ScanKey();
          continue;  // the closing brackets are skipped below (no open array to close)
        }
        if (nest_.empty() || nest_.back() == '{') {
          ScanKey();
          continue;
        }
      }
      switch (c) {
        case '"':
        case '\'':
          SkipString();
          break;
        case '[':
        case '{':
          if (nest_.size() == static_cast<size_t>(kMaxNesting)) {
            Fail("arrays and inline tables are nested more than " + std::to_string(kMaxNesting) +
                 " deep (the limit)");
            break;
          }
          nest_.push_back(c);
          ++i_;
          expect_key = c == '{';
          break;
        case ']':
        case '}':
          if (!nest_.empty()) nest_.pop_back();
          ++i_;
          break;
        case ',':
          ++i_;
          expect_key = !nest_.empty() && nest_.back() == '{';
          break;
        default:  // "=", and the characters of numbers, booleans, dates and times
          ++i_;
          break;
      }
    }
    if (!error_) return std::nullopt;
    return std::make_pair(error_at_, std::move(message_));
  }

 private:
  void Fail(std::string message) {
    error_ = true;
    error_at_ = i_;
    message_ = std::move(message);
  }

  void SkipBlanks() {
    while (i_ < text_.size() && (text_[i_] == ' ' || text_[i_] == '\t')) ++i_;
  }

  void SkipComment() {
    while (i_ < text_.size() && text_[i_] != '\n') ++i_;
  }

  // A dotted key: parts (bare or quoted) joined by dots, with blanks around the dots. Counts
  // the parts; consumes nothing when no key starts here.
  void ScanKey() {
    int parts = 0;
    for (;;) {
      SkipBlanks();
      if (i_ >= text_.size()) return;
      const auto c = static_cast<unsigned char>(text_[i_]);
      if (c != '"' && c != '\'' && !IsBareKeyByte(c)) return;
      if (++parts > kMaxKeyParts) {
        Fail("a key has more than " + std::to_string(kMaxKeyParts) + " dotted parts (the limit)");
        return;
      }
      if (c == '"' || c == '\'') {
        SkipString();
      } else {
        while (i_ < text_.size() && IsBareKeyByte(static_cast<unsigned char>(text_[i_]))) ++i_;
      }
      SkipBlanks();
      if (i_ >= text_.size() || text_[i_] != '.') return;
      ++i_;
    }
  }

  bool Triple(char quote) const {
    return i_ + 2 < text_.size() && text_[i_] == quote && text_[i_ + 1] == quote &&
           text_[i_ + 2] == quote;
  }

  // A string starting at i_: "basic", 'literal', or either kind multi-line (tripled quotes).
  // A single-line string also ends at the end of its line (unterminated: the parser says so).
  void SkipString() {
    const char quote = text_[i_];
    const bool basic = quote == '"';
    if (Triple(quote)) {
      i_ += 3;
      while (i_ < text_.size()) {
        if (basic && text_[i_] == '\\') {
          i_ += 2;  // an escape, or a line-ending backslash
          continue;
        }
        if (Triple(quote)) {
          i_ += 3;
          // Up to two more quotes just before the closing three belong to the string.
          for (int extra = 0; extra < 2 && i_ < text_.size() && text_[i_] == quote; ++extra) ++i_;
          return;
        }
        ++i_;
      }
      i_ = text_.size();
      return;
    }
    ++i_;
    while (i_ < text_.size() && text_[i_] != '\n') {
      const char c = text_[i_++];
      if (c == quote) return;
      // An escaped character (the quote, a backslash) is skipped with its backslash.
      if (basic && c == '\\' && i_ < text_.size() && text_[i_] != '\n') ++i_;
    }
  }

  std::string_view text_;
  size_t i_ = 0;
  std::vector<char> nest_;  // '[' or '{' of each open array and inline table, innermost last
  bool error_ = false;
  size_t error_at_ = 0;
  std::string message_;
};

// Line and column (1-based, columns in UTF-8 characters) of byte `offset`.
TextBoundError At(std::string_view text, size_t offset, std::string message) {
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  int column = 1;
  for (size_t i = line_start; i < offset; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++column;
  }
  return {line, column, std::move(message)};
}

// The offset of the first byte beyond the line-length bound; npos when every line is within.
size_t FirstOverlongLine(std::string_view text) {
  size_t line_start = 0;
  for (;;) {
    const size_t end = text.find('\n', line_start);
    const size_t length = (end == std::string_view::npos ? text.size() : end) - line_start;
    if (length > kMaxConfigLineBytes) {
      size_t at = line_start + kMaxConfigLineBytes;
      // At the character that crosses the bound, not inside its UTF-8 sequence.
      while (at > line_start && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
      return at;
    }
    if (end == std::string_view::npos) return std::string_view::npos;
    line_start = end + 1;
  }
}

}  // namespace

std::optional<TextBoundError> CheckTextBounds(std::string_view text) {
  if (text.size() > kMaxConfigBytes) {
    return At(
        text, kMaxConfigBytes,
        "the file is larger than " + std::to_string(kMaxConfigBytes >> 20) + " MiB (the limit)");
  }
  const size_t overlong = FirstOverlongLine(text);
  auto structural = BoundsScan(text).Run();
  if (structural && structural->first < overlong) {
    return At(text, structural->first, std::move(structural->second));
  }
  if (overlong != std::string_view::npos) {
    return At(
        text, overlong,
        "a line is longer than " + std::to_string(kMaxConfigLineBytes >> 10) + " KiB (the limit)");
  }
  return std::nullopt;
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
