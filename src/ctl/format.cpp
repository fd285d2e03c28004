// patronictl's output formats and edit-config helpers, after Patroni 3.0.2's ctl.py
// (print_output, output_members, topology_sort, apply_config_changes, show_diff) and the
// PyYAML / PrettyTable / difflib behaviour it relies on.
#include "pgwarden/ctl/format.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <regex>
#include <sstream>

#include "../config/config_internal.hpp"

namespace pgwarden::ctl {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// Python's repr(float).
std::string py_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// Characters (code points) in UTF-8 text, for column widths.
std::size_t text_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto nl = s.find('\n', start);
    out.push_back(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

// --- YAML scalars as PyYAML's emitter chooses their style.

bool resolves_to_non_string(const std::string& s) {
  static const std::regex kBool("^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$");
  static const std::regex kFloat(
      R"(^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$)");
  static const std::regex kInt(
      R"(^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$)");
  static const std::regex kNull("^(?:~|null|Null|NULL|)$");
  static const std::regex kTimestamp(
      R"(^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$)");
  return s == "<<" || s == "=" || std::regex_match(s, kBool) || std::regex_match(s, kFloat) ||
         std::regex_match(s, kInt) || std::regex_match(s, kNull) || std::regex_match(s, kTimestamp);
}

struct ScalarAnalysis {
  bool allow_flow_plain = true, allow_block_plain = true, allow_single_quoted = true;
};

// PyYAML's Emitter.analyze_scalar, reduced to what decides the style.
ScalarAnalysis analyze(const std::string& s) {
  ScalarAnalysis a;
  if (s.empty()) {
    a.allow_flow_plain = a.allow_block_plain = false;
    return a;
  }
  bool flow_ind = false, block_ind = false, line_breaks = false, special = false;
  bool leading_space = false, leading_break = false, trailing_space = false, trailing_break = false;
  bool break_space = false, space_break = false;
  if (s.rfind("---", 0) == 0 || s.rfind("...", 0) == 0) flow_ind = block_ind = true;
  bool preceded_ws = true;
  bool previous_space = false, previous_break = false;
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  for (std::size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    bool followed_ws = i + 1 >= s.size() || is_ws(s[i + 1]);
    if (i == 0) {
      if (std::string("#,[]{}&*!|>'\"%@`").find(ch) != std::string::npos) flow_ind = block_ind = true;
      if (ch == '?' || ch == ':') {
        flow_ind = true;
        if (followed_ws) block_ind = true;
      }
      if (ch == '-' && followed_ws) flow_ind = block_ind = true;
    } else {
      if (std::string(",?[]{}").find(ch) != std::string::npos) flow_ind = true;
      if (ch == ':') {
        flow_ind = true;
        if (followed_ws) block_ind = true;
      }
      if (ch == '#' && preceded_ws) flow_ind = block_ind = true;
    }
    if (ch == '\n') line_breaks = true;
    unsigned char uc = static_cast<unsigned char>(ch);
    if ((uc < 0x20 && ch != '\n' && ch != '\t') || uc == 0x7F) special = true;
    if (ch == ' ') {
      if (i == 0) leading_space = true;
      if (i + 1 == s.size()) trailing_space = true;
      if (previous_break) break_space = true;
      previous_space = true;
      previous_break = false;
    } else if (ch == '\n') {
      if (i == 0) leading_break = true;
      if (i + 1 == s.size()) trailing_break = true;
      if (previous_space) space_break = true;
      previous_space = false;
      previous_break = true;
    } else {
      previous_space = previous_break = false;
    }
    preceded_ws = is_ws(ch);
  }
  if (leading_space || leading_break || trailing_space || trailing_break) a.allow_flow_plain = a.allow_block_plain = false;
  if (trailing_space) a.allow_single_quoted = false;  // PyYAML also forbids block styles here
  if (space_break || special) a.allow_flow_plain = a.allow_block_plain = a.allow_single_quoted = false;
  if (line_breaks) a.allow_flow_plain = a.allow_block_plain = false;
  if (flow_ind) a.allow_flow_plain = false;
  if (block_ind) a.allow_block_plain = false;
  (void)break_space;
  return a;
}

std::string double_quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case 0: out += "\\0"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Single-quoted: quotes doubled; a line break becomes an empty line, continuation lines are
// indented by `indent`.
std::string single_quoted(const std::string& s, int indent) {
  std::string out = "'";
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '\n') {
      std::size_t j = i;
      while (j < s.size() && s[j] == '\n') ++j;
      out += std::string(j - i + 1, '\n') + std::string(indent, ' ');
      i = j;
      continue;
    }
    if (s[i] == '\'') out += "''";
    else out += s[i];
    ++i;
  }
  return out + "'";
}

