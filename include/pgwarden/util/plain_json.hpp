#pragma once
// A JSON reader for the plain texts pgwarden reads most often (etcd's replies and watch
// events, member keys, the dynamic configuration): objects, arrays, numbers, true/false/null
// and strings of printable ASCII without escapes. Such a text is read in one pass straight
// into a document; nlohmann's lexer copies every character of every string one by one, and on
// an idle member, whose caches have gone cold over loop_wait, that costs more than the bytes
// are worth.
//
// Anything outside the subset (escapes, other bytes, numbers that do not fit their type, very
// deep nesting, bad JSON) gives nullopt: the caller then lets nlohmann parse the text, which
// decides. For every text it does read, the document is the one nlohmann::json::parse would
// build (the same value types, the last of duplicate keys).
#include <nlohmann/json.hpp>

#include <optional>
#include <string_view>

namespace pgwarden::util {

// The plain subset's lexing: whitespace, one character, a string, a number. The reader below
// and the readers that pick a few fields without building a document (etcd's keep-alive
// answer) share it, so they take the same texts.
class PlainJsonCursor {
 public:
  explicit PlainJsonCursor(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

 protected:
  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  // Skips whitespace, then takes `c` if it comes next.
  bool take(char c) {
    skip_space();
    if (p_ >= end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  // The string starting right here, printable ASCII without escapes (text that needs no
  // decoding and no UTF-8 check): its text without the quotes.
  bool string(std::string_view& out) {
    if (p_ >= end_ || *p_ != '"') return false;
    const char* begin = ++p_;
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') break;
      if (c == '\\' || c < 0x20 || c > 0x7e) return false;
      ++p_;
    }
    if (p_ >= end_) return false;
    out = std::string_view(begin, static_cast<size_t>(p_ - begin));
    ++p_;
    return true;
  }
  // The number starting right here, by JSON's grammar (no leading zero, digits after a point
  // and in an exponent): its text, and whether it is an integer (no fraction, no exponent).
  bool number_token(std::string_view& out, bool& integer) {
    const char* begin = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    const char* digits = p_;
    if (!skip_digits() || (p_ - digits > 1 && *digits == '0')) return false;
    const char* integer_end = p_;
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (!skip_digits()) return false;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!skip_digits()) return false;
    }
    integer = p_ == integer_end;
    out = std::string_view(begin, static_cast<size_t>(p_ - begin));
    return true;
  }
  // At least one digit passed.
  bool skip_digits() {
    const char* from = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ != from;
  }

  const char* p_;
  const char* end_;
};

std::optional<nlohmann::json> read_plain_json(std::string_view text);

// The plain value at the start of `text` (leading whitespace allowed), whatever follows it;
// `used` receives how many characters it took. nullopt as above, and when the value is cut off.
std::optional<nlohmann::json> read_plain_json_prefix(std::string_view text, size_t* used);

// read_plain_json, else nlohmann::json::parse without exceptions (a discarded value when the
// text is not one JSON value).
nlohmann::json parse_json_text(std::string_view text);

}  // namespace pgwarden::util
