#include "pgwarden/util/plain_json.hpp"

#include <charconv>
#include <cstdint>

namespace pgwarden::util {

using nlohmann::json;

namespace {

class PlainReader : PlainJsonCursor {
 public:
  explicit PlainReader(std::string_view in) : PlainJsonCursor(in) {}

  // The value at the start of the text, and where it ends (text after it is not looked at).
  std::optional<json> run_prefix(size_t* used) {
    const char* begin = p_;
    json out;
    if (!value(out, 0)) return std::nullopt;
    *used = static_cast<size_t>(p_ - begin);
    return out;
  }
  std::optional<json> run() {
    size_t used = 0;
    auto out = run_prefix(&used);
    skip_space();
    if (!out || p_ != end_) return std::nullopt;  // as nlohmann's strict parse: one value, nothing after
    return out;
  }

 private:
  // Deeper texts go to nlohmann (recursion here is bounded; nlohmann's is its own business).
  static constexpr int kMaxDepth = 64;

  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }
  // Integers as nlohmann types them (unsigned when not negative, signed when negative);
  // fractions and exponents as a double, correctly rounded as nlohmann's strtod rounds them.
  // What does not fit its type goes to nlohmann.
  bool number(json& out) {
    std::string_view text;
    bool integer = false;
    if (!number_token(text, integer)) return false;
    if (!integer) return store<double>(text, out);
    return text[0] == '-' ? store<int64_t>(text, out) : store<uint64_t>(text, out);
  }
  template <class T>
  static bool store(std::string_view text, json& out) {
    T v{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return false;
    out = v;
    return true;
  }
  bool value(json& out, int depth) {
    skip_space();
    if (p_ >= end_) return false;
    switch (*p_) {
      case '{': return object(out, depth + 1);
      case '[': return array(out, depth + 1);
      case '"': {
        std::string_view s;
        if (!string(s)) return false;
        out = std::string(s);
        return true;
      }
      case 't':
        out = true;
        return literal("true");
      case 'f':
        out = false;
        return literal("false");
      case 'n':
        out = nullptr;
        return literal("null");
      default:
        return number(out);
    }
  }
  bool object(json& out, int depth) {
    if (depth > kMaxDepth) return false;
    ++p_;  // '{'
    out = json::object();
    if (take('}')) return true;
    auto& members = out.get_ref<json::object_t&>();
    do {
      skip_space();
      std::string_view key;
      if (!string(key) || !take(':')) return false;
      json v;
      if (!value(v, depth)) return false;
      members.insert_or_assign(std::string(key), std::move(v));  // the last of duplicates wins
    } while (take(','));
    return take('}');
  }
  bool array(json& out, int depth) {
    if (depth > kMaxDepth) return false;
    ++p_;  // '['
    out = json::array();
    if (take(']')) return true;
    auto& items = out.get_ref<json::array_t&>();
    do {
      items.emplace_back();
      if (!value(items.back(), depth)) return false;
    } while (take(','));
    return take(']');
  }
};

}  // namespace

std::optional<json> read_plain_json(std::string_view text) { return PlainReader(text).run(); }

std::optional<json> read_plain_json_prefix(std::string_view text, size_t* used) {
  return PlainReader(text).run_prefix(used);
}

json parse_json_text(std::string_view text) {
  if (auto plain = read_plain_json(text)) return std::move(*plain);
  return json::parse(text.begin(), text.end(), nullptr, false);
}

}  // namespace pgwarden::util
