// PATRONI_* environment variables, mapped exactly as Patroni 3.0.2's
// Config._build_environment_configuration does. The order of the passes matters: a variable
// taken by an earlier pass is not seen by a later one (PATRONI_RESTAPI_PASSWORD is the REST
// API's password, not a bootstrap user called RESTAPI).
#include <algorithm>

#include "config_internal.hpp"

namespace pgwarden::config::detail {
namespace {

const std::string kPrefix = "PATRONI_";

const std::vector<std::string> kAuthParams = {"username",  "password",    "sslmode", "sslcert",
                                              "sslkey",    "sslpassword", "sslrootcert", "sslcrl",
                                              "sslcrldir", "gssencmode",  "channel_binding"};

const std::vector<std::string> kDcsSuffixes = {
    "HOST", "HOSTS", "PORT", "USE_PROXIES", "PROTOCOL", "SRV", "SRV_SUFFIX", "URL", "PROXY", "CACERT", "CERT",
    "KEY", "VERIFY", "TOKEN", "CHECKS", "DC", "CONSISTENCY", "REGISTER_SERVICE", "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME", "SERVICE_TAGS", "NAMESPACE", "CONTEXT", "USE_ENDPOINTS", "SCOPE_LABEL",
    "ROLE_LABEL", "POD_IP", "PORTS", "LABELS", "BYPASS_API_SERVICE", "RETRIABLE_HTTP_CODES", "KEY_PASSWORD",
    "USE_SSL", "SET_ACLS", "GROUP", "DATABASE"};

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

class EnvReader {
 public:
  explicit EnvReader(const util::Environment& env) {
    for (const auto& [k, v] : env)
      if (k.rfind(kPrefix, 0) == 0) vars_[k] = v;
  }
  // Removes and returns PATRONI_<NAME>; nullopt when unset.
  std::optional<std::string> pop(const std::string& name) { return pop_exact(kPrefix + upper(name)); }
  std::optional<std::string> pop_exact(const std::string& var) {
    auto it = vars_.find(var);
    if (it == vars_.end()) return std::nullopt;
    std::string v = it->second;
    vars_.erase(it);
    return v;
  }
  bool has(const std::string& var) const { return vars_.count(var) > 0; }
  void set(const std::string& var, const std::string& value) { vars_[var] = value; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : vars_) out.push_back(kv.first);
    return out;
  }

 private:
  util::Environment vars_;
};

// Patroni's _parse_list: "a,b" or "[a, b]" or "- a\n- b" through YAML.
std::optional<json> parse_list(std::string value) {
  std::string t = trim(value);
  if (!(t.rfind("-", 0) == 0 || value.find('[') != std::string::npos)) value = "[" + value + "]";
  auto parsed = parse_yaml(value, nullptr);
  if (!parsed) return std::nullopt;
  return parsed;
}

// Patroni's _parse_dict: "{a: b}" or "a: b, c: d" through YAML.
std::optional<json> parse_dict(std::string value) {
  if (trim(value).rfind("{", 0) != 0) value = "{" + value + "}";
  return parse_yaml(value, nullptr);
}

void warn_unparsable(const std::string& var, const std::string& what, std::vector<std::string>* warnings) {
  if (warnings) warnings->push_back(var + ": cannot parse the value as " + what + "; ignored");
}

json get_auth(EnvReader& r, const std::string& name, const std::vector<std::string>& params) {
  json out = json::object();
  for (const auto& p : params)
    if (auto v = r.pop(name + "_" + p); v && !v->empty()) out[p] = *v;
  return out;
}

}  // namespace

