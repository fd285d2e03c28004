// The keys Patroni knows (validator.py's schema plus the documented settings). Used only
// for warnings: users pass arbitrary Patroni config through the chart, so an unknown key
// must never stop the daemon, but a typo deserves a line in the log.
#include <algorithm>

#include "config_internal.hpp"

namespace pgwarden::config::detail {
namespace {

// 1 = a known key whose value is not checked further (a leaf, or a free-form mapping such as
// postgresql.parameters or tags). A mapping = a section whose own keys are checked.
const char* const kKnownKeys = R"({
  "name": 1, "scope": 1, "namespace": 1,
  "log": {"type": 1, "level": 1, "traceback_level": 1, "format": 1, "dateformat": 1, "static_fields": 1,
          "max_queue_size": 1, "dir": 1, "file_num": 1, "file_size": 1, "mode": 1, "loggers": 1},
  "restapi": {"listen": 1, "connect_address": 1, "proxy_address": 1,
              "authentication": {"username": 1, "password": 1},
              "certfile": 1, "keyfile": 1, "keyfile_password": 1, "cafile": 1, "ciphers": 1,
              "verify_client": 1, "allowlist": 1, "allowlist_include_members": 1,
              "http_extra_headers": 1, "https_extra_headers": 1, "request_queue_size": 1,
              "server_tokens": 1, "auth": 1},
  "ctl": {"insecure": 1, "cacert": 1, "certfile": 1, "keyfile": 1, "keyfile_password": 1,
          "authentication": {"username": 1, "password": 1}},
  "citus": {"group": 1, "database": 1},
  "backup_api": {"listen": 1, "stanza": 1, "command": 1},
  "raft": 1, "consul": 1, "etcd": 1, "exhibitor": 1, "zookeeper": 1,
  "etcd3": {"host": 1, "hosts": 1, "port": 1, "url": 1, "proxy": 1, "srv": 1, "srv_suffix": 1,
            "protocol": 1, "username": 1, "password": 1, "cacert": 1, "cert": 1, "key": 1,
            "key_password": 1, "use_proxies": 1, "retry_timeout": 1},
  "kubernetes": {"namespace": 1, "labels": 1, "scope_label": 1, "role_label": 1, "use_endpoints": 1,
                 "pod_ip": 1, "ports": 1, "bypass_api_service": 1, "retriable_http_codes": 1,
                 "context": 1, "cacert": 1, "leader_label_value": 1, "follower_label_value": 1,
                 "standby_leader_label_value": 1, "tmp_role_label": 1},
  "bootstrap": {"dcs": 1, "method": 1, "initdb": 1, "pg_hba": 1, "users": 1, "post_init": 1,
                "post_bootstrap": 1},
  "postgresql": {"listen": 1, "connect_address": 1, "proxy_address": 1, "data_dir": 1, "config_dir": 1,
                 "bin_dir": 1, "bin_name": 1, "pgpass": 1, "custom_conf": 1, "parameters": 1,
                 "pg_hba": 1, "pg_ident": 1, "pg_ctl_timeout": 1, "use_pg_rewind": 1, "use_slots": 1,
                 "use_unix_socket": 1, "use_unix_socket_repl": 1, "callbacks": 1,
                 "create_replica_methods": 1, "replica_method": 1, "basebackup": 1, "recovery_conf": 1,
                 "remove_data_directory_on_rewind_failure": 1,
                 "remove_data_directory_on_diverged_timelines": 1, "config_base_name": 1,
                 "retry_timeout": 1, "name": 1, "scope": 1, "pg_rewind": 1, "superuser": 1,
                 "replication": 1, "before_stop": 1, "pre_promote": 1,
                 "authentication": {"superuser": 1, "replication": 1, "rewind": 1}},
  "watchdog": {"mode": 1, "device": 1, "safety_margin": 1},
  "tags": 1,
  "ttl": 1, "loop_wait": 1, "retry_timeout": 1, "maximum_lag_on_failover": 1,
  "maximum_lag_on_syncnode": 1, "max_timelines_history": 1, "check_timeline": 1,
  "primary_start_timeout": 1, "primary_stop_timeout": 1, "master_start_timeout": 1,
  "master_stop_timeout": 1, "synchronous_mode": 1, "synchronous_mode_strict": 1,
  "synchronous_node_count": 1, "failsafe_mode": 1, "standby_cluster": 1, "slots": 1,
  "ignore_slots": 1, "member_slots_ttl": 1, "use_pg_rewind": 1, "use_slots": 1, "pause": 1
})";

const json& known_keys() {
  static const json k = json::parse(kKnownKeys);
  return k;
}

const std::vector<std::string> kAuthKeys = {"username",  "password",    "sslmode", "sslcert",
                                            "sslkey",    "sslpassword", "sslrootcert", "sslcrl",
                                            "sslcrldir", "gssencmode",  "channel_binding"};

void warn(const std::string& path, std::vector<std::string>* warnings) {
  if (warnings) warnings->push_back("unknown configuration key: " + path);
}

void check(const json& doc, const json& known, const std::string& prefix, std::vector<std::string>* warnings) {
  for (const auto& [key, value] : doc.items()) {
    auto path = join_path(prefix, key);
    auto it = known.find(key);
    if (it == known.end()) {
      warn(path, warnings);
    } else if (it->is_object() && value.is_object()) {
      check(value, *it, path, warnings);
    }
  }
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

void warn_unknown_keys(const json& doc, std::vector<std::string>* warnings) {
  if (!doc.is_object()) return;
  const json& known = known_keys();
  for (const auto& [key, value] : doc.items()) {
    auto it = known.find(key);
    if (it == known.end()) {
      warn(key, warnings);
      continue;
    }
    if (!it->is_object() || !value.is_object()) continue;
    for (const auto& [sub, subvalue] : value.items()) {
      auto path = key + "." + sub;
      auto kit = it->find(sub);
      if (kit != it->end()) {
        if (key == "postgresql" && sub == "authentication" && subvalue.is_object()) {
          for (const auto& [user, creds] : subvalue.items()) {
            if (!kit->contains(user)) {
              warn(path + "." + user, warnings);
              continue;
            }
            if (!creds.is_object()) continue;
            for (const auto& [param, _] : creds.items())
              if (!contains(kAuthKeys, param)) warn(path + "." + user + "." + param, warnings);
          }
        } else if (kit->is_object() && subvalue.is_object()) {
          check(subvalue, *kit, path, warnings);
        }
        continue;
      }
      // Custom bootstrap methods and replica methods are sections named by the user.
      if (key == "bootstrap" && subvalue.is_object()) continue;
      if (key == "postgresql" && subvalue.is_object()) {
        const json* methods = field(value, "create_replica_methods");
        if (methods && methods->is_array() && std::find(methods->begin(), methods->end(), json(sub)) != methods->end())
          continue;
        if (const json* rm = field(value, "replica_method"); rm && rm->is_string() && *rm == sub) continue;
      }
      warn(path, warnings);
    }
  }
}

}  // namespace pgwarden::config::detail
