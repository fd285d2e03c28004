// The timescaledb-single chart's `patroni:` values plus the environment its StatefulSet sets
// must load unchanged.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "config_test_util.hpp"

namespace pgwarden::config {
namespace {

using nlohmann::json;
using testing::joined;

const char* const kValuesPath = "/work/shared/reference/timescaledb-single-values.yaml";

// yaml-cpp's emitter drops the quotes of 'on' / '0750' (turning strings into a bool and an
// octal int on reload); Helm's toYaml keeps them quoted, so re-emit quoted scalars quoted.
void emit(YAML::Emitter& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (const auto& kv : node) {
        out << YAML::Key << kv.first.Scalar() << YAML::Value;
        emit(out, kv.second);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) emit(out, item);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") out << YAML::DoubleQuoted << node.Scalar();
      else out << node.Scalar();
      break;
    default:
      out << YAML::Null;
  }
}

std::string chart_patroni_yaml() {
  YAML::Node values = YAML::LoadFile(kValuesPath);
  YAML::Emitter out;
  emit(out, values["patroni"]);
  return out.c_str();
}

util::Environment chart_env() {
  return {
      {"HOME", "/home/postgres"},
      {"PATH", "/usr/bin:/bin"},
      {"PATRONICTL_CONFIG_FILE", "/etc/timescaledb/patroni.yaml"},
      {"PATRONI_admin_OPTIONS", "createrole,createdb"},
      {"PATRONI_admin_PASSWORD", "adminsecret"},
      {"PATRONI_SUPERUSER_PASSWORD", "supersecret"},
      {"PATRONI_REPLICATION_USERNAME", "standby"},
      {"PATRONI_REPLICATION_PASSWORD", "replsecret"},
      {"PATRONI_KUBERNETES_POD_IP", "10.42.0.17"},
      {"PATRONI_POSTGRESQL_CONNECT_ADDRESS", "10.42.0.17:5432"},
      {"PATRONI_RESTAPI_CONNECT_ADDRESS", "10.42.0.17:8008"},
      {"PATRONI_KUBERNETES_PORTS", R"([{"name": "postgresql", "port": 5432}])"},
      {"PATRONI_NAME", "mydb-timescaledb-0"},
      {"PATRONI_POSTGRESQL_DATA_DIR", "/var/lib/postgresql/data"},
      {"PATRONI_KUBERNETES_NAMESPACE", "tsdb"},
      {"PATRONI_KUBERNETES_LABELS", "{app: mydb-timescaledb, cluster-name: mydb, release: mydb}"},
      {"PATRONI_SCOPE", "mydb"},
      {"PATRONI_POSTGRESQL_PGPASS", "/home/postgres/.pgpass.patroni"},
      {"PGDATA", "/var/lib/postgresql/data"},
  };
}

TEST(ChartConfig, LoadsWithoutErrorsOrWarnings) {
  auto res = load_from_string(chart_patroni_yaml(), chart_env(), "/etc/timescaledb/patroni.yaml");
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_TRUE(res.errors.empty());
  EXPECT_TRUE(res.warnings.empty()) << joined(res.warnings);
}

TEST(ChartConfig, TypedValues) {
  auto res = load_from_string(chart_patroni_yaml(), chart_env(), "/etc/timescaledb/patroni.yaml");
  ASSERT_TRUE(res.config) << joined(res.errors);
  const Config& c = *res.config;
  EXPECT_EQ(c.scope, "mydb");
  EXPECT_EQ(c.name, "mydb-timescaledb-0");
  EXPECT_EQ(c.namespace_, "/service/");
  EXPECT_EQ(c.log_level, "WARNING");

  EXPECT_EQ(c.restapi.listen.host, "0.0.0.0");
  EXPECT_EQ(c.restapi.listen.port, 8008);
  EXPECT_EQ(c.restapi.connect_address, "10.42.0.17:8008");

  const auto& k = c.kubernetes;
  EXPECT_TRUE(k.enabled);
  EXPECT_EQ(k.namespace_, "tsdb");
  EXPECT_EQ(k.labels, (std::map<std::string, std::string>{
                          {"app", "mydb-timescaledb"}, {"cluster-name", "mydb"}, {"release", "mydb"}}));
  EXPECT_EQ(k.scope_label, "cluster-name");
  EXPECT_EQ(k.role_label, "role");
  EXPECT_TRUE(k.use_endpoints);
  EXPECT_EQ(k.pod_ip, "10.42.0.17");
  EXPECT_EQ(k.ports, json::parse(R"([{"name": "postgresql", "port": 5432}])"));
  EXPECT_TRUE(c.etcd3.hosts.empty());

  const auto& pg = c.postgresql;
  EXPECT_EQ(pg.listen.host, "0.0.0.0");
  EXPECT_EQ(pg.listen.port, 5432);
  EXPECT_EQ(pg.listen_addresses, std::vector<std::string>{"0.0.0.0"});
  EXPECT_EQ(pg.connect_address, "10.42.0.17:5432");
  EXPECT_EQ(pg.data_dir, "/var/lib/postgresql/data");
  EXPECT_EQ(pg.config_dir, "/var/lib/postgresql/data");
  EXPECT_EQ(pg.pgpass, "/home/postgres/.pgpass.patroni");
  EXPECT_TRUE(pg.use_unix_socket);
  EXPECT_EQ(pg.superuser.username, "postgres");
  EXPECT_EQ(pg.superuser.password, "supersecret");
  EXPECT_EQ(pg.replication.username, "standby");
  EXPECT_EQ(pg.replication.password, "replsecret");
  EXPECT_EQ(pg.create_replica_methods, (std::vector<std::string>{"pgbackrest", "basebackup"}));
  ASSERT_TRUE(pg.replica_methods.count("pgbackrest"));
  const auto& pgbr = pg.replica_methods.at("pgbackrest");
  EXPECT_EQ(pgbr.command, "/etc/timescaledb/scripts/pgbackrest_restore.sh");
  EXPECT_TRUE(pgbr.keep_data);
  EXPECT_TRUE(pgbr.no_params);
  EXPECT_TRUE(pgbr.no_master);
  EXPECT_EQ(pg.basebackup, json::parse(R"([{"waldir": "/var/lib/postgresql/wal/pg_wal"}])"));
  EXPECT_EQ(pg.recovery_conf["restore_command"], "/etc/timescaledb/scripts/pgbackrest_archive_get.sh %f \"%p\"");
  EXPECT_EQ(pg.callbacks.size(), 5u);
  for (const char* action : {"on_role_change", "on_start", "on_reload", "on_restart", "on_stop"})
    EXPECT_EQ(pg.callbacks.at(action), "/etc/timescaledb/scripts/patroni_callback.sh") << action;
  ASSERT_EQ(pg.pg_hba.size(), 7u);
  EXPECT_EQ(pg.pg_hba[0].rfind("local     all             postgres", 0), 0u);

  const auto& b = c.bootstrap;
  EXPECT_EQ(b.method, "restore_or_initdb");
  ASSERT_TRUE(b.methods.count("restore_or_initdb"));
  const auto& m = b.methods.at("restore_or_initdb");
  EXPECT_EQ(m.command, "/etc/timescaledb/scripts/restore_or_initdb.sh --encoding=UTF8 --locale=C.UTF-8\n");
  EXPECT_TRUE(m.keep_existing_recovery_conf);
  EXPECT_FALSE(m.no_params);
  EXPECT_EQ(b.post_init, "/etc/timescaledb/scripts/post_init.sh");
  ASSERT_EQ(b.users.size(), 1u);
  EXPECT_EQ(b.users[0].name, "admin");
  EXPECT_EQ(b.users[0].password, "adminsecret");
  EXPECT_EQ(b.users[0].options, (std::vector<std::string>{"createrole", "createdb"}));

  const auto& d = c.dynamic;
  EXPECT_EQ(d.loop_wait, 10);
  EXPECT_EQ(d.ttl, 30);
  EXPECT_EQ(d.retry_timeout, 10);
  EXPECT_EQ(d.maximum_lag_on_failover, 33554432);
  EXPECT_TRUE(d.use_pg_rewind);
  EXPECT_TRUE(d.use_slots);
  const auto& params = d.postgresql_parameters;
  EXPECT_EQ(params["archive_mode"], "on");
  EXPECT_EQ(params["archive_timeout"], "1800s");
  EXPECT_DOUBLE_EQ(params["autovacuum_analyze_scale_factor"].get<double>(), 0.02);
  EXPECT_EQ(params["max_connections"], 100);
  EXPECT_EQ(params["unix_socket_permissions"], "0750");
  EXPECT_EQ(params["wal_level"], "hot_standby");
  EXPECT_EQ(params["log_line_prefix"], "%t [%p]: [%c-%l] %u@%d,app=%a [%e] ");
  EXPECT_EQ(params["timescaledb.passfile"], "../.pgpass");
  EXPECT_EQ(b.dcs["maximum_lag_on_failover"], 33554432);

  auto eff = effective_parameters(c, d);
  EXPECT_EQ(eff["wal_level"], "replica");
  EXPECT_EQ(eff["max_prepared_transactions"], 150);
  EXPECT_EQ(eff["max_connections"], 100);
  EXPECT_EQ(eff["max_worker_processes"], 8);
  EXPECT_EQ(eff["cluster_name"], "mydb");
  EXPECT_EQ(eff["listen_addresses"], "0.0.0.0");
  EXPECT_EQ(eff["port"], "5432");
  EXPECT_EQ(eff["shared_preload_libraries"], "timescaledb,pg_stat_statements");
}

TEST(ChartConfig, SecretsDoNotLeakIntoMessagesOfABrokenChartConfig) {
  auto env = chart_env();
  env.erase("PATRONI_SCOPE");
  auto res = load_from_string(chart_patroni_yaml() + "\nbogus_key: 1\n", env, "p.yaml");
  EXPECT_FALSE(res.config);
  EXPECT_TRUE(testing::has_line(res.errors, "scope: missing"));
  EXPECT_TRUE(testing::has_line(res.warnings, "unknown configuration key: bogus_key"));
  for (const auto& line : res.errors) {
    for (const char* s : {"adminsecret", "supersecret", "replsecret"}) EXPECT_EQ(line.find(s), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace pgwarden::config
