#include "pgwarden/dcs/etcd/codec.hpp"

#include <boost/beast/core/detail/base64.hpp>

#include <cctype>
#include <charconv>

#include "pgwarden/util/plain_json.hpp"

namespace pgwarden::dcs::etcd {

namespace b64 = boost::beast::detail::base64;

std::string base64_encode(std::string_view raw) {
  std::string out(b64::encoded_size(raw.size()), '\0');
  out.resize(b64::encode(out.data(), raw.data(), raw.size()));
  return out;
}

bool base64_decode(std::string_view in, std::string& out) {
  // Beast's decoder stops silently at the first invalid character; reject instead so a
  // corrupt reply is not mistaken for a shorter value.
  if (in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              (c == '=' && i + 2 >= in.size());
    if (!ok) return false;
  }
  out.assign(b64::decoded_size(in.size()), '\0');
  auto [written, read] = b64::decode(out.data(), in.data(), in.size());
  (void)read;
  out.resize(written);
  return true;
}

std::string cluster_prefix(const std::string& namespace_, const std::string& scope) {
  std::string joined = "/" + namespace_ + "/" + scope + "/";
  std::string out;
  out.reserve(joined.size());
  for (char c : joined) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  return out;
}

std::string prefix_range_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // etcd: "\0" means "all keys >= key"
}

namespace {

// Which field of a keep-alive answer a value is, from its depth and the keys on its path:
// result.TTL (1), result.header.revision (2) or neither (0). Both readers below ask this.
int keepalive_field(int depth, std::string_view k0, std::string_view k1, std::string_view k2) {
  if (k0 != "result") return 0;
  if (depth == 2 && k1 == "TTL") return 1;
  if (depth == 3 && k1 == "header" && k2 == "revision") return 2;
  return 0;
}

void set_keepalive_field(KeepAliveAnswer& answer, int field, int64_t v) {
  if (field == 1) answer.ttl = v;
  if (field == 2) answer.revision = v;
}

// nlohmann's SAX interface over one object, remembering the keys on the way down (to a fixed
// depth) and picking up result.TTL and result.header.revision.
class KeepAliveSax {
 public:
  using json = nlohmann::json;
  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(json::number_integer_t v) { return number(v); }
  bool number_unsigned(json::number_unsigned_t v) {
    return v <= static_cast<json::number_unsigned_t>(INT64_MAX) && number(static_cast<int64_t>(v));
  }
  bool number_float(json::number_float_t, const json::string_t&) { return !target(); }
  bool string(json::string_t& s) {
    if (!target()) return value();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && end == s.data() + s.size() && number(v);
  }
  bool binary(json::binary_t&) { return !target(); }
  bool start_object(std::size_t) { return open(true); }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(false); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    if (depth_ == 1 && k == "error") return false;  // an error answer: the general path reports it
    if (depth_ <= kDepth) keys_[depth_ - 1] = k;
    if (depth_ == 1 && k == "result") has_result_ = true;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  bool complete() const { return depth_ == 0 && has_result_; }
  KeepAliveAnswer answer;

 private:
  static constexpr int kDepth = 3;
  bool open(bool object) {
    if (depth_ == 0 && !object) return false;  // the answer is an object
    if (depth_ < kDepth) keys_[depth_] = object ? "" : "[]";
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }
  // The value just read is result.TTL (1) or result.header.revision (2).
  int target() const { return keepalive_field(depth_, keys_[0], keys_[1], keys_[2]); }
  bool value() const { return !target(); }
  bool number(int64_t v) {
    set_keepalive_field(answer, target(), v);
    return true;
  }
  int depth_ = 0;
  bool has_result_ = false;
  std::string keys_[kDepth];
};

// The answer as etcd's gateway writes it, read in one pass without nlohmann's lexer (whose
// code, cold after a loop_wait's sleep, cost an idle leader more than the answer's bytes):
// objects, printable ASCII strings without escapes, and integers; nothing else. nullopt for anything outside
// that (escapes, arrays, literals, floats, an "error" member, no "result", a bad TTL):
// nlohmann's SAX parse (KeepAliveSax) then decides, so both read every answer alike.
class PlainKeepAliveScan : util::PlainJsonCursor {
 public:
  explicit PlainKeepAliveScan(std::string_view in) : PlainJsonCursor(in) {}

  std::optional<KeepAliveAnswer> run() {
    if (!object(0) || !has_result_) return std::nullopt;
    return answer_;
  }

 private:
  static constexpr int kMaxDepth = 8;

