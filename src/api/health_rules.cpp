// Health-check status codes (reference section 4): which HTTP code a load balancer or a
// Kubernetes probe sees for a path, given the node view and the status document.
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <regex>
#include <string>

#include "pgwarden/api/status_document.hpp"

namespace pgwarden::api {

namespace {

constexpr int kOk = 200;
constexpr int kUnavailable = 503;

// Python truthiness of a tag value, as `bool(tags.get('noloadbalance', False))`.
bool truthy(const nlohmann::json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number_float()) return v.get<double>() != 0.0;
  if (v.is_string()) return !v.get<std::string>().empty();
  return !v.empty();
}

// Patroni compares non-string tag values as `str(value).lower()` (True -> "true").
std::string tag_as_string(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  std::string s = v.dump();
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// A standby cluster is configured by a `standby_cluster` section in the dynamic config; the
// standby leader also shows it through its role.
bool is_standby_cluster(const ha::NodeView& view) {
  if (view.role == "standby_leader") return true;
  if (!view.cluster || !view.cluster->config || !view.cluster->config->is_object()) return false;
  auto it = view.cluster->config->find("standby_cluster");
  return it != view.cluster->config->end() && it->is_object() && !it->empty();
}

int64_t replayed_location(const nlohmann::json& doc) {
  auto x = doc.find("xlog");
  if (x == doc.end() || !x->is_object()) return 0;
  auto r = x->find("replayed_location");
  return r != x->end() && r->is_number_integer() ? r->get<int64_t>() : 0;
}

bool is_lagging(const std::map<std::string, std::string>& query, const ha::NodeView& view, const nlohmann::json& doc) {
  const int64_t leader_optime = view.cluster ? view.cluster->last_lsn : 0;
  if (leader_optime == 0) return false;
  auto lag = query.find("lag");
  if (lag == query.end()) return false;
  auto max_lag = parse_size(lag->second);
  if (!max_lag) return false;  // unparseable: no limit
  // 128-bit so that a huge ?lag= cannot overflow into "lagging".
  return static_cast<__int128>(leader_optime) > static_cast<__int128>(replayed_location(doc)) + *max_lag;
}

// Every tag_<key>=<value> parameter must match the node's tag.
bool tags_match(const std::map<std::string, std::string>& query, const ha::NodeView& view) {
  static const std::string prefix = "tag_";
  for (const auto& [key, value] : query) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string tag = key.substr(prefix.size());
    if (!view.tags.is_object()) return false;
    auto it = view.tags.find(tag);
    if (it == view.tags.end() || it->is_null()) return false;
    if (tag_as_string(*it) != value) return false;
  }
  return true;
}

struct RoleCodes {
  int leader = kUnavailable;
  int primary = kUnavailable;
  int standby_leader = kUnavailable;
  int replica = kUnavailable;
};

RoleCodes role_codes(const std::map<std::string, std::string>& query, const ha::NodeView& view,
                     const nlohmann::json& doc) {
  const std::string role = doc.value("role", "");
  const std::string state = doc.value("state", "");
  const bool noloadbalance =
      view.tags.is_object() && view.tags.contains("noloadbalance") && truthy(view.tags["noloadbalance"]);
  RoleCodes c;
  c.replica =
      !noloadbalance && !is_lagging(query, view, doc) && role == "replica" && state == "running" ? kOk : kUnavailable;
  if (!view.cluster && view.paused) {
    // Without a DCS view in maintenance mode, trust what PostgreSQL says about itself.
    c.leader = role == "master" || role == "primary" || role == "standby_leader" ? kOk : kUnavailable;
    c.primary = role == "master" || role == "primary" ? kOk : kUnavailable;
    c.standby_leader = role == "standby_leader" ? kOk : kUnavailable;
  } else if (view.is_leader) {
    c.leader = kOk;
    if (is_standby_cluster(view)) {
      c.primary = c.replica = kUnavailable;
      c.standby_leader = role == "replica" || role == "standby_leader" ? kOk : kUnavailable;
    } else {
      c.primary = kOk;
    }
  }
  return c;
}

}  // namespace