std::string yaml_string(const std::string& s, bool flow, int indent) {
  ScalarAnalysis a = analyze(s);
  bool plain = flow ? a.allow_flow_plain : a.allow_block_plain;
  if (plain && !resolves_to_non_string(s)) return s;
  if (a.allow_single_quoted) return single_quoted(s, indent);
  return double_quoted(s);
}

std::string yaml_scalar(const json& v, bool flow, int indent) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::number_integer: return std::to_string(v.get<int64_t>());
    case json::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
    case json::value_t::number_float: {
      double d = v.get<double>();
      if (std::isnan(d)) return ".nan";
      if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
      std::string r = py_float(d);
      std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
      if (r.find('.') == std::string::npos && r.find('e') != std::string::npos) r.insert(r.find('e'), ".0");
      return r;
    }
    case json::value_t::string: return yaml_string(v.get<std::string>(), flow, indent);
    case json::value_t::object: return "{}";
    case json::value_t::array: return "[]";
    default: return "null";
  }
}

bool is_collection(const json& v) { return (v.is_object() || v.is_array()) && !v.empty(); }

void emit_sequence(std::string& out, const json& arr, int indent, bool inline_first);

void emit_mapping(std::string& out, const json& obj, int indent, bool inline_first) {
  bool first = true;
  for (const auto& [k, v] : obj.items()) {
    if (!(first && inline_first)) out += std::string(indent, ' ');
    first = false;
    out += yaml_string(k, false, indent + 2) + ":";
    if (!is_collection(v)) {
      out += " " + yaml_scalar(v, false, indent + 2) + "\n";
    } else if (v.is_object()) {
      out += "\n";
      emit_mapping(out, v, indent + 2, false);
    } else {
      out += "\n";
      emit_sequence(out, v, indent, false);  // PyYAML does not indent a mapping's sequences
    }
  }
}

void emit_sequence(std::string& out, const json& arr, int indent, bool inline_first) {
  bool first = true;
  for (const auto& v : arr) {
    if (!(first && inline_first)) out += std::string(indent, ' ');
    first = false;
    out += "-";
    if (!is_collection(v)) {
      out += " " + yaml_scalar(v, false, indent + 2) + "\n";
    } else if (v.is_object()) {
      out += " ";
      emit_mapping(out, v, indent + 2, true);
    } else {
      out += " ";
      emit_sequence(out, v, indent + 2, true);
    }
  }
}

// default_flow_style=True (patronictl's tsv Tags): {a: 1, b: [x, y]}.
std::string flow_yaml(const json& v) {
  if (v.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, e] : v.items()) {
      if (!first) out += ", ";
      first = false;
      out += yaml_string(k, true, 2) + ": " + flow_yaml(e);
    }
    return out + "}";
  }
  if (v.is_array()) {
    std::string out = "[";
    bool first = true;
    for (const auto& e : v) {
      if (!first) out += ", ";
      first = false;
      out += flow_yaml(e);
    }
    return out + "]";
  }
  return yaml_scalar(v, true, 2);
}

std::string title_case(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      c = start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      start = false;
    } else {
      start = true;
    }
  }
  return out;
}

bool truthy(const json& j) {
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<int64_t>() != 0;
  if (j.is_number_unsigned()) return j.get<uint64_t>() != 0;
  if (j.is_number_float()) return j.get<double>() != 0.0;
  if (j.is_string()) return !j.get<std::string>().empty();
  return !j.empty();
}

