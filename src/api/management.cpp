// GET /cluster, GET /metrics and PATCH /config logic, after Patroni 3.0.2's
// utils.cluster_as_json, api.do_GET_metrics and utils.patch_config.
#include "pgwarden/api/management.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>

#include "pgwarden/config/config.hpp"

namespace pgwarden::api {

namespace {

using nlohmann::json;

// Python's repr(float): the shortest text that reads back the same, always with a point.
std::string py_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string py_repr(const json& v);

// Python's str() of a value loaded by json.loads (what patch_config compares).
std::string py_str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return py_repr(v);
}

std::string py_repr(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "None";
    case json::value_t::boolean:
      return v.get<bool>() ? "True" : "False";
    case json::value_t::number_integer:
      return std::to_string(v.get<int64_t>());
    case json::value_t::number_unsigned:
      return std::to_string(v.get<uint64_t>());
    case json::value_t::number_float:
      return py_float(v.get<double>());
    case json::value_t::string: {
      // Python prefers single quotes unless the text holds one and no double quote.
      const std::string s = v.get<std::string>();
      const char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
      std::string out(1, q);
      for (char c : s) {
        if (c == q || c == '\\') out += '\\';
        out += c;
      }
      return out + q;
    }
    case json::value_t::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& e : v) {
        if (!first) out += ", ";
        first = false;
        out += py_repr(e);
      }
      return out + "]";
    }
    case json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        if (!first) out += ", ";
        first = false;
        out += py_repr(json(k)) + ": " + py_repr(e);
      }
      return out + "}";
    }
    default:
      return v.dump();
  }
}

// Python truthiness of a JSON value.
bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number_unsigned()) return v.get<uint64_t>() != 0;
  if (v.is_number_float()) return v.get<double>() != 0.0;
  if (v.is_string()) return !v.get<std::string>().empty();
  return !v.empty();
}

bool is_standby_cluster(const json& standby) {
  if (!standby.is_object()) return false;
  for (const char* k : {"host", "port", "restore_command"}) {
    auto it = standby.find(k);
    if (it != standby.end() && truthy(*it)) return true;
  }
  return false;
}

std::vector<std::string> sync_members(const dcs::Cluster& c) {
  std::vector<std::string> out;
  if (!c.sync || !c.sync->is_object()) return out;
  auto it = c.sync->find("sync_standby");
  if (it == c.sync->end() || !it->is_string()) return out;
  std::stringstream ss(it->get<std::string>());
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto first = item.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) continue;
    out.push_back(item.substr(first, item.find_last_not_of(" \t\r\n") - first + 1));
  }
  return out;
}

// host and port of a member, as Patroni's Member.conn_kwargs (urlparse of conn_url, port
// 5432 by default, or the conn_kwargs the member published).
void add_host_port(json& out, const dcs::Member& m) {
  json host, port;
  auto kw = m.data.find("conn_kwargs");
  if (kw != m.data.end() && kw->is_object() && !kw->empty()) {
    host = kw->value("host", json());
    port = kw->value("port", json());
  } else {
    const std::string url = m.conn_url();
    if (url.empty()) return;
    static const std::regex re(R"(^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)(?::([^/?#]*))?)");
    std::smatch mm;
    if (!std::regex_search(url, mm, re)) return;
    std::string h = mm[1].str();
    if (h.size() >= 2 && h.front() == '[') h = h.substr(1, h.size() - 2);
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!h.empty()) host = h;
    const std::string p = mm[2].str();
    if (p.empty()) {
      port = 5432;
    } else if (std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); }) && p.size() <= 5) {
      port = std::stoi(p);
    }
  }
  if (!truthy(host)) return;
  out["host"] = host;
  if (!truthy(port)) return;
  if (port.is_number_integer()) {
    out["port"] = port;
  } else if (port.is_string()) {
    const std::string p = port.get<std::string>();
    int value = 0;
    auto r = std::from_chars(p.data(), p.data() + p.size(), value);
    if (r.ec == std::errc() && r.ptr == p.data() + p.size()) out["port"] = value;
  }
}

