// Value coercion with Python's rules (Patroni casts with int() and parse_bool()), and error
// messages that name the key path and what was found, but never a secret's value.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <regex>
#include <sstream>

#include "config_internal.hpp"

namespace pgwarden::config::detail {

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

bool is_secret_path(const std::string& path) {
  std::string p = path;
  std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return std::tolower(c); });
  // bootstrap.users.<name> holds passwords even when given in an unexpected shape.
  return p.find("password") != std::string::npos || p.find("secret") != std::string::npos ||
         p.find("token") != std::string::npos || p.rfind("bootstrap.users", 0) == 0 ||
         p.find("authentication") != std::string::npos;
}

std::string describe(const json& v, const std::string& path) {
  const bool secret = is_secret_path(path);
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "a mapping";
    case json::value_t::array:
      return "a list";
    case json::value_t::boolean:
      return secret ? "a boolean (value hidden)" : std::string("boolean ") + (v.get<bool>() ? "true" : "false");
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return secret ? "an integer (value hidden)" : "integer " + v.dump();
    case json::value_t::number_float:
      return secret ? "a number (value hidden)" : "number " + v.dump();
    case json::value_t::string: {
      if (secret) return "a string (value hidden)";
      std::string s = v.get<std::string>();
      if (s.size() > 80) s = s.substr(0, 77) + "...";
      return "string " + json(s).dump();
    }
    default:
      return "an unsupported value";
  }
}

std::optional<int64_t> py_int(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return std::nullopt;
    return static_cast<int64_t>(d);  // int(1.9) == 1
  }
  if (!v.is_string()) return std::nullopt;
  static const std::regex re("\\s*[-+]?[0-9](_?[0-9])*\\s*");
  const std::string& s = v.get_ref<const std::string&>();
  if (!std::regex_match(s, re)) return std::nullopt;
  std::string digits;
  for (char c : s)
    if (c != '_' && !std::isspace(static_cast<unsigned char>(c))) digits.push_back(c);
  errno = 0;
  long long r = std::strtoll(digits.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return static_cast<int64_t>(r);
}

std::optional<bool> py_bool(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  std::string s;
  if (v.is_string()) s = v.get<std::string>();
  else if (v.is_number_integer() || v.is_number_unsigned()) s = v.dump();
  else return std::nullopt;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "on" || s == "true" || s == "yes" || s == "1") return true;
  if (s == "off" || s == "false" || s == "no" || s == "0") return false;
  return std::nullopt;
}

bool truthy(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return false;
    case json::value_t::boolean: return v.get<bool>();
    case json::value_t::number_integer: return v.get<int64_t>() != 0;
    case json::value_t::number_unsigned: return v.get<uint64_t>() != 0;
    case json::value_t::number_float: return v.get<double>() != 0.0;
    case json::value_t::string: return !v.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return !v.empty();
    default: return true;
  }
}

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "";
  return v.dump();
}

std::optional<HostPort> split_host_port(const std::string& value, std::optional<int> default_port) {
  HostPort hp;
  auto pos = value.rfind(':');
  std::string port_text;
  if (pos == std::string::npos) {
    if (!default_port) return std::nullopt;
    hp.host = value;
    hp.port = *default_port;
    return hp;
  }
  hp.host = value.substr(0, pos);
  port_text = value.substr(pos + 1);
  if (hp.host.find(':') != std::string::npos) {
    // IPv6 hosts may be bracketed, and listen may list several: "[::1],127.0.0.1".
    std::string joined, item;
    std::stringstream ss(hp.host);
    bool first = true;
    while (std::getline(ss, item, ',')) {
      auto b = item.find_first_not_of(" \t");
      auto e = item.find_last_not_of(" \t");
      item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
      while (!item.empty() && (item.front() == '[' || item.front() == ']')) item.erase(0, 1);
      while (!item.empty() && (item.back() == '[' || item.back() == ']')) item.pop_back();
      joined += (first ? "" : ",") + item;
      first = false;
    }
    hp.host = joined;
  }
  auto port = py_int(json(port_text));
  if (!port || *port < 1 || *port > 65535) return std::nullopt;
  hp.port = static_cast<int>(*port);
  return hp;
}

const json* field(const json& obj, const std::string& key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

void expected(const std::string& path, const std::string& what, const json& got, std::vector<std::string>* errors) {
  if (errors) errors->push_back(path + ": expected " + what + ", got " + describe(got, path));
}

std::optional<std::string> read_string(const json& v, const std::string& path, std::vector<std::string>* errors) {
  // Numbers are taken as their text (`scope: 1234`); Python would str() them too.
  if (v.is_string() || v.is_number()) return scalar_text(v);
  expected(path, "a string", v, errors);
  return std::nullopt;
}

std::optional<int64_t> read_int(const json& v, const std::string& path, std::vector<std::string>* errors) {
  auto i = v.is_boolean() ? std::nullopt : py_int(v);
  if (!i) expected(path, "an integer", v, errors);
  return i;
}

std::optional<bool> read_bool(const json& v, const std::string& path, std::vector<std::string>* errors) {
  auto b = py_bool(v);
  if (!b) expected(path, "a boolean", v, errors);
  return b;
}

std::optional<std::vector<std::string>> read_string_list(const json& v, const std::string& path,
                                                         std::vector<std::string>* errors) {
  if (!v.is_array()) {
    expected(path, "a list of strings", v, errors);
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].is_string()) {
      out.push_back(v[i].get<std::string>());
    } else {
      expected(path + "[" + std::to_string(i) + "]", "a string", v[i], errors);
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

void read_into(const json& obj, const std::string& key, const std::string& prefix, std::string& out,
               std::vector<std::string>* errors) {
  if (const json* v = field(obj, key))
    if (auto s = read_string(*v, join_path(prefix, key), errors)) out = *s;
}

void read_into(const json& obj, const std::string& key, const std::string& prefix, bool& out,
               std::vector<std::string>* errors) {
  if (const json* v = field(obj, key))
    if (auto b = read_bool(*v, join_path(prefix, key), errors)) out = *b;
}

void read_into(const json& obj, const std::string& key, const std::string& prefix, int& out,
               std::vector<std::string>* errors) {
  if (const json* v = field(obj, key)) {
    auto path = join_path(prefix, key);
    if (auto i = read_int(*v, path, errors)) {
      if (*i < std::numeric_limits<int>::min() || *i > std::numeric_limits<int>::max())
        expected(path, "an integer in range", *v, errors);
      else
        out = static_cast<int>(*i);
    }
  }
}

}  // namespace pgwarden::config::detail