// Python's str() of a JSON value (json.loads result): dict/list as repr.
std::string py_repr(const json& v);
std::string py_str(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "None";
    case json::value_t::boolean: return v.get<bool>() ? "True" : "False";
    case json::value_t::number_integer: return std::to_string(v.get<int64_t>());
    case json::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
    case json::value_t::number_float: return py_float(v.get<double>());
    case json::value_t::string: return v.get<std::string>();
    default: return py_repr(v);
  }
}
std::string py_repr(const json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    const char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
    std::string out(1, q);
    for (char c : s) {
      if (c == q || c == '\\') out += '\\';
      out += c;
    }
    return out + q;
  }
  if (v.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, e] : v.items()) {
      if (!first) out += ", ";
      first = false;
      out += py_repr(json(k)) + ": " + py_repr(e);
    }
    return out + "}";
  }
  if (v.is_array()) {
    std::string out = "[";
    bool first = true;
    for (const auto& e : v) {
      if (!first) out += ", ";
      first = false;
      out += py_repr(e);
    }
    return out + "]";
  }
  return py_str(v);
}

std::string hrule(const std::vector<std::size_t>& widths) {
  std::string out = "+";
  for (auto w : widths) out += std::string(w + 2, '-') + "+";
  return out;
}

std::string justify(const std::string& text, std::size_t width, bool right) {
  std::size_t w = text_width(text);
  std::string pad(width > w ? width - w : 0, ' ');
  return right ? pad + text : text + pad;
}

ordered_json row_object(const Table& t, const std::vector<json>& row, bool skip_empty) {
  ordered_json obj = ordered_json::object();
  for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i) {
    if (skip_empty && cell_text(row[i]).empty()) continue;
    obj[t.columns[i]] = ordered_json::parse(row[i].dump());
  }
  return obj;
}

// Patroni's topology_sort + generate_topology: the leader, then each member under the member
// it replicates from (tags.replicatefrom when that is another replica), indented "+ name".
std::vector<json> topology_sorted(const json& members) {
  json leader = json{{"name", nullptr}};
  for (const auto& m : members)
    if (m.value("role", "").size() >= 6 && m.value("role", "").ends_with("leader")) {
      leader = m;
      break;
    }
  std::set<std::string> replicas;
  for (const auto& m : members)
    if (!m.value("role", "").ends_with("leader")) replicas.insert(m.value("name", ""));
  std::map<std::string, std::vector<json>> topology;  // parent name ("" for none) -> children
  auto key_of = [](const json& name) { return name.is_string() ? name.get<std::string>() : std::string(); };
  for (const auto& m : members) {
    if (m.value("role", "").ends_with("leader")) continue;
    std::string parent;
    auto tags = m.find("tags");
    if (tags != m.end() && tags->is_object()) {
      auto rf = tags->find("replicatefrom");
      if (rf != tags->end() && rf->is_string()) parent = rf->get<std::string>();
    }
    if (parent.empty() || parent == m.value("name", "") || !replicas.count(parent)) parent = key_of(leader["name"]);
    topology[parent].push_back(m);
  }
  std::vector<json> out;
  std::function<void(int, json)> walk = [&](int level, json member) {
    std::string own = key_of(member["name"]);
    auto children = topology.count(own) ? topology[own] : std::vector<json>{};
    topology.erase(own);  // a cycle cannot recurse forever
    if (level > 0) member["name"] = std::string((level - 1) * 2, ' ') + "+ " + own;
    if (member["name"].is_string() && !member["name"].get<std::string>().empty()) out.push_back(member);
    for (auto& c : children) walk(level + 1, c);
  };
  walk(0, leader);
  return out;
}

}  // namespace

std::string to_yaml(const json& value) {
  if (value.is_object() && !value.empty()) {
    std::string out;
    emit_mapping(out, value, 0, false);
    return out;
  }
  if (value.is_array() && !value.empty()) {
    std::string out;
    emit_sequence(out, value, 0, false);
    return out;
  }
  std::string s = yaml_scalar(value, false, 2);
  // PyYAML closes a document whose root is a plain scalar with "...".
  bool plain = !value.is_string() || s == value.get<std::string>();
  if (value.is_object() || value.is_array()) plain = false;
  return s + "\n" + (plain ? "...\n" : "");
}