int health_status_code(const std::string& raw_path, const std::map<std::string, std::string>& query,
                       const ha::NodeView& view, const nlohmann::json& doc) {
  const std::string path = raw_path == "/" ? "/primary" : raw_path;
  const RoleCodes c = role_codes(query, view, doc);
  const bool primary_or_standby_leader = c.primary == kOk || c.standby_leader == kOk;

  int code = kUnavailable;
  bool ignore_tags = false;
  if (contains(path, "standby_leader") || contains(path, "standby-leader")) {
    code = c.standby_leader;
    ignore_tags = true;
  } else if (contains(path, "leader")) {
    code = c.leader;
    ignore_tags = true;
  } else if (contains(path, "master") || contains(path, "primary") || contains(path, "read-write")) {
    code = c.primary;
    ignore_tags = true;
  } else if (contains(path, "replica")) {
    code = c.replica;
  } else if (contains(path, "read-only") && !contains(path, "sync")) {
    code = primary_or_standby_leader ? kOk : c.replica;
  } else if (contains(path, "health")) {
    code = doc.value("state", "") == "running" ? kOk : kUnavailable;
  } else if (view.cluster) {
    const bool sync = is_sync_standby(view, doc);
    if ((path == "/sync" || path == "/synchronous") && sync) {
      code = c.replica;
    } else if ((path == "/async" || path == "/asynchronous") && !sync) {
      code = c.replica;
    } else if (path == "/read-only-sync" || path == "/read-only-synchronous") {
      if (primary_or_standby_leader) {
        code = kOk;
      } else if (sync) {
        code = c.replica;
      }
    }
  }
  if (!ignore_tags && code == kOk && !tags_match(query, view)) code = kUnavailable;
  return code;
}

int liveness_status_code(const ha::NodeView& view, double now_epoch) {
  // A stuck loop on the primary is noticed after one TTL (the leader key expires then);
  // replicas get twice as long since nothing depends on them as urgently.
  const bool primary = view.is_leader || ((view.role == "master" || view.role == "primary") && view.state == "running");
  const double threshold = static_cast<double>(view.ttl) * (primary ? 1 : 2);
  return view.paused || now_epoch <= view.next_scheduled_run + threshold ? kOk : kUnavailable;
}

int readiness_status_code(const ha::NodeView& view, double now_epoch) {
  if (view.is_leader) return kOk;
  const bool fresh_dcs_view = view.dcs_last_seen > 0 && view.dcs_last_seen + view.ttl >= now_epoch;
  return view.state == "running" && fresh_dcs_view ? kOk : kUnavailable;
}

std::optional<int64_t> parse_size(const std::string& text) {
  // Mirrors Patroni's parse_int(value, 'B'): strtol with base 0, falling back to strtod for
  // fractions, then a PostgreSQL memory unit (1024-based), rounded half to even.
  static const std::regex hex_re("^[-+]?0x[0-9a-fA-F]+");
  static const std::regex oct_re("^[-+]?0[0-7]*");
  static const std::regex dec_re("^[-+]?(0|[1-9][0-9]*)");
  static const std::regex dbl_re("^[-+]?[0-9]*\\.?[0-9]+([eE][-+]?[0-9]+)?");
  static const char* kSpace = " \t\n\r\f\v";

  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string::npos) return std::nullopt;
  const std::string value = text.substr(first, text.find_last_not_of(kSpace) - first + 1);

  long double number = 0;
  bool have_number = false;
  std::string unit = value;
  std::smatch m;
  const std::pair<const std::regex*, int> bases[] = {{&hex_re, 16}, {&oct_re, 8}, {&dec_re, 10}};
  for (const auto& [re, base] : bases) {
    if (!std::regex_search(value, m, *re)) continue;
    std::string digits = m.str(0);
    bool negative = false;
    if (digits[0] == '-' || digits[0] == '+') {
      negative = digits[0] == '-';
      digits.erase(0, 1);
    }
    if (base == 16) digits.erase(0, 2);
    long double v = 0;
    for (char ch : digits) {
      const int d = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : std::tolower(ch) - 'a' + 10;
      v = v * base + d;
    }
    number = negative ? -v : v;
    have_number = true;
    unit = value.substr(static_cast<size_t>(m.length(0)));
    break;
  }
  if ((!have_number && unit.starts_with(".")) ||
      (!unit.empty() && (unit[0] == '.' || unit[0] == 'e' || unit[0] == 'E'))) {
    have_number = false;
    unit = value;
    if (std::regex_search(value, m, dbl_re)) {
      number = std::strtold(m.str(0).c_str(), nullptr);
      have_number = true;
      unit = value.substr(static_cast<size_t>(m.length(0)));
    }
  }
  if (!have_number) return std::nullopt;

  const auto ufirst = unit.find_first_not_of(kSpace);
  unit = ufirst == std::string::npos ? "" : unit.substr(ufirst, unit.find_last_not_of(kSpace) - ufirst + 1);
  long double multiplier = 1;
  if (unit.empty() || unit == "B") {
    multiplier = 1;
  } else if (unit == "kB") {
    multiplier = 1024.0L;
  } else if (unit == "MB") {
    multiplier = 1024.0L * 1024;
  } else if (unit == "GB") {
    multiplier = 1024.0L * 1024 * 1024;
  } else if (unit == "TB") {
    multiplier = 1024.0L * 1024 * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  const long double bytes = std::nearbyint(number * multiplier);
  if (!std::isfinite(bytes) || bytes > static_cast<long double>(std::numeric_limits<int64_t>::max()) ||
      bytes < static_cast<long double>(std::numeric_limits<int64_t>::min())) {
    return std::nullopt;
  }
  return static_cast<int64_t>(bytes);
}

}  // namespace pgwarden::api
