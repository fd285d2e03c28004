// PATRONI_* environment overrides, as Patroni's _build_environment_configuration maps them.
#include <gtest/gtest.h>

#include "config_test_util.hpp"

namespace pgwarden::config {
namespace {

using nlohmann::json;
using testing::joined;
using testing::load_patched;

TEST(ConfigEnv, EnvWinsOverFile) {
  util::Environment env = {
      {"PATRONI_NAME", "envname"},
      {"PATRONI_SCOPE", "envscope"},
      {"PATRONI_NAMESPACE", "envns"},
      {"PATRONI_LOG_LEVEL", "DEBUG"},
      {"PATRONI_RESTAPI_LISTEN", "0.0.0.0:8010"},
      {"PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.5:8010"},
      {"PATRONI_RESTAPI_CERTFILE", "/c"},
      {"PATRONI_RESTAPI_KEYFILE", "/k"},
      {"PATRONI_RESTAPI_KEYFILE_PASSWORD", "kp"},
      {"PATRONI_RESTAPI_CAFILE", "/ca"},
      {"PATRONI_RESTAPI_CIPHERS", "HIGH"},
      {"PATRONI_RESTAPI_VERIFY_CLIENT", "required"},
      {"PATRONI_RESTAPI_USERNAME", "apiuser"},
      {"PATRONI_RESTAPI_PASSWORD", "apipw"},
      {"PATRONI_POSTGRESQL_LISTEN", "*:5440"},
      {"PATRONI_POSTGRESQL_CONNECT_ADDRESS", "10.0.0.5:5440"},
      {"PATRONI_POSTGRESQL_PROXY_ADDRESS", "10.0.0.6:6432"},
      {"PATRONI_POSTGRESQL_CONFIG_DIR", "/cfg"},
      {"PATRONI_POSTGRESQL_DATA_DIR", "/envdata"},
      {"PATRONI_POSTGRESQL_PGPASS", "/envpgpass"},
      {"PATRONI_POSTGRESQL_BIN_DIR", "/bin/pg"},
      {"PATRONI_SUPERUSER_USERNAME", "su"},
      {"PATRONI_SUPERUSER_PASSWORD", "supw"},
      {"PATRONI_SUPERUSER_SSLMODE", "verify-full"},
      {"PATRONI_SUPERUSER_SSLROOTCERT", "/root.crt"},
      {"PATRONI_REPLICATION_USERNAME", "rep"},
      {"PATRONI_REPLICATION_PASSWORD", "reppw"},
      {"PATRONI_REPLICATION_SSLKEY", "/rep.key"},
      {"PATRONI_REPLICATION_SSLCERT", "/rep.crt"},
      {"PATRONI_REWIND_USERNAME", "rw"},
      {"PATRONI_REWIND_PASSWORD", "rwpw"},
      {"HOME", "/home/x"},
  };
  auto res = load_patched(json::parse(R"({"name": "filename", "postgresql": {"authentication":
      {"superuser": {"username": "postgres", "password": "filepw"}}}})"), env);
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& c = *res.config;
  EXPECT_EQ(c.name, "envname");
  EXPECT_EQ(c.scope, "envscope");
  EXPECT_EQ(c.namespace_, "/envns/");
  EXPECT_EQ(c.log_level, "DEBUG");
  EXPECT_EQ(c.restapi.listen.port, 8010);
  EXPECT_EQ(c.restapi.connect_address, "10.0.0.5:8010");
  EXPECT_EQ(c.restapi.certfile, "/c");
  EXPECT_EQ(c.restapi.keyfile, "/k");
  EXPECT_EQ(c.restapi.keyfile_password, "kp");
  EXPECT_EQ(c.restapi.cafile, "/ca");
  EXPECT_EQ(c.restapi.ciphers, "HIGH");
  EXPECT_EQ(c.restapi.verify_client, "required");
  EXPECT_EQ(c.restapi.username, "apiuser");
  EXPECT_EQ(c.restapi.password, "apipw");
  EXPECT_EQ(c.postgresql.listen_addresses, std::vector<std::string>{"*"});
  EXPECT_EQ(c.postgresql.listen.port, 5440);
  EXPECT_EQ(c.postgresql.connect_address, "10.0.0.5:5440");
  EXPECT_EQ(c.postgresql.proxy_address, "10.0.0.6:6432");
  EXPECT_EQ(c.postgresql.config_dir, "/cfg");
  EXPECT_EQ(c.postgresql.data_dir, "/envdata");
  EXPECT_EQ(c.postgresql.pgpass, "/envpgpass");
  EXPECT_EQ(c.postgresql.bin_dir, "/bin/pg");
  EXPECT_EQ(c.postgresql.superuser.username, "su");
  EXPECT_EQ(c.postgresql.superuser.password, "supw");
  EXPECT_EQ(c.postgresql.superuser.extra.at("sslmode"), "verify-full");
  EXPECT_EQ(c.postgresql.superuser.extra.at("sslrootcert"), "/root.crt");
  EXPECT_EQ(c.postgresql.replication.username, "rep");
  EXPECT_EQ(c.postgresql.replication.password, "reppw");
  EXPECT_EQ(c.postgresql.replication.extra.at("sslkey"), "/rep.key");
  EXPECT_EQ(c.postgresql.replication.extra.at("sslcert"), "/rep.crt");
  EXPECT_EQ(c.postgresql.rewind.username, "rw");
  EXPECT_EQ(c.postgresql.rewind.password, "rwpw");
  // None of these may turn into a bootstrap user (they were taken by earlier passes).
  EXPECT_TRUE(c.bootstrap.users.empty());
}

TEST(ConfigEnv, OldLogLevelSpelling) {
  auto res = load_patched(json::object(), {{"PATRONI_LOGLEVEL", "ERROR"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->log_level, "ERROR");
  res = load_patched(json::object(), {{"PATRONI_LOGLEVEL", "ERROR"}, {"PATRONI_LOG_LEVEL", "DEBUG"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->log_level, "DEBUG");
}

TEST(ConfigEnv, UsersKeepTheirCase) {
  util::Environment env = {{"PATRONI_admin_PASSWORD", "adminpw"}, {"PATRONI_admin_OPTIONS", "createrole,createdb"},
                           {"PATRONI_Bob_Smith_PASSWORD", "bobpw"}, {"PATRONI_empty_PASSWORD", ""}};
  auto res = load_patched(json::parse(R"({"bootstrap": {"users": {"admin": {"password": "old"}, "carol": {"password": "c"}}}})"), env);
  ASSERT_TRUE(res.config) << joined(res.errors);
  std::map<std::string, BootstrapUser> users;
  for (const auto& u : res.config->bootstrap.users) users[u.name] = u;
  ASSERT_EQ(users.size(), 3u);
  EXPECT_EQ(users["admin"].password, "adminpw");
  EXPECT_EQ(users["admin"].options, (std::vector<std::string>{"createrole", "createdb"}));
  EXPECT_EQ(users["Bob_Smith"].password, "bobpw");
  EXPECT_EQ(users["carol"].password, "c");
}

TEST(ConfigEnv, UserOptionsAsYamlList) {
  auto res = load_patched(json::object(), {{"PATRONI_x_PASSWORD", "p"}, {"PATRONI_x_OPTIONS", "[login, 'createdb']"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  ASSERT_EQ(res.config->bootstrap.users.size(), 1u);
  EXPECT_EQ(res.config->bootstrap.users[0].options, (std::vector<std::string>{"login", "createdb"}));
}

TEST(ConfigEnv, Etcd3Variables) {
  struct Case { std::string hosts; std::vector<std::string> want; };
  for (const auto& tc : std::vector<Case>{{"e1:2379,e2:2380", {"e1:2379", "e2:2380"}},
                                          {"['e1:2379', 'e2:2380']", {"e1:2379", "e2:2380"}},
                                          {"- e3:2379\n- e4:2379", {"e3:2379", "e4:2379"}},
                                          {"e5", {"e5:2379"}}}) {
    util::Environment env = {{"PATRONI_ETCD3_HOSTS", tc.hosts}, {"PATRONI_ETCD3_PROTOCOL", "https"},
                             {"PATRONI_ETCD3_USERNAME", "eu"}, {"PATRONI_ETCD3_PASSWORD", "ep"},
                             {"PATRONI_ETCD3_CACERT", "/ca"}, {"PATRONI_ETCD3_CERT", "/cert"},
                             {"PATRONI_ETCD3_KEY", "/key"}};
    auto res = load_patched({{"etcd3", nullptr}}, env);
    ASSERT_TRUE(res.config) << tc.hosts << "\n" << joined(res.errors);
    const auto& e = res.config->etcd3;
    std::vector<std::string> got;
    for (const auto& h : e.hosts) got.push_back(h.to_string());
    EXPECT_EQ(got, tc.want) << tc.hosts;
    EXPECT_EQ(e.protocol, "https");
    EXPECT_EQ(e.username, "eu");
    EXPECT_EQ(e.password, "ep");
    EXPECT_EQ(e.cacert, "/ca");
    EXPECT_EQ(e.cert, "/cert");
    EXPECT_EQ(e.key, "/key");
    EXPECT_TRUE(res.config->bootstrap.users.empty());
  }
}

TEST(ConfigEnv, Etcd3HostOverridesFileHosts) {
  // Env `host` is added next to the file's `hosts`; Patroni's precedence picks hosts first.
  auto res = load_patched(json::object(), {{"PATRONI_ETCD3_HOST", "single:2390"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->raw["etcd3"]["host"], "single:2390");
  res = load_patched({{"etcd3", nullptr}}, {{"PATRONI_ETCD3_HOST", "single:2390"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->etcd3.hosts.at(0).to_string(), "single:2390");
}

TEST(ConfigEnv, KubernetesVariables) {
  util::Environment env = {
      {"PATRONI_KUBERNETES_NAMESPACE", "prod"},
      {"PATRONI_KUBERNETES_LABELS", "{app: db, cluster-name: c1, release: r1}"},
      {"PATRONI_KUBERNETES_SCOPE_LABEL", "cluster-name"},
      {"PATRONI_KUBERNETES_ROLE_LABEL", "role"},
      {"PATRONI_KUBERNETES_USE_ENDPOINTS", "true"},
      {"PATRONI_KUBERNETES_POD_IP", "10.2.3.4"},
      {"PATRONI_KUBERNETES_PORTS", R"([{"name": "postgresql", "port": 5432}, {"name": "pgbouncer", "port": 6432}])"},
      {"PATRONI_KUBERNETES_BYPASS_API_SERVICE", "on"},
  };
  auto res = load_patched({{"etcd3", nullptr}}, env);
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& k = res.config->kubernetes;
  EXPECT_TRUE(k.enabled);
  EXPECT_EQ(k.namespace_, "prod");
  EXPECT_EQ(k.labels, (std::map<std::string, std::string>{{"app", "db"}, {"cluster-name", "c1"}, {"release", "r1"}}));
  EXPECT_TRUE(k.use_endpoints);
  EXPECT_TRUE(k.bypass_api_service);
  EXPECT_EQ(k.pod_ip, "10.2.3.4");
  EXPECT_EQ(k.ports.size(), 2u);
  EXPECT_EQ(k.ports[1]["port"], 6432);
  EXPECT_EQ(res.config->raw["kubernetes"]["use_endpoints"], true);
}

TEST(ConfigEnv, LabelsWithoutBracesAndBadValues) {
  util::Environment env = {{"PATRONI_KUBERNETES_LABELS", "app: db"}, {"PATRONI_KUBERNETES_USE_ENDPOINTS", "maybe"}};
  auto res = load_patched({{"etcd3", nullptr}}, env);
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->kubernetes.labels.at("app"), "db");
  EXPECT_FALSE(res.config->kubernetes.use_endpoints);  // unparsable bool is ignored, as in Patroni
}

TEST(ConfigEnv, UnparsableListWarnsAndIsIgnored) {
  auto res = load_patched(json::object(), {{"PATRONI_KUBERNETES_PORTS", "[{"}});
  EXPECT_TRUE(testing::has_line(res.warnings, "PATRONI_KUBERNETES_PORTS: cannot parse the value as a YAML list"))
      << joined(res.warnings);
}

TEST(ConfigEnv, NonPatroniVariablesAreIgnored) {
  auto res = load_patched(json::object(), {{"SCOPE", "x"}, {"PATRONI", "y"}, {"PGDATA", "/z"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->scope, "demo");
  EXPECT_EQ(res.config->postgresql.data_dir, "/var/lib/pg/data");
}

}  // namespace
}  // namespace pgwarden::config
