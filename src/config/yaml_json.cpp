// yaml-cpp leaves plain scalars untyped; Patroni sees PyYAML's YAML 1.1 resolution. We
// resolve them the same way so that `archive_mode: on` (bool) and `archive_mode: 'on'`
// (string), or `unix_socket_permissions: 0750` (octal int), mean what they mean to Patroni.
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <regex>

#include "config_internal.hpp"

namespace pgwarden::config::detail {
namespace {

const std::string kTagPrefix = "tag:yaml.org,2002:";

std::string without_underscores(const std::string& s) {
  std::string out;
  for (char c : s)
    if (c != '_') out.push_back(c);
  return out;
}

std::optional<json> resolve_int(const std::string& s) {
  static const std::regex re(
      "[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+");
  if (!std::regex_match(s, re)) return std::nullopt;
  std::string t = without_underscores(s);
  bool negative = false;
  size_t i = 0;
  if (t[i] == '+' || t[i] == '-') negative = t[i++] == '-';
  std::string digits = t.substr(i);
  int base = 10;
  if (digits.rfind("0b", 0) == 0) base = 2, digits = digits.substr(2);
  else if (digits.rfind("0x", 0) == 0) base = 16, digits = digits.substr(2);
  else if (digits.size() > 1 && digits[0] == '0') base = 8, digits = digits.substr(1);
  if (digits.empty()) return json(0);
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(digits.c_str(), &end, base);
  if (errno == ERANGE || v > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
    // Python has big ints; a double is the closest we can keep.
    return json(std::strtod(t.c_str(), nullptr));
  }
  int64_t sv = static_cast<int64_t>(v);
  return json(negative ? -sv : sv);
}

std::optional<json> resolve_float(const std::string& s) {
  static const std::regex re(
      "[-+]?([0-9][0-9_]*)\\.[0-9_]*([eE][-+][0-9]+)?|\\.[0-9_]+([eE][-+][0-9]+)?");
  static const std::regex inf("[-+]?\\.(inf|Inf|INF)");
  static const std::regex nan("\\.(nan|NaN|NAN)");
  if (std::regex_match(s, re)) return json(std::strtod(without_underscores(s).c_str(), nullptr));
  if (std::regex_match(s, inf))
    return json(s[0] == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
  if (std::regex_match(s, nan)) return json(std::numeric_limits<double>::quiet_NaN());
  return std::nullopt;
}

std::optional<json> resolve_bool(const std::string& s) {
  static const char* kTrue[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const char* kFalse[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  for (const char* t : kTrue)
    if (s == t) return json(true);
  for (const char* f : kFalse)
    if (s == f) return json(false);
  return std::nullopt;
}

json resolve_plain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return json(nullptr);
  if (auto b = resolve_bool(s)) return *b;
  if (auto i = resolve_int(s)) return *i;
  if (auto f = resolve_float(s)) return *f;
  return json(s);
}

json scalar_to_json(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  const std::string& tag = node.Tag();
  if (tag == "?" || tag.empty()) return resolve_plain(text);
  if (tag == "!" || tag == kTagPrefix + "str") return json(text);
  if (tag == kTagPrefix + "int") {
    if (auto i = resolve_int(text)) return *i;
  } else if (tag == kTagPrefix + "float") {
    if (auto f = resolve_float(text)) return *f;
    if (auto i = resolve_int(text)) return json(static_cast<double>(i->get<int64_t>()));
  } else if (tag == kTagPrefix + "bool") {
    if (auto b = resolve_bool(text)) return *b;
  } else if (tag == kTagPrefix + "null") {
    return json(nullptr);
  }
  return json(text);
}

json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      // An explicitly quoted '' is a Scalar, so a Null node is a real null.
      return json(nullptr);
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& item : node) arr.push_back(to_json(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : node) {
        // Keys are used as text (Python would keep `1:` an int; JSON cannot).
        std::string key = kv.first.IsScalar() ? kv.first.Scalar() : YAML::Dump(kv.first);
        obj[key] = to_json(kv.second);  // a repeated key: the last one wins, as in PyYAML
      }
      return obj;
    }
  }
  return json(nullptr);
}

}  // namespace

std::optional<json> parse_yaml(const std::string& text, std::string* error) {
  try {
    YAML::Node root = YAML::Load(text);
    return to_json(root);
  } catch (const YAML::Exception& e) {
    if (error) {
      *error = "line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1) + ": " +
               e.msg;
    }
    return std::nullopt;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

}  // namespace pgwarden::config::detail