struct Timestamp {
  int64_t days = 0;       // since 1970-01-01
  int64_t seconds = 0;    // of the day
  int micros = 0;
  int fraction_digits = 0;
  bool has_zone = false;
  int zone_seconds = 0;   // east of UTC
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

// Howard Hinnant's days_from_civil.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<Timestamp> parse_timestamp(const std::string& text) {
  static const std::regex re(
      R"(^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, re)) return std::nullopt;
  Timestamp t;
  t.year = std::stoi(m[1].str());
  t.month = std::stoi(m[2].str());
  t.day = std::stoi(m[3].str());
  t.hour = m[4].matched ? std::stoi(m[4].str()) : 0;
  t.minute = m[5].matched ? std::stoi(m[5].str()) : 0;
  t.second = m[6].matched ? std::stoi(m[6].str()) : 0;
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > 31 || t.hour > 23 || t.minute > 59 || t.second > 59)
    return std::nullopt;
  if (m[7].matched) {
    std::string frac = m[7].str().substr(0, 6);
    t.fraction_digits = static_cast<int>(frac.size());
    frac.resize(6, '0');
    t.micros = std::stoi(frac);
  }
  if (m[8].matched) {
    t.has_zone = true;
    const std::string z = m[8].str();
    if (z != "Z" && z != "z") {
      std::string digits;
      for (char c : z.substr(1))
        if (c != ':') digits += c;
      int secs = std::stoi(digits.substr(0, 2)) * 3600;
      if (digits.size() >= 4) secs += std::stoi(digits.substr(2, 2)) * 60;
      if (digits.size() >= 6) secs += std::stoi(digits.substr(4, 2));
      t.zone_seconds = z[0] == '-' ? -secs : secs;
    }
  }
  t.days = days_from_civil(t.year, static_cast<unsigned>(t.month), static_cast<unsigned>(t.day));
  t.seconds = t.hour * 3600 + t.minute * 60 + t.second;
  return t;
}

// Prometheus label values escape backslash, double quote and newline.
std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number_text(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_float()) return py_float(v.get<double>());
  return "0";
}

const json& xlog_field(const json& doc, const char* key) {
  static const json kNull;
  auto x = doc.find("xlog");
  if (x == doc.end() || !x->is_object()) return kNull;
  auto it = x->find(key);
  return it == x->end() ? kNull : *it;
}

std::string epoch_text(const json& v) {
  if (!v.is_string()) return "0";
  auto e = timestamp_to_epoch(v.get<std::string>());
  return e ? py_float(*e) : "0";
}

}  // namespace

std::optional<double> timestamp_to_epoch(const std::string& text) {
  auto t = parse_timestamp(text);
  if (!t) return std::nullopt;
  const int64_t whole = t->days * 86400 + t->seconds - t->zone_seconds;
  return static_cast<double>(whole) + t->micros / 1e6;
}

std::string python_isoformat(const std::string& text) {
  auto t = parse_timestamp(text);
  if (!t) return text;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", t->year, t->month, t->day, t->hour, t->minute,
                t->second);
  std::string out = buf;
  if (t->micros != 0) {
    std::snprintf(buf, sizeof buf, ".%06d", t->micros);
    out += buf;
  }
  if (t->has_zone) {
    const int z = std::abs(t->zone_seconds);
    std::snprintf(buf, sizeof buf, "%c%02d:%02d", t->zone_seconds < 0 ? '-' : '+', z / 3600, z / 60 % 60);
    out += buf;
    if (z % 60 != 0) {
      std::snprintf(buf, sizeof buf, ":%02d", z % 60);
      out += buf;
    }
  }
  return out;
}

