// The `postgresql:` section of the typed Config.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "config_internal.hpp"

namespace pgwarden::config::detail {
namespace {

const std::vector<std::string> kAuthExtra = {"sslmode",   "sslcert",    "sslkey",         "sslpassword",
                                             "sslrootcert", "sslcrl",   "sslcrldir",      "gssencmode",
                                             "channel_binding"};

// pg_basebackup options Patroni sets itself and refuses from the config.
const std::vector<std::string> kBasebackupForbidden = {"pgdata",   "format",   "wal-method", "xlog-method",
                                                       "gzip",     "version",  "compress",   "dbname",
                                                       "host",     "port",     "username",   "password"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string home_dir(const util::Environment& env) {
  if (auto it = env.find("HOME"); it != env.end() && !it->second.empty()) return it->second;
  if (passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return "/";
}

void fill_credentials(const json& auth, const std::string& user, Credentials& out, Problems& p) {
  const json* c = field(auth, user);
  if (!c) return;
  auto path = "postgresql.authentication." + user;
  if (!c->is_object()) {
    expected(path, "a mapping", *c, &p.errors);
    return;
  }
  read_into(*c, "username", path, out.username, &p.errors);
  read_into(*c, "password", path, out.password, &p.errors);
  for (const auto& [k, v] : c->items()) {
    if (k == "username" || k == "password" || v.is_null() || !contains(kAuthExtra, k)) continue;
    if (auto s = read_string(v, join_path(path, k), &p.errors)) out.extra[k] = *s;
  }
}

void fill_listen(const json& pg, PostgresqlConfig& out, Problems& p) {
  const char* what = "host:port with a port between 1 and 65535";
  const json* l = field(pg, "listen");
  if (!l) {
    p.errors.push_back(std::string("postgresql.listen: missing (expected ") + what + ")");
    return;
  }
  auto hp = l->is_string() ? split_host_port(l->get<std::string>(), std::nullopt) : std::nullopt;
  if (!hp) {
    expected("postgresql.listen", what, *l, &p.errors);
    return;
  }
  out.listen = *hp;
  out.listen_addresses.clear();
  std::stringstream ss(hp->host);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.listen_addresses.push_back(item.substr(b, e - b + 1));
  }
}

void read_address(const json& pg, const std::string& key, std::string& out, Problems& p) {
  const json* v = field(pg, key);
  if (!v) return;
  if (!v->is_string() || !split_host_port(v->get<std::string>(), std::nullopt))
    expected("postgresql." + key, "host:port with a port between 1 and 65535", *v, &p.errors);
  else
    out = v->get<std::string>();
}

void fill_replica_methods(const json& pg, PostgresqlConfig& out, Problems& p) {
  if (const json* m = field(pg, "create_replica_methods")) {
    if (auto list = read_string_list(*m, "postgresql.create_replica_methods", &p.errors)) out.create_replica_methods = *list;
  }
  for (const auto& name : out.create_replica_methods) {
    if (name == "basebackup") continue;
    auto path = "postgresql." + name;
    const json* section = field(pg, name);
    const json* command = section ? field(*section, "command") : nullptr;
    if (!section || !section->is_object() || !command) {
      p.errors.push_back("postgresql.create_replica_methods: names \"" + name + "\" but there is no " + path +
                         " section with a command");
      continue;
    }
    CustomMethod cm;
    cm.name = name;
    read_into(*section, "command", path, cm.command, &p.errors);
    read_into(*section, "no_params", path, cm.no_params, &p.errors);
    read_into(*section, "keep_data", path, cm.keep_data, &p.errors);
    read_into(*section, "no_master", path, cm.no_master, &p.errors);
    bool no_leader = false;
    read_into(*section, "no_leader", path, no_leader, &p.errors);
    cm.no_master = cm.no_master || no_leader;
    for (const auto& [k, v] : section->items())
      if (k != "command" && k != "no_params" && k != "keep_data" && k != "no_master" && k != "no_leader")
        cm.extra[k] = v;
    out.replica_methods[name] = cm;
  }
}

void fill_basebackup(const json& pg, PostgresqlConfig& out, Problems& p) {
  const json* bb = field(pg, "basebackup");
  if (!bb) return;
  auto check_key = [&](const std::string& key, const std::string& path) {
    if (contains(kBasebackupForbidden, key))
      p.errors.push_back(path + ": the pg_basebackup option " + key + " is set by pgwarden and cannot be configured");
  };
  if (bb->is_object()) {
    for (const auto& [k, v] : bb->items()) check_key(k, "postgresql.basebackup." + k);
  } else if (bb->is_array()) {
    for (size_t i = 0; i < bb->size(); ++i) {
      const json& opt = (*bb)[i];
      auto path = "postgresql.basebackup[" + std::to_string(i) + "]";
      if (opt.is_string()) {
        check_key(opt.get<std::string>(), path);
      } else if (opt.is_object() && opt.size() == 1 && (opt.begin()->is_string() || opt.begin()->is_number())) {
        check_key(opt.begin().key(), path);
      } else {
        expected(path, "an option name or a single option: value mapping", opt, &p.errors);
      }
    }
  } else {
    expected("postgresql.basebackup", "a list or a mapping of pg_basebackup options", *bb, &p.errors);
    return;
  }
  out.basebackup = *bb;
}

void fill_maps(const json& pg, PostgresqlConfig& out, Problems& p) {
  if (const json* params = field(pg, "parameters")) {
    if (!params->is_object()) {
      expected("postgresql.parameters", "a mapping", *params, &p.errors);
    } else {
      for (const auto& [k, v] : params->items())
        if (v.is_object() || v.is_array()) expected("postgresql.parameters." + k, "a scalar", v, &p.errors);
      if (const json* usd = field(*params, "unix_socket_directories"); usd && (!usd->is_string() || usd->get<std::string>().empty()))
        expected("postgresql.parameters.unix_socket_directories", "a non-empty string", *usd, &p.errors);
      out.parameters = *params;
    }
  }
  if (const json* hba = field(pg, "pg_hba"))
    if (auto l = read_string_list(*hba, "postgresql.pg_hba", &p.errors)) out.pg_hba = *l;
  if (const json* ident = field(pg, "pg_ident"))
    if (auto l = read_string_list(*ident, "postgresql.pg_ident", &p.errors)) out.pg_ident = *l;
  if (const json* cbs = field(pg, "callbacks")) {
    if (!cbs->is_object()) {
      expected("postgresql.callbacks", "a mapping of action: command", *cbs, &p.errors);
    } else {
      for (const auto& [action, cmd] : cbs->items()) {
        if (cmd.is_null()) continue;
        if (!cmd.is_string()) expected("postgresql.callbacks." + action, "a string", cmd, &p.errors);
        else out.callbacks[action] = cmd.get<std::string>();
      }
    }
  }
  if (const json* rc = field(pg, "recovery_conf")) {
    if (!rc->is_object()) expected("postgresql.recovery_conf", "a mapping", *rc, &p.errors);
    else out.recovery_conf = *rc;
  }
}

}  // namespace

void fill_postgresql(const json& doc, const util::Environment& env, Config& cfg, Problems& p) {
  auto& out = cfg.postgresql;
  const json* pg = field(doc, "postgresql");
  if (!pg || !pg->is_object()) {
    if (pg) expected("postgresql", "a mapping", *pg, &p.errors);
    p.errors.push_back("postgresql.data_dir: missing (expected a non-empty string)");
    p.errors.push_back("postgresql.listen: missing (expected host:port with a port between 1 and 65535)");
    out.pgpass = home_dir(env) + "/.pgpass.patroni";
    return;
  }
  fill_listen(*pg, out, p);
  read_address(*pg, "connect_address", out.connect_address, p);
  read_address(*pg, "proxy_address", out.proxy_address, p);

  if (const json* dd = field(*pg, "data_dir")) {
    auto s = read_string(*dd, "postgresql.data_dir", &p.errors);
    if (s && s->empty()) expected("postgresql.data_dir", "a non-empty string", *dd, &p.errors);
    else if (s) out.data_dir = *s;
  } else {
    p.errors.push_back("postgresql.data_dir: missing (expected a non-empty string)");
  }
  read_into(*pg, "config_dir", "postgresql", out.config_dir, &p.errors);
  if (out.config_dir.empty()) out.config_dir = out.data_dir;
  read_into(*pg, "bin_dir", "postgresql", out.bin_dir, &p.errors);
  read_into(*pg, "pgpass", "postgresql", out.pgpass, &p.errors);
  if (out.pgpass.empty()) out.pgpass = home_dir(env) + "/.pgpass.patroni";
  read_into(*pg, "custom_conf", "postgresql", out.custom_conf, &p.errors);
  read_into(*pg, "use_unix_socket", "postgresql", out.use_unix_socket, &p.errors);
  read_into(*pg, "use_unix_socket_repl", "postgresql", out.use_unix_socket_repl, &p.errors);
  read_into(*pg, "remove_data_directory_on_rewind_failure", "postgresql",
            out.remove_data_directory_on_rewind_failure, &p.errors);
  read_into(*pg, "remove_data_directory_on_diverged_timelines", "postgresql",
            out.remove_data_directory_on_diverged_timelines, &p.errors);
  read_into(*pg, "pg_ctl_timeout", "postgresql", out.pg_ctl_timeout, &p.errors);
  if (field(*pg, "use_pg_rewind")) {
    bool rewind = false;
    read_into(*pg, "use_pg_rewind", "postgresql", rewind, &p.errors);
    out.use_pg_rewind = rewind;
  }

  if (const json* auth = field(*pg, "authentication")) {
    if (!auth->is_object()) {
      expected("postgresql.authentication", "a mapping", *auth, &p.errors);
    } else {
      fill_credentials(*auth, "superuser", out.superuser, p);
      fill_credentials(*auth, "replication", out.replication, p);
      fill_credentials(*auth, "rewind", out.rewind, p);
    }
  }
  fill_maps(*pg, out, p);
  fill_replica_methods(*pg, out, p);
  fill_basebackup(*pg, out, p);
}

}  // namespace pgwarden::config::detail
