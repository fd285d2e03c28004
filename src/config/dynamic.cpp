// The DCS-held (dynamic) configuration and how it combines with the local file, following
// Patroni 3.0.2's Config._safe_copy_dynamic_configuration / _build_effective_configuration
// and ConfigHandler.CMDLINE_OPTIONS.
#include <algorithm>
#include <cctype>
#include <functional>
#include <limits>
#include <tuple>
#include <regex>

#include "config_internal.hpp"

namespace pgwarden::config {
namespace {

using detail::field;
using detail::join_path;
using nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void read_int_field(const json& obj, const std::string& key, const std::string& path, int64_t min, int64_t max,
                    int64_t& out, std::vector<std::string>* errors) {
  const json* v = field(obj, key);
  if (!v) return;
  auto i = v->is_boolean() ? std::nullopt : detail::py_int(*v);
  if (!i) {
    detail::expected(path, "an integer", *v, errors);
  } else if (*i < min || *i > max) {
    detail::expected(path, "an integer between " + std::to_string(min) + " and " + std::to_string(max), *v, errors);
  } else {
    out = *i;
  }
}

void read_int_field(const json& obj, const std::string& key, const std::string& path, int64_t min, int& out,
                    std::vector<std::string>* errors) {
  int64_t v = out;
  read_int_field(obj, key, path, min, std::numeric_limits<int>::max(), v, errors);
  out = static_cast<int>(v);
}

void read_bool_field(const json& obj, const std::string& key, const std::string& path, bool& out,
                     std::vector<std::string>* errors) {
  if (const json* v = field(obj, key))
    if (auto b = detail::read_bool(*v, path, errors)) out = *b;
}

// Patroni's parse_int(value, 'MB') for wal_keep_size: a number (MB) or a number with a unit.
std::optional<int64_t> megabytes(const json& v) {
  if (auto i = detail::py_int(v)) return i;
  if (!v.is_string()) return std::nullopt;
  static const std::regex re("\\s*([0-9]+)\\s*(kB|MB|GB|TB)\\s*");
  std::smatch m;
  std::string s = v.get<std::string>();
  if (!std::regex_match(s, m, re)) return std::nullopt;
  int64_t n = std::stoll(m[1].str());
  std::string unit = m[2].str();
  if (unit == "kB") return n / 1024;
  if (unit == "GB") return n * 1024;
  if (unit == "TB") return n * 1024 * 1024;
  return n;
}

struct CmdlineOption {
  const char* name;
  json default_value;  // null: no default (set from the local config or not at all)
  std::function<bool(const json&)> from_dcs_ok;
};

std::function<bool(const json&)> at_least(int64_t min) {
  return [min](const json& v) {
    auto i = detail::py_int(v);
    return i && *i >= min;
  };
}

const std::vector<CmdlineOption>& cmdline_options() {
  static const auto never = [](const json&) { return false; };
  static const std::vector<CmdlineOption> opts = {
      {"listen_addresses", nullptr, never},
      {"port", nullptr, never},
      {"cluster_name", nullptr, never},
      {"wal_level", "hot_standby",
       [](const json& v) {
         if (!v.is_string()) return false;
         auto s = lower(v.get<std::string>());
         return s == "hot_standby" || s == "replica" || s == "logical";
       }},
      {"hot_standby", "on", never},
      {"max_connections", 100, at_least(25)},
      {"max_wal_senders", 10, at_least(3)},
      {"wal_keep_segments", nullptr, at_least(1)},
      {"wal_keep_size", nullptr, [](const json& v) { auto mb = megabytes(v); return mb && *mb >= 16; }},
      {"max_prepared_transactions", 0, at_least(0)},
      {"max_locks_per_transaction", 64, at_least(32)},
      {"track_commit_timestamp", "off", [](const json& v) { return detail::py_bool(v).has_value(); }},
      {"max_replication_slots", 10, at_least(4)},
      {"max_worker_processes", 8, at_least(2)},
      {"wal_log_hints", "on", never},
  };
  return opts;
}

const CmdlineOption* find_cmdline(const std::string& name) {
  auto n = lower(name);
  for (const auto& o : cmdline_options())
    if (n == o.name) return &o;
  return nullptr;
}

// PostgreSQL parameter names are case-insensitive: setting one replaces any spelling of it.
void set_param(json& params, const std::string& name, const json& value) {
  auto n = lower(name);
  for (auto it = params.begin(); it != params.end();) {
    if (lower(it.key()) == n) it = params.erase(it);
    else ++it;
  }
  params[name] = value;
}

}  // namespace

namespace detail {

DynamicConfig merge_dynamic_at(const DynamicConfig& base, const json& dcs, const std::string& prefix,
                               std::vector<std::string>* errors) {
  DynamicConfig d = base;
  if (!dcs.is_object()) {
    if (!dcs.is_null()) expected(prefix.empty() ? "config" : prefix, "a mapping", dcs, errors);
    return d;
  }
  auto path = [&](const std::string& key) { return join_path(prefix, key); };
  read_int_field(dcs, "ttl", path("ttl"), 1, d.ttl, errors);
  read_int_field(dcs, "loop_wait", path("loop_wait"), 1, d.loop_wait, errors);
  read_int_field(dcs, "retry_timeout", path("retry_timeout"), 1, d.retry_timeout, errors);
  read_int_field(dcs, "maximum_lag_on_failover", path("maximum_lag_on_failover"), std::numeric_limits<int64_t>::min(),
                 std::numeric_limits<int64_t>::max(), d.maximum_lag_on_failover, errors);
  // The master_* spellings count only when the primary_* one is absent (Patroni's __REMAP_KEYS).
  for (auto [key, old, out] : {std::tuple{"primary_start_timeout", "master_start_timeout", &d.primary_start_timeout},
                               {"primary_stop_timeout", "master_stop_timeout", &d.primary_stop_timeout}}) {
    const char* use = field(dcs, key) ? key : old;
    read_int_field(dcs, use, path(use), 0, *out, errors);
  }
  read_bool_field(dcs, "synchronous_mode", path("synchronous_mode"), d.synchronous_mode, errors);
  read_bool_field(dcs, "synchronous_mode_strict", path("synchronous_mode_strict"), d.synchronous_mode_strict, errors);
  read_bool_field(dcs, "check_timeline", path("check_timeline"), d.check_timeline, errors);
  read_bool_field(dcs, "pause", path("pause"), d.pause, errors);
  read_bool_field(dcs, "use_pg_rewind", path("use_pg_rewind"), d.use_pg_rewind, errors);
  read_bool_field(dcs, "use_slots", path("use_slots"), d.use_slots, errors);

  const json* pg = field(dcs, "postgresql");
  if (!pg) return d;
  auto pgpath = path("postgresql");
  if (!pg->is_object()) {
    expected(pgpath, "a mapping", *pg, errors);
    return d;
  }
  read_bool_field(*pg, "use_pg_rewind", join_path(pgpath, "use_pg_rewind"), d.use_pg_rewind, errors);
  read_bool_field(*pg, "use_slots", join_path(pgpath, "use_slots"), d.use_slots, errors);
  if (const json* params = field(*pg, "parameters")) {
    if (!params->is_object()) {
      expected(join_path(pgpath, "parameters"), "a mapping", *params, errors);
    } else {
      json kept = json::object();
      for (const auto& [k, v] : params->items()) {
        if (v.is_object() || v.is_array()) expected(join_path(pgpath, "parameters." + k), "a scalar", v, errors);
        else if (!v.is_null()) kept[k] = v;
      }
      d.postgresql_parameters = kept;
    }
  }
  if (const json* hba = field(*pg, "pg_hba"))
    if (auto l = read_string_list(*hba, join_path(pgpath, "pg_hba"), errors)) d.pg_hba = *l;
  if (const json* rc = field(*pg, "recovery_conf")) {
    if (!rc->is_object()) expected(join_path(pgpath, "recovery_conf"), "a mapping", *rc, errors);
    else d.recovery_conf = *rc;
  }
  return d;
}

}  // namespace detail

DynamicConfig merge_dynamic(const DynamicConfig& base, const nlohmann::json& dcs_config,
                            std::vector<std::string>* errors) {
  try {
    return detail::merge_dynamic_at(base, dcs_config, "", errors);
  } catch (const std::exception& e) {
    if (errors) errors->push_back(std::string("config: ") + e.what());
    return base;
  }
}

nlohmann::json effective_parameters(const Config& cfg, const DynamicConfig& dyn) {
  json params = json::object();
  for (const auto& o : cmdline_options())
    if (!o.default_value.is_null()) params[o.name] = o.default_value;
  // Command-line options come from the DCS only, and only when they pass Patroni's checks.
  for (const auto& [k, v] : dyn.postgresql_parameters.items()) {
    if (const auto* o = find_cmdline(k)) {
      if (o->from_dcs_ok(v)) params[o->name] = v;
    } else {
      set_param(params, k, v);
    }
  }
  if (cfg.postgresql.parameters.is_object()) {
    for (const auto& [k, v] : cfg.postgresql.parameters.items())
      if (!find_cmdline(k) && !v.is_null()) set_param(params, k, v);
  }
  if (params["wal_level"].is_string() && lower(params["wal_level"].get<std::string>()) == "hot_standby")
    params["wal_level"] = "replica";  // PostgreSQL >= 9.6 spelling
  // Patroni passes these as strings on the postmaster command line.
  params["listen_addresses"] = cfg.postgresql.listen.host;
  params["port"] = std::to_string(cfg.postgresql.listen.port);
  params["cluster_name"] = cfg.scope;
  return params;
}

}  // namespace pgwarden::config