std::string python_json(const ordered_json& v) {
  switch (v.type()) {
    case ordered_json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        if (!first) out += ", ";
        first = false;
        out += ordered_json(k).dump(-1, ' ', true) + ": " + python_json(e);
      }
      return out + "}";
    }
    case ordered_json::value_t::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& e : v) {
        if (!first) out += ", ";
        first = false;
        out += python_json(e);
      }
      return out + "]";
    }
    case ordered_json::value_t::number_float: {
      double d = v.get<double>();
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
      return py_float(d);
    }
    default:
      return v.dump(-1, ' ', true);
  }
}

long long python_round(double x) { return static_cast<long long>(std::nearbyint(x)); }

std::string cell_text(const json& cell) { return py_str(cell); }

std::string render_pretty(const Table& t, const std::string& title) {
  const std::size_t n = t.columns.size();
  std::vector<std::size_t> widths(n, 0);
  std::vector<std::vector<std::vector<std::string>>> cells;  // row -> column -> lines
  bool multiline = false;
  for (std::size_t c = 0; c < n; ++c) widths[c] = text_width(t.columns[c]);
  for (const auto& row : t.rows) {
    std::vector<std::vector<std::string>> r;
    for (std::size_t c = 0; c < n; ++c) {
      std::string text = c < row.size() ? cell_text(row[c]) : "";
      if (text.find('\n') != std::string::npos) multiline = true;
      auto lines = split_lines(text);
      for (const auto& l : lines) widths[c] = std::max(widths[c], text_width(l));
      r.push_back(std::move(lines));
    }
    cells.push_back(std::move(r));
  }
  const std::string rule = hrule(widths);
  std::string top = rule;
  if (!title.empty()) {
    std::string header = title.substr(0, rule.size() >= 2 ? rule.size() - 2 : 0);
    top = rule.substr(0, 1) + header + (1 + header.size() < rule.size() ? rule.substr(1 + header.size()) : "");
  }
  std::string out = top + "\n|";
  for (std::size_t c = 0; c < n; ++c) out += " " + justify(t.columns[c], widths[c], t.right_aligned.count(t.columns[c])) + " |";
  out += "\n" + rule + "\n";
  for (std::size_t r = 0; r < cells.size(); ++r) {
    std::size_t height = 1;
    for (const auto& lines : cells[r]) height = std::max(height, lines.size());
    for (std::size_t h = 0; h < height; ++h) {
      out += "|";
      for (std::size_t c = 0; c < n; ++c) {
        std::string text = h < cells[r][c].size() ? cells[r][c][h] : "";
        out += " " + justify(text, widths[c], t.right_aligned.count(t.columns[c])) + " |";
      }
      out += "\n";
    }
    if (multiline && r + 1 < cells.size()) out += rule + "\n";
  }
  out += rule + "\n";
  return out;
}

std::string render_tsv(const Table& t, const std::string& delimiter) {
  std::string out;
  auto line = [&](const std::vector<std::string>& v) {
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? delimiter : "") + v[i];
    out += "\n";
  };
  if (!t.columns.empty()) line(t.columns);
  for (const auto& row : t.rows) {
    std::vector<std::string> v;
    for (const auto& c : row) v.push_back(cell_text(c));
    line(v);
  }
  return out;
}

std::string render_json(const Table& t, bool skip_empty) {
  ordered_json arr = ordered_json::array();
  for (const auto& row : t.rows) arr.push_back(row_object(t, row, skip_empty));
  return python_json(arr) + "\n";
}

std::string render_yaml(const Table& t, bool skip_empty) {
  json arr = json::array();
  for (const auto& row : t.rows) arr.push_back(json::parse(row_object(t, row, skip_empty).dump()));
  return to_yaml(arr);
}

json lag_in_mb(const json& lag) {
  if (lag.is_number_integer() || lag.is_number_unsigned())
    return python_round(lag.get<double>() / 1024.0 / 1024.0);
  return lag;
}