json cluster_as_json(const dcs::Cluster& cluster, const std::string& scope) {
  const std::string leader_name = cluster.leader ? cluster.leader->name : std::string();
  const int64_t cluster_lsn = cluster.last_lsn;
  const json config =
      cluster.config && cluster.config->is_object() && cluster.config_index != 0 ? *cluster.config : json::object();
  const bool standby = config.contains("standby_cluster") && is_standby_cluster(config["standby_cluster"]);
  const std::vector<std::string> sync = sync_members(cluster);

  json members = json::array();
  for (const auto& m : cluster.members) {
    const bool is_leader = !leader_name.empty() && m.name == leader_name;
    std::string role = "replica";
    if (is_leader) role = standby ? "standby_leader" : "leader";
    else if (std::find(sync.begin(), sync.end(), m.name) != sync.end()) role = "sync_standby";

    json member = {{"name", m.name},
                   {"role", role},
                   {"state", m.data.value("state", json(""))},
                   {"api_url", m.data.value("api_url", json())}};
    add_host_port(member, m);
    for (const char* k : {"timeline", "pending_restart", "scheduled_restart", "tags"}) {
      auto it = m.data.find(k);
      if (it != m.data.end()) member[k] = *it;
    }
    if (!is_leader) {
      auto lsn = m.data.find("xlog_location");
      if (lsn == m.data.end() || lsn->is_null() || !lsn->is_number()) {
        member["lag"] = "unknown";
      } else {
        const int64_t at = lsn->is_number_float() ? static_cast<int64_t>(lsn->get<double>()) : lsn->get<int64_t>();
        member["lag"] = cluster_lsn >= at ? cluster_lsn - at : 0;
      }
    }
    members.push_back(std::move(member));
  }
  std::sort(members.begin(), members.end(),
            [](const json& a, const json& b) { return a["name"].get<std::string>() < b["name"].get<std::string>(); });

  json ret = {{"members", std::move(members)}};
  if (!scope.empty()) ret["scope"] = scope;
  if (cluster.is_paused()) ret["pause"] = true;
  if (cluster.failover && cluster.failover->is_object()) {
    const json& f = *cluster.failover;
    auto at = f.find("scheduled_at");
    if (at != f.end() && at->is_string() && !at->get<std::string>().empty()) {
      json s = {{"at", python_isoformat(at->get<std::string>())}};
      auto from = f.find("leader");
      if (from != f.end() && truthy(*from)) s["from"] = *from;
      auto to = f.find("member");
      if (to == f.end() || !truthy(*to)) to = f.find("candidate");
      if (to != f.end() && truthy(*to)) s["to"] = *to;
      ret["scheduled_switchover"] = std::move(s);
    }
  }
  return ret;
}

namespace {
// Appends one Prometheus metric (HELP, TYPE, and the sample labelled with the member's scope
// and name) to `out` per call.
auto metric_writer(const ha::NodeView& view, std::string& out) {
  std::string labels = "{scope=\"" + label_value(view.scope) + "\",name=\"" + label_value(view.name) + "\"}";
  return [labels = std::move(labels), &out](const char* name, const char* type, const char* help,
                                           const std::string& value) {
    out += std::string("# HELP ") + name + " " + help + "\n";
    out += std::string("# TYPE ") + name + " " + type + "\n";
    out += std::string(name) + labels + " " + value + "\n";
  };
}
}  // namespace

