#pragma once
// Patroni-format configuration: the YAML file plus PATRONI_* environment overrides, turned
// into a typed, validated Config. A real Patroni config file loads unchanged; unknown keys
// produce warnings, invalid values produce one error line each (key path + what was
// expected) and no Config.
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/util/process.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::config {

struct HostPort {
  std::string host;  // may be empty or "*" / "0.0.0.0" / "::"
  int port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

struct Credentials {
  std::string username;
  std::string password;                       // never logged
  std::map<std::string, std::string> extra;   // sslmode, sslcert, ... (libpq keywords)
};

struct BootstrapUser {
  std::string name;
  std::string password;                       // never logged
  std::vector<std::string> options;           // e.g. createrole, createdb
};

// The HA timing and rules that can come from the DCS (`config` key) and are overridden there.
struct DynamicConfig {
  int ttl = 30;
  int loop_wait = 10;
  int retry_timeout = 10;
  int64_t maximum_lag_on_failover = 1048576;
  int primary_start_timeout = 300;
  int primary_stop_timeout = 0;
  bool synchronous_mode = false;
  bool synchronous_mode_strict = false;
  bool check_timeline = false;
  bool pause = false;
  bool use_pg_rewind = false;
  bool use_slots = true;
  nlohmann::json postgresql_parameters = nlohmann::json::object();  // name -> scalar
  std::vector<std::string> pg_hba;          // empty: not set in DCS
  nlohmann::json recovery_conf = nlohmann::json::object();
};

struct EtcdConfig {
  std::vector<HostPort> hosts;  // from etcd3.hosts / host / PATRONI_ETCD3_HOSTS
  std::string protocol = "http";
  std::string username, password;  // never logged
  std::string cacert, cert, key;
};

struct KubernetesConfig {
  bool enabled = false;  // a `kubernetes:` section is present
  std::string namespace_ = "default";
  std::map<std::string, std::string> labels;
  std::string scope_label = "cluster-name";
  std::string role_label = "role";
  bool use_endpoints = false;
  std::string pod_ip;
  nlohmann::json ports = nlohmann::json::array();  // [{name, port}]
  bool bypass_api_service = false;
  std::string context;  // kubeconfig context outside a pod; empty: current-context
  std::string cacert;   // CA bundle for the API server (PATRONI_KUBERNETES_CACERT wins)
  std::vector<int> retriable_http_codes;  // retried besides 500, 503, 504
};

struct RestApiConfig {
  HostPort listen{"", 8008};
  std::string connect_address;  // host:port; defaults to listen
  std::string username, password;  // basic auth for unsafe methods; never logged
  std::string certfile, keyfile, keyfile_password, cafile, verify_client, ciphers;
};

struct CustomMethod {
  std::string name;
  std::string command;
  bool no_params = false;
  bool keep_data = false;
  bool no_master = false;
  bool keep_existing_recovery_conf = false;
  nlohmann::json extra = nlohmann::json::object();  // other keys → --key=value
};

struct PostgresqlConfig {
  HostPort listen{"127.0.0.1", 5432};
  std::vector<std::string> listen_addresses;  // from listen's host part, comma separated
  std::string connect_address;                // host:port
  std::string proxy_address;                  // host:port published as proxy_url; may be empty
  std::string data_dir;
  std::string config_dir;                     // defaults to data_dir
  std::string bin_dir;                        // empty: programs from PATH
  std::string pgpass;                         // defaults to ~/.pgpass.patroni
  std::string custom_conf;
  bool use_unix_socket = false;
  bool use_unix_socket_repl = false;
  // Local postgresql.use_pg_rewind; when set it wins over the dynamic value (Patroni: local
  // postgresql.* overrides the DCS, except use_slots and the command-line parameters).
  std::optional<bool> use_pg_rewind;
  Credentials superuser{"postgres", "", {}};
  Credentials replication{"replicator", "", {}};
  Credentials rewind;
  nlohmann::json parameters = nlohmann::json::object();  // local parameters
  std::vector<std::string> pg_hba;
  std::vector<std::string> pg_ident;
  std::map<std::string, std::string> callbacks;  // action -> command line
  std::vector<std::string> create_replica_methods{"basebackup"};
  std::map<std::string, CustomMethod> replica_methods;  // sections named by create_replica_methods
  nlohmann::json basebackup = nlohmann::json::array();
  nlohmann::json recovery_conf = nlohmann::json::object();
  bool remove_data_directory_on_rewind_failure = false;
  bool remove_data_directory_on_diverged_timelines = false;
  int pg_ctl_timeout = 60;
};

struct BootstrapConfig {
  std::string method = "initdb";          // "initdb" or the name of a custom section
  std::map<std::string, CustomMethod> methods;
  nlohmann::json initdb = nlohmann::json::array();  // list of "opt" / {opt: value}
  std::string post_init;
  std::vector<BootstrapUser> users;
  nlohmann::json dcs = nlohmann::json::object();  // written to the DCS on initialisation
};

// pgwarden's own `backup_api` section (Patroni has none): the pgBackRest backup API of the
// timescaledb-single chart's backup CronJobs, served by the daemon itself.
struct BackupApiConfig {
  bool enabled = false;    // the section has a listen address (or PGWARDEN_BACKUP_API_LISTEN)
  HostPort listen{"0.0.0.0", 8081};
  std::string stanza;      // empty: $PGBACKREST_STANZA, else "poddb" (resolved by the backup module)
  std::string command = "pgbackrest";  // the program run for backups
};

struct Config {
  std::string scope;
  std::string namespace_ = "/service/";
  std::string name;
  std::string log_level = "INFO";
  std::map<std::string, std::string> tags;  // values as strings ("true"/"false" for bools)
  nlohmann::json tags_json = nlohmann::json::object();  // as published
  RestApiConfig restapi;
  EtcdConfig etcd3;
  KubernetesConfig kubernetes;
  PostgresqlConfig postgresql;
  BootstrapConfig bootstrap;
  BackupApiConfig backup_api;
  DynamicConfig dynamic;  // from bootstrap.dcs until the DCS says otherwise
  std::string source_path;
  nlohmann::json raw = nlohmann::json::object();  // the merged document, for pass-through
};

struct LoadResult {
  std::optional<Config> config;       // set only when there are no errors
  std::vector<std::string> errors;    // "key.path: expected ..., got ..." one per problem
  std::vector<std::string> warnings;  // unknown keys etc.
};

// Loads YAML text (already read from a file) and applies the environment overrides.
LoadResult load_from_string(const std::string& yaml_text, const util::Environment& env,
                            const std::string& source_name = "<config>");

// Reads the file; a missing or unreadable file is one error line.
LoadResult load_from_file(const std::string& path, const util::Environment& env);

// Applies a DCS `config` document (JSON) on top of `base`: only the dynamic keys that
// Patroni takes from the DCS. Bad values are reported in `errors` and ignored.
DynamicConfig merge_dynamic(const DynamicConfig& base, const nlohmann::json& dcs_config,
                            std::vector<std::string>* errors = nullptr);

// The effective PostgreSQL parameters: dynamic parameters overridden by local ones, except
// the command-line options which come from the DCS only.
nlohmann::json effective_parameters(const Config& cfg, const DynamicConfig& dyn);

}  // namespace pgwarden::config