std::string cluster_title(const std::string& name, const std::optional<std::string>& sysid) {
  std::string init = !sysid ? "uninitialized" : sysid->empty() ? "initializing" : *sysid;
  return " Cluster: " + name + " (" + init + ") ";
}

Table member_table(const json& cluster, const ListOptions& o) {
  Table t;
  t.columns = {"Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"};
  t.right_aligned = {"Lag in MB", "TL"};
  const json members = cluster.contains("members") && cluster["members"].is_array() ? cluster["members"] : json::array();
  std::vector<json> with_host;
  for (const auto& m : members)
    if (m.contains("host")) with_host.push_back(m);
  for (const char* c : {"Pending restart", "Scheduled restart", "Tags"}) {
    std::string key = c == std::string("Pending restart") ? "pending_restart"
                      : c == std::string("Scheduled restart") ? "scheduled_restart" : "tags";
    bool any = std::any_of(with_host.begin(), with_host.end(),
                           [&](const json& m) { return m.contains(key) && truthy(m[key]); });
    if (o.extended || any) t.columns.push_back(c);
  }
  std::set<std::string> hosts;
  bool odd_port = false;
  for (const auto& m : with_host) {
    hosts.insert(cell_text(m["host"]));
    if (m.contains("port") && m["port"] != json(5432)) odd_port = true;
  }
  const bool append_port = odd_port || hosts.size() < with_host.size();

  std::vector<json> ordered;
  if (o.fmt == "topology") ordered = topology_sorted(members);
  else ordered.assign(members.begin(), members.end());

  for (const auto& m : ordered) {
    std::map<std::string, json> f;
    f["cluster"] = o.cluster_name;
    f["member"] = m.value("name", json(""));
    json host = m.value("host", json(""));
    if (append_port && truthy(host) && m.contains("port") && truthy(m["port"]))
      host = cell_text(host) + ":" + cell_text(m["port"]);
    f["host"] = host;
    std::string role = m.value("role", "");
    std::replace(role.begin(), role.end(), '_', ' ');
    f["role"] = title_case(role);
    f["state"] = m.value("state", json(""));
    f["tl"] = m.value("timeline", json(""));
    f["lag_in_mb"] = m.contains("lag") ? lag_in_mb(m["lag"]) : json("");
    f["pending_restart"] = m.contains("pending_restart") && truthy(m["pending_restart"]) ? "*" : "";
    if (m.contains("scheduled_restart") && m["scheduled_restart"].is_object()) {
      const json& sr = m["scheduled_restart"];
      std::string v = cell_text(sr.value("schedule", json("")));
      if (sr.contains("postgres_version")) v += " if version < " + cell_text(sr["postgres_version"]);
      f["scheduled_restart"] = v;
    } else if (m.contains("scheduled_restart")) {
      f["scheduled_restart"] = m["scheduled_restart"];
    }
    if (m.contains("tags")) f["tags"] = m["tags"];
    std::vector<json> row;
    for (const auto& c : t.columns) {
      std::string key = c;
      std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return ch == ' ' ? '_' : std::tolower(ch); });
      auto it = f.find(key);
      row.push_back(it == f.end() ? json("") : it->second);
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string render_member_list(const json& cluster, const ListOptions& o) {
  Table t = member_table(cluster, o);
  const std::string title = cluster_title(o.cluster_name, o.sysid);
  if (o.fmt == "json") return render_json(t, true);
  if (o.fmt == "yaml" || o.fmt == "yml") return render_yaml(t, true);
  // Tags as YAML text: block style in tables, flow style in tsv.
  auto tags = std::find(t.columns.begin(), t.columns.end(), "Tags");
  if (tags != t.columns.end()) {
    std::size_t i = static_cast<std::size_t>(tags - t.columns.begin());
    for (auto& row : t.rows) {
      if (!truthy(row[i])) continue;
      std::string y = o.fmt == "tsv" ? flow_yaml(row[i]) : to_yaml(row[i]);
      while (!y.empty() && (y.back() == '\n' || y.back() == ' ')) y.pop_back();
      row[i] = y;
    }
  }
  if (o.fmt == "tsv") return render_tsv(t);
  // pretty and topology: the cluster name is in the title, not a column.
  Table shown = t;
  shown.columns.erase(shown.columns.begin());
  for (auto& row : shown.rows) row.erase(row.begin());
  std::string out = render_pretty(shown, title);
  std::vector<std::string> info;
  if (cluster.contains("pause") && truthy(cluster["pause"])) info.push_back("Maintenance mode: on");
  if (cluster.contains("scheduled_switchover") && cluster["scheduled_switchover"].is_object()) {
    const json& s = cluster["scheduled_switchover"];
    std::string line = "Switchover scheduled at: " + cell_text(s.value("at", json("")));
    for (const char* k : {"from", "to"}) {
      if (!s.contains(k)) continue;
      std::string label = k;
      line += "\n" + std::string(24 - label.size(), ' ') + label + ": " + cell_text(s[k]);
    }
    info.push_back(line);
  }
  if (!info.empty()) {
    out += " ";
    for (std::size_t i = 0; i < info.size(); ++i) out += (i ? "\n " : "") + info[i];
    out += "\n";
  }
  return out;
}

Table history_table(const json& history) {
  Table t;
  t.columns = {"TL", "LSN", "Reason", "Timestamp", "New Leader"};
  t.right_aligned = {"TL", "LSN"};
  if (!history.is_array()) return t;
  for (const auto& line : history) {
    if (!line.is_array()) continue;
    std::vector<json> row(line.begin(), line.end());
    while (row.size() < t.columns.size()) row.push_back("");
    t.rows.push_back(std::move(row));
  }
  return t;
}

Result<json> parse_yaml_text(const std::string& text) {
  std::string error;
  auto v = config::detail::parse_yaml(text, &error);
  if (!v) return Status::Invalid("YAML syntax error at " + error);
  return *v;
}

namespace {

void set_path_value(json& config, std::vector<std::string> path, const json& value, std::vector<std::string> prefix) {
  // PostgreSQL GUCs cannot be nested but may contain dots: re-join the rest of the path.
  if (prefix.size() == 2 && prefix[0] == "postgresql" && prefix[1] == "parameters") {
    std::string joined;
    for (std::size_t i = 0; i < path.size(); ++i) joined += (i ? "." : "") + path[i];
    path = {joined};
  }
  const std::string key = path[0];
  if (path.size() == 1) {
    if (value.is_null()) config.erase(key);
    else config[key] = value;
    return;
  }
  if (!config.contains(key) || !config[key].is_object()) config[key] = json::object();
  prefix.push_back(key);
  set_path_value(config[key], std::vector<std::string>(path.begin() + 1, path.end()), value, prefix);
  if (config[key].empty()) config.erase(key);
}

std::string strip(const std::string& s) {
  const char* ws = " \t\r\n\v\f";
  auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

Result<json> apply_set_pairs(const json& config, const std::vector<std::string>& set_pairs,
                             const std::vector<std::string>& pg_pairs) {
  json changed = config.is_object() ? config : json::object();
  std::vector<std::string> all = set_pairs;
  for (const auto& p : pg_pairs) {
    auto b = p.find_first_not_of(" \t\r\n\v\f");
    all.push_back("postgresql.parameters." + (b == std::string::npos ? std::string() : p.substr(b)));
  }
  for (const auto& pair : all) {
    auto eq = pair.find('=');
    if (pair.empty() || eq == std::string::npos) return Status::Invalid("Invalid parameter setting " + pair);
    std::string key_path = strip(pair.substr(0, eq));
    auto value = parse_yaml_text(pair.substr(eq + 1));
    if (!value) return Status::Invalid("Invalid value in " + pair + ": " + value.status().message());
    std::vector<std::string> path;
    std::size_t start = 0;
    for (;;) {
      auto dot = key_path.find('.', start);
      path.push_back(key_path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    set_path_value(changed, path, *value, {});
  }
  return changed;
}

// --- difflib.unified_diff

namespace {

struct Opcode {
  char tag;  // 'e'qual, 'r'eplace, 'd'elete, 'i'nsert
  std::size_t i1, i2, j1, j2;
};

std::vector<Opcode> opcodes(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  const std::size_t n = a.size(), m = b.size();
  // Longest common subsequence table, from the end.
  std::vector<std::vector<uint32_t>> L(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;) L[i][j] = a[i] == b[j] ? L[i + 1][j + 1] + 1 : std::max(L[i + 1][j], L[i][j + 1]);
  std::vector<Opcode> ops;
  // Runs of equal lines and runs of changes; a change run touching both sides is a replace.
  auto add = [&](bool equal, std::size_t i1, std::size_t i2, std::size_t j1, std::size_t j2) {
    if (!ops.empty() && (ops.back().tag == 'e') == equal) {
      ops.back().i2 = i2;
      ops.back().j2 = j2;
      return;
    }
    ops.push_back({equal ? 'e' : 'c', i1, i2, j1, j2});
  };
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      add(true, i, i + 1, j, j + 1);
      ++i, ++j;
    } else if (j < m && (i == n || L[i][j + 1] >= L[i + 1][j])) {
      add(false, i, i, j, j + 1);
      ++j;
    } else {
      add(false, i, i + 1, j, j);
      ++i;
    }
  }
  for (auto& op : ops)
    if (op.tag == 'c') op.tag = op.i1 == op.i2 ? 'i' : op.j1 == op.j2 ? 'd' : 'r';
  return ops;
}

std::string format_range(std::size_t start, std::size_t stop) {
  std::size_t beginning = start + 1, length = stop - start;
  if (length == 1) return std::to_string(beginning);
  if (length == 0) beginning -= 1;
  return std::to_string(beginning) + "," + std::to_string(length);
}

std::vector<std::string> listify(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return split_lines(t);
}

}  // namespace

std::string unified_diff(const std::string& before, const std::string& after) {
  const auto a = listify(before), b = listify(after);
  std::vector<Opcode> codes = opcodes(a, b);
  if (codes.empty()) codes.push_back({'e', 0, 1, 0, 1});
  const std::size_t n = 3;
  if (codes.front().tag == 'e') {
    Opcode& c = codes.front();
    c.i1 = std::max(c.i1, c.i2 >= n ? c.i2 - n : 0);
    c.j1 = std::max(c.j1, c.j2 >= n ? c.j2 - n : 0);
  }
  if (codes.back().tag == 'e') {
    Opcode& c = codes.back();
    c.i2 = std::min(c.i2, c.i1 + n);
    c.j2 = std::min(c.j2, c.j1 + n);
  }
  std::vector<std::vector<Opcode>> groups;
  std::vector<Opcode> group;
  for (Opcode c : codes) {
    if (c.tag == 'e' && c.i2 - c.i1 > 2 * n) {
      group.push_back({'e', c.i1, std::min(c.i2, c.i1 + n), c.j1, std::min(c.j2, c.j1 + n)});
      groups.push_back(group);
      group.clear();
      c.i1 = std::max(c.i1, c.i2 - n);
      c.j1 = std::max(c.j1, c.j2 - n);
    }
    group.push_back(c);
  }
  if (!group.empty() && !(group.size() == 1 && group[0].tag == 'e')) groups.push_back(group);

  std::string out;
  for (const auto& g : groups) {
    if (out.empty()) out += "--- \n+++ \n";
    out += "@@ -" + format_range(g.front().i1, g.back().i2) + " +" + format_range(g.front().j1, g.back().j2) + " @@\n";
    for (const auto& c : g) {
      if (c.tag == 'e') {
        for (std::size_t i = c.i1; i < c.i2; ++i) out += " " + a[i] + "\n";
        continue;
      }
      if (c.tag == 'r' || c.tag == 'd')
        for (std::size_t i = c.i1; i < c.i2; ++i) out += "-" + a[i] + "\n";
      if (c.tag == 'r' || c.tag == 'i')
        for (std::size_t j = c.j1; j < c.j2; ++j) out += "+" + b[j] + "\n";
    }
  }
  return out;
}

}  // namespace pgwarden::ctl