std::string render_metrics(const ha::NodeView& view, const json& doc) {
  std::string out;
  auto metric = metric_writer(view, out);
  auto flag = [](bool b) { return std::string(b ? "1" : "0"); };

  std::string version = "0";
  if (doc.contains("patroni") && doc["patroni"].is_object()) {
    std::string v = doc["patroni"].value("version", "");
    std::stringstream ss(v);
    std::string part;
    version.clear();
    while (std::getline(ss, part, '.')) version += part.size() < 2 ? std::string(2 - part.size(), '0') + part : part;
    if (version.empty()) version = "0";
  }
  const std::string role = doc.value("role", "");
  const bool primary = role == "master" || role == "primary";

  metric("patroni_version", "gauge", "Patroni semver without periods.", version);
  metric("patroni_postgres_running", "gauge", "Value is 1 if Postgres is running, 0 otherwise.",
         flag(doc.value("state", "") == "running"));
  metric("patroni_postmaster_start_time", "gauge", "Epoch seconds since Postgres started.",
         epoch_text(doc.value("postmaster_start_time", json())));
  metric("patroni_master", "gauge", "Value is 1 if this node is the leader, 0 otherwise.", flag(primary));
  metric("patroni_primary", "gauge", "Value is 1 if this node is the leader, 0 otherwise.", flag(primary));
  metric("patroni_xlog_location", "counter",
         "Current location of the Postgres transaction log, 0 if this node is not the leader.",
         number_text(xlog_field(doc, "location")));
  metric("patroni_standby_leader", "gauge", "Value is 1 if this node is the standby_leader, 0 otherwise.",
         flag(role == "standby_leader"));
  metric("patroni_replica", "gauge", "Value is 1 if this node is a replica, 0 otherwise.", flag(role == "replica"));
  metric("patroni_sync_standby", "gauge", "Value is 1 if this node is a sync standby replica, 0 otherwise.",
         flag(doc.value("sync_standby", false)));
  metric("patroni_xlog_received_location", "counter",
         "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
         number_text(xlog_field(doc, "received_location")));
  metric("patroni_xlog_replayed_location", "counter",
         "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
         number_text(xlog_field(doc, "replayed_location")));
  metric("patroni_xlog_replayed_timestamp", "gauge",
         "Current timestamp of the replayed Postgres transaction log, 0 if null.",
         epoch_text(xlog_field(doc, "replayed_timestamp")));
  const json& paused = xlog_field(doc, "paused");
  metric("patroni_xlog_paused", "gauge", "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
         flag(paused.is_boolean() && paused.get<bool>()));
  metric("patroni_postgres_server_version", "gauge", "Version of Postgres (if running), 0 otherwise.",
         number_text(doc.value("server_version", json(0))));
  metric("patroni_cluster_unlocked", "gauge", "Value is 1 if the cluster is unlocked, 0 if locked.",
         flag(doc.value("cluster_unlocked", false)));
  metric("patroni_failsafe_mode_is_active", "gauge", "Value is 1 if the cluster is unlocked, 0 if locked.",
         flag(doc.value("failsafe_mode_is_active", false)));
  metric("patroni_postgres_timeline", "counter", "Postgres timeline of this node (if running), 0 otherwise.",
         number_text(doc.value("timeline", json(0))));
  metric("patroni_dcs_last_seen", "gauge", "Epoch timestamp when DCS was last contacted successfully by Patroni.",
         number_text(doc.value("dcs_last_seen", json(0))));
  metric("patroni_pending_restart", "gauge", "Value is 1 if the node needs a restart, 0 otherwise.",
         flag(doc.value("pending_restart", false)));
  metric("patroni_is_paused", "gauge", "Value is 1 if auto failover is disabled, 0 otherwise.", flag(view.paused));
  return out;
}

std::string render_archiver_metrics(const ha::NodeView& view, const postgres::PgState* pg) {
  std::string out;
  auto metric = metric_writer(view, out);
  metric("pgwarden_postgres_archiver_archived_count", "counter",
         "Number of WAL files successfully archived (pg_stat_archiver), 0 if Postgres is not running.",
         std::to_string(pg ? pg->archiver_archived_count : 0));
  metric("pgwarden_postgres_archiver_failed_count", "counter",
         "Number of failed attempts to archive WAL files (pg_stat_archiver), 0 if Postgres is not running.",
         std::to_string(pg ? pg->archiver_failed_count : 0));
  metric("pgwarden_postgres_archiver_last_failed_time", "gauge",
         "Epoch seconds of the last failed archival attempt, 0 if none.",
         pg && pg->archiver_last_failed_time > 0 ? py_float(pg->archiver_last_failed_time) : "0");
  return out;
}

bool patch_config(json& config, const json& patch) {
  bool changed = false;
  if (!config.is_object() || !patch.is_object()) return false;
  for (const auto& [name, value] : patch.items()) {
    auto it = config.find(name);
    if (value.is_null()) {
      if (it != config.end()) {
        // Python: `config.pop(name, None) is not None`: dropping a stored null is no change.
        if (!it->is_null()) changed = true;
        config.erase(it);
      }
    } else if (it != config.end()) {
      if (value.is_object()) {
        if (it->is_object()) {
          if (patch_config(*it, value)) changed = true;
        } else {
          *it = value;
          changed = true;
        }
      } else if (py_str(*it) != py_str(value)) {
        *it = value;
        changed = true;
      }
    } else {
      config[name] = value;
      changed = true;
    }
  }
  return changed;
}

std::vector<std::string> validate_dynamic_config(const json& doc) {
  std::vector<std::string> errors;
  if (!doc.is_object()) {
    errors.push_back("the configuration must be a JSON object");
    return errors;
  }
  config::merge_dynamic(config::DynamicConfig{}, doc, &errors);
  return errors;
}

}  // namespace pgwarden::api