  bool object(int depth) {
    if (depth >= kMaxDepth || !take('{')) return false;
    if (take('}')) return true;
    do {
      std::string_view key;
      skip_space();
      if (!string(key) || !take(':')) return false;
      if (depth == 0 && key == "error") return false;
      if (depth == 0 && key == "result") has_result_ = true;
      keys_[depth] = key;
      if (!value(depth + 1)) return false;
    } while (take(','));
    return take('}');
  }
  // The value of the member keys_[depth - 1] (its path: keys_[0 .. depth - 1]).
  bool value(int depth) {
    skip_space();
    if (p_ >= end_) return false;
    if (*p_ == '{') return object(depth);
    const int target = keepalive_field(depth, keys_[0], keys_[1], keys_[2]);
    std::string_view text;
    if (*p_ == '"') {
      if (!string(text)) return false;
      if (!target) return true;
    } else {
      // An integer only: no fraction, exponent or literal (true, null, ...) goes this way.
      bool integer = false;
      if (!number_token(text, integer) || !integer) return false;
      if (!target) return true;
    }
    int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return false;
    set_keepalive_field(answer_, target, v);
    return true;
  }

  std::string_view keys_[kMaxDepth];
  bool has_result_ = false;
  KeepAliveAnswer answer_;
};

}  // namespace

std::optional<KeepAliveAnswer> read_keepalive_answer(std::string_view body) {
  if (auto plain = PlainKeepAliveScan(body).run()) return plain;
  KeepAliveSax sax;
  // Not strict: a streamed answer may go on after its first object.
  const bool ok = nlohmann::json::sax_parse(body.begin(), body.end(), &sax, nlohmann::json::input_format_t::json, false);
  if (!ok || !sax.complete()) return std::nullopt;
  return sax.answer;
}

int64_t json_int64(const nlohmann::json& obj, const char* field, int64_t fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(field);
  if (it == obj.end()) return fallback;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  return fallback;
}

bool decode_kv(const nlohmann::json& kv, KeyValue& out) {
  if (!kv.is_object()) return false;
  auto k = kv.find("key");
  if (k == kv.end() || !k->is_string() || !base64_decode(k->get<std::string>(), out.key)) return false;
  out.value.clear();
  auto v = kv.find("value");  // omitted by the gateway when empty
  if (v != kv.end() && v->is_string() && !base64_decode(v->get<std::string>(), out.value)) return false;
  out.create_revision = json_int64(kv, "create_revision");
  out.mod_revision = json_int64(kv, "mod_revision");
  out.lease = json_int64(kv, "lease");
  return true;
}

std::vector<KeyValue> decode_kvs(const nlohmann::json& range_response) {
  std::vector<KeyValue> out;
  if (!range_response.is_object()) return out;
  auto it = range_response.find("kvs");
  if (it == range_response.end() || !it->is_array()) return out;
  for (const auto& kv : *it) {
    KeyValue d;
    if (decode_kv(kv, d)) out.push_back(std::move(d));
  }
  return out;
}

std::vector<nlohmann::json> JsonObjectStream::feed(std::string_view data) {
  buf_.append(data);
  std::vector<nlohmann::json> out;
  size_t consumed = 0;
  // The usual message is one plain object: read it in place, with no scan for its end first.
  // Whatever the plain read cannot take (an object cut off by the chunk, escapes, text
  // between objects) is left to the scan below, from where the plain read stopped.
  for (;;) {
    while (consumed < buf_.size() && std::isspace(static_cast<unsigned char>(buf_[consumed]))) ++consumed;
    if (consumed >= buf_.size() || buf_[consumed] != '{') break;
    size_t used = 0;
    auto plain = util::read_plain_json_prefix(std::string_view(buf_).substr(consumed), &used);
    if (!plain) break;
    out.push_back(std::move(*plain));
    consumed += used;
  }
  size_t start = std::string::npos;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = consumed; i < buf_.size(); ++i) {
    char c = buf_[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      if (depth > 0) in_string = true;
    } else if (c == '{') {
      if (depth++ == 0) start = i;
    } else if (c == '}' && depth > 0) {
      if (--depth == 0) {
        auto parsed = util::parse_json_text(std::string_view(buf_).substr(start, i + 1 - start));
        if (!parsed.is_discarded()) out.push_back(std::move(parsed));
        consumed = i + 1;
      }
    } else if (depth == 0) {
      consumed = i + 1;  // whitespace/garbage between objects
    }
  }
  buf_.erase(0, consumed);
  return out;
}

}  // namespace pgwarden::dcs::etcd