json env_configuration(const util::Environment& env, std::vector<std::string>* warnings) {
  EnvReader r(env);
  json ret = json::object();

  for (const char* param : {"name", "namespace", "scope"})
    if (auto v = r.pop(param); v && !v->empty()) ret[param] = *v;

  // Old spellings of the log settings are honoured unless the new one is set.
  for (auto [name, old] : {std::pair{"level", "loglevel"}, {"format", "logformat"}, {"dateformat", "log_datefmt"}}) {
    auto v = r.pop(old);
    std::string var = kPrefix + "LOG_" + upper(name);
    if (v && !v->empty() && !r.has(var)) r.set(var, *v);
  }

  auto set_section = [&](const std::string& section, const std::vector<std::string>& params) {
    for (const auto& p : params)
      if (auto v = r.pop(section + "_" + p); v && !v->empty()) ret[section][p] = *v;
  };
  set_section("restapi", {"listen", "connect_address", "certfile", "keyfile", "keyfile_password", "cafile", "ciphers",
                          "verify_client", "http_extra_headers", "https_extra_headers", "allowlist",
                          "allowlist_include_members"});
  set_section("ctl", {"insecure", "cacert", "certfile", "keyfile", "keyfile_password"});
  set_section("postgresql", {"listen", "connect_address", "proxy_address", "config_dir", "data_dir", "pgpass", "bin_dir"});
  set_section("log", {"level", "traceback_level", "format", "dateformat", "max_queue_size", "dir", "file_size",
                      "file_num", "loggers"});
  set_section("raft", {"data_dir", "self_addr", "partner_addrs", "password", "bind_addr"});

  auto take = [&](const std::string& first, const std::string& second) -> std::optional<json> {
    if (!ret.contains(first) || !ret[first].contains(second)) return std::nullopt;
    json v = ret[first][second];
    ret[first].erase(second);
    return v;
  };
  for (auto [first, second] : {std::pair{"restapi", "allowlist_include_members"}, {"ctl", "insecure"}})
    if (auto v = take(first, second))
      if (auto b = py_bool(*v)) ret[first][second] = *b;
  for (const char* second : {"max_queue_size", "file_size", "file_num"})
    if (auto v = take("log", second))
      if (auto i = py_int(*v)) ret["log"][second] = *i;
  for (auto [first, second] : {std::pair{"raft", "partner_addrs"}, {"restapi", "allowlist"}}) {
    if (auto v = take(first, second)) {
      auto list = parse_list(v->get<std::string>());
      if (!list) warn_unparsable(kPrefix + upper(first) + "_" + upper(second), "a YAML list", warnings);
      else if (truthy(*list)) ret[first][second] = *list;
    }
  }
  for (auto [first, second] :
       {std::pair{"restapi", "http_extra_headers"}, {"restapi", "https_extra_headers"}, {"log", "loggers"}}) {
    if (auto v = take(first, second)) {
      auto dict = parse_dict(v->get<std::string>());
      if (!dict) warn_unparsable(kPrefix + upper(first) + "_" + upper(second), "a YAML mapping", warnings);
      else if (truthy(*dict)) ret[first][second] = *dict;
    }
  }

  if (json auth = get_auth(r, "restapi", {"username", "password"}); !auth.empty())
    ret["restapi"]["authentication"] = auth;

  json authentication = json::object();
  for (const char* user_type : {"replication", "superuser", "rewind"})
    if (json entry = get_auth(r, user_type, kAuthParams); !entry.empty()) authentication[user_type] = entry;
  if (!authentication.empty()) ret["postgresql"]["authentication"] = authentication;

  // PATRONI_<DCS>_<SUFFIX>: the name is everything up to the first '_'.
  for (const auto& var : r.names()) {
    std::string rest = var.substr(kPrefix.size());
    auto us = rest.find('_');
    if (us == std::string::npos || us == 0) continue;
    std::string name = rest.substr(0, us), suffix = rest.substr(us + 1);
    if (std::find(kDcsSuffixes.begin(), kDcsSuffixes.end(), suffix) == kDcsSuffixes.end()) continue;
    std::string value = *r.pop_exact(var);
    json out = value;
    bool set = true;
    if (name == "CITUS") {
      if (suffix == "GROUP") {
        auto i = py_int(json(value));
        set = i.has_value();
        if (set) out = *i;
      } else if (suffix != "DATABASE") {
        continue;
      }
    } else if (suffix == "PORT") {
      if (!value.empty()) {
        auto i = py_int(json(value));
        set = i.has_value();
        if (set) out = *i;
      }
    } else if (suffix == "HOSTS" || suffix == "PORTS" || suffix == "CHECKS" || suffix == "SERVICE_TAGS" ||
               suffix == "RETRIABLE_HTTP_CODES") {
      if (!value.empty()) {
        auto list = parse_list(value);
        if (!list || list->is_null()) warn_unparsable(var, "a YAML list", warnings);
        set = list && !list->is_null();
        if (set) out = *list;
      }
    } else if (suffix == "LABELS" || suffix == "SET_ACLS") {
      auto dict = parse_dict(value);
      if (!dict || dict->is_null()) warn_unparsable(var, "a YAML mapping", warnings);
      set = dict && !dict->is_null();
      if (set) out = *dict;
    } else if (suffix == "USE_PROXIES" || suffix == "REGISTER_SERVICE" || suffix == "USE_ENDPOINTS" ||
               suffix == "BYPASS_API_SERVICE" || suffix == "VERIFY") {
      auto b = py_bool(json(value));
      set = b.has_value();
      if (set) out = *b;
    }
    if (set) ret[lower(name)][lower(suffix)] = out;
  }
  for (const char* dcs : {"etcd", "etcd3"})
    if (ret.contains(dcs)) ret[dcs].update(get_auth(r, dcs, {"username", "password"}));

  // PATRONI_<user>_PASSWORD (+ _OPTIONS): the name is everything up to the last '_' and keeps
  // its case, so PATRONI_admin_PASSWORD creates the role "admin".
  json users = json::object();
  for (const auto& var : r.names()) {
    std::string rest = var.substr(kPrefix.size());
    auto us = rest.rfind('_');
    if (us == std::string::npos || us == 0 || rest.substr(us + 1) != "PASSWORD") continue;
    auto password = r.pop_exact(var);
    if (!password || password->empty()) continue;
    std::string name = rest.substr(0, us);
    users[name] = {{"password", *password}};
    std::string options_var = var.substr(0, var.size() - 9) + "_OPTIONS";
    if (auto options = r.pop_exact(options_var); options && !options->empty()) {
      auto list = parse_list(*options);
      if (!list) warn_unparsable(options_var, "a YAML list", warnings);
      else if (truthy(*list)) users[name]["options"] = *list;
    }
  }
  if (!users.empty()) ret["bootstrap"]["users"] = users;

  // pgwarden's own section has pgwarden's own variables (Patroni would not know them).
  for (const char* param : {"listen", "stanza"}) {
    auto it = env.find("PGWARDEN_BACKUP_API_" + upper(param));
    if (it != env.end() && !it->second.empty()) ret["backup_api"][param] = it->second;
  }
  return ret;
}

void patch_config(json& config, const json& data) {
  if (!data.is_object()) return;
  if (!config.is_object()) config = json::object();
  for (const auto& [name, value] : data.items()) {
    if (value.is_null()) {
      config.erase(name);
    } else if (value.is_object() && config.contains(name) && config[name].is_object()) {
      patch_config(config[name], value);
    } else {
      config[name] = value;
    }
  }
}

}  // namespace pgwarden::config::detail
