// Loading, defaults and the typed fields of Config.
#include <gtest/gtest.h>

#include "config_test_util.hpp"
#include "support/harness.hpp"

namespace pgwarden::config {
namespace {

using nlohmann::json;
using testing::has_line;
using testing::joined;
using testing::load_patched;

TEST(ConfigLoad, MinimalConfigGetsPatroniDefaults) {
  auto res = load_patched(json::object());
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_TRUE(res.warnings.empty()) << joined(res.warnings);
  const Config& c = *res.config;
  EXPECT_EQ(c.scope, "demo");
  EXPECT_EQ(c.name, "node1");
  EXPECT_EQ(c.namespace_, "/service/");
  EXPECT_EQ(c.log_level, "INFO");
  EXPECT_EQ(c.restapi.listen.host, "127.0.0.1");
  EXPECT_EQ(c.restapi.listen.port, 8008);
  EXPECT_EQ(c.restapi.connect_address, "127.0.0.1:8008");
  EXPECT_EQ(c.postgresql.config_dir, "/var/lib/pg/data");
  EXPECT_EQ(c.postgresql.pgpass, "/home/pg/.pgpass.patroni");
  EXPECT_EQ(c.postgresql.listen.port, 5432);
  EXPECT_EQ(c.postgresql.listen_addresses, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(c.postgresql.create_replica_methods, std::vector<std::string>{"basebackup"});
  EXPECT_EQ(c.bootstrap.method, "initdb");
  EXPECT_EQ(c.dynamic.ttl, 30);
  EXPECT_EQ(c.dynamic.loop_wait, 10);
  EXPECT_EQ(c.dynamic.retry_timeout, 10);
  EXPECT_EQ(c.postgresql.pg_ctl_timeout, 60);
  EXPECT_FALSE(c.kubernetes.enabled);
  ASSERT_EQ(c.etcd3.hosts.size(), 1u);
  EXPECT_EQ(c.etcd3.hosts[0].to_string(), "127.0.0.1:2379");
  EXPECT_EQ(c.source_path, "test.yaml");
  EXPECT_EQ(c.raw["scope"], "demo");
}

TEST(ConfigLoad, NamespaceIsNormalised) {
  struct Case { json ns; std::string want; };
  for (const auto& tc : std::vector<Case>{{"service", "/service/"}, {"/service", "/service/"}, {"svc/", "/svc/"},
                                          {"//a//b//", "/a/b/"}, {"", "/"}}) {
    auto res = load_patched({{"namespace", tc.ns}});
    ASSERT_TRUE(res.config) << joined(res.errors);
    EXPECT_EQ(res.config->namespace_, tc.want) << tc.ns;
  }
}

TEST(ConfigLoad, ListenForms) {
  struct Case { std::string listen; std::vector<std::string> addrs; std::string host; int port; };
  std::vector<Case> cases = {
      {"0.0.0.0:5432", {"0.0.0.0"}, "0.0.0.0", 5432},
      {"*:5433", {"*"}, "*", 5433},
      {"127.0.0.1,::1:5434", {"127.0.0.1", "::1"}, "127.0.0.1,::1", 5434},
      {"[::1]:5435", {"::1"}, "::1", 5435},
      {":5436", {}, "", 5436},
  };
  for (const auto& tc : cases) {
    auto res = load_patched({{"postgresql", {{"listen", tc.listen}}}});
    ASSERT_TRUE(res.config) << tc.listen << "\n" << joined(res.errors);
    EXPECT_EQ(res.config->postgresql.listen_addresses, tc.addrs) << tc.listen;
    EXPECT_EQ(res.config->postgresql.listen.host, tc.host) << tc.listen;
    EXPECT_EQ(res.config->postgresql.listen.port, tc.port) << tc.listen;
  }
}

TEST(ConfigLoad, EtcdHostForms) {
  struct Case { json etcd3; std::vector<std::string> want; std::string protocol; };
  std::vector<Case> cases = {
      {{{"hosts", "h1:2379,h2:2380"}}, {"h1:2379", "h2:2380"}, "http"},
      {{{"hosts", {"h1:2379", "h2"}}}, {"h1:2379", "h2:2379"}, "http"},
      {{{"hosts", "h1, h2"}, {"port", 4001}}, {"h1:4001", "h2:4001"}, "http"},
      {{{"host", "h3:2381"}}, {"h3:2381"}, "http"},
      {{{"host", "h3"}, {"protocol", "https"}}, {"h3:2379"}, "https"},
      {{{"url", "https://h4:2390"}}, {"h4:2390"}, "https"},
  };
  for (const auto& tc : cases) {
    auto doc = testing::minimal_doc();
    doc["etcd3"] = tc.etcd3;
    auto res = load_from_string(doc.dump(), {}, "t");
    ASSERT_TRUE(res.config) << tc.etcd3.dump() << "\n" << joined(res.errors);
    std::vector<std::string> got;
    for (const auto& h : res.config->etcd3.hosts) got.push_back(h.to_string());
    EXPECT_EQ(got, tc.want) << tc.etcd3.dump();
    EXPECT_EQ(res.config->etcd3.protocol, tc.protocol);
  }
}

TEST(ConfigLoad, TagsKeepValuesAndDropFalsyFlags) {
  auto res = load_patched({{"tags", {{"nofailover", false}, {"noloadbalance", true}, {"clonefrom", false},
                                     {"nosync", false}, {"replicatefrom", "node2"}, {"zone", 3}}}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& c = *res.config;
  EXPECT_EQ(c.tags.at("nofailover"), "false");
  EXPECT_EQ(c.tags.at("noloadbalance"), "true");
  EXPECT_EQ(c.tags.at("replicatefrom"), "node2");
  EXPECT_EQ(c.tags.at("zone"), "3");
  EXPECT_EQ(c.tags_json, json({{"noloadbalance", true}, {"replicatefrom", "node2"}, {"zone", 3}}));
}

TEST(ConfigLoad, BootstrapSection) {
  auto res = load_patched(json::parse(R"({"bootstrap": {
      "method": "clone",
      "clone": {"command": "/bin/clone.sh --x", "no_params": true, "keep_existing_recovery_conf": true,
                "recovery_conf": {"restore_command": "cp %f %p"}, "extra_key": 5},
      "initdb": ["data-checksums", {"encoding": "UTF8"}, {"wal-segsize": 64}],
      "post_init": "/bin/post.sh",
      "users": {"admin": {"password": "pw", "options": ["createrole", "createdb"]}},
      "dcs": {"ttl": 40, "loop_wait": 5, "retry_timeout": 15, "master_start_timeout": 100,
              "synchronous_mode": "on", "postgresql": {"use_pg_rewind": true, "use_slots": false,
              "parameters": {"max_connections": 200}}}}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& b = res.config->bootstrap;
  EXPECT_EQ(b.method, "clone");
  ASSERT_TRUE(b.methods.count("clone"));
  const auto& m = b.methods.at("clone");
  EXPECT_EQ(m.command, "/bin/clone.sh --x");
  EXPECT_TRUE(m.no_params);
  EXPECT_TRUE(m.keep_existing_recovery_conf);
  EXPECT_EQ(m.extra["extra_key"], 5);
  EXPECT_EQ(m.extra["recovery_conf"]["restore_command"], "cp %f %p");
  EXPECT_EQ(b.initdb, json::parse(R"(["data-checksums", {"encoding": "UTF8"}, {"wal-segsize": 64}])"));
  EXPECT_EQ(b.post_init, "/bin/post.sh");
  ASSERT_EQ(b.users.size(), 1u);
  EXPECT_EQ(b.users[0].name, "admin");
  EXPECT_EQ(b.users[0].password, "pw");
  EXPECT_EQ(b.users[0].options, (std::vector<std::string>{"createrole", "createdb"}));
  EXPECT_EQ(b.dcs["ttl"], 40);
  const auto& d = res.config->dynamic;
  EXPECT_EQ(d.ttl, 40);
  EXPECT_EQ(d.loop_wait, 5);
  EXPECT_EQ(d.retry_timeout, 15);
  EXPECT_EQ(d.primary_start_timeout, 100);
  EXPECT_TRUE(d.synchronous_mode);
  EXPECT_TRUE(d.use_pg_rewind);
  EXPECT_FALSE(d.use_slots);
  EXPECT_EQ(d.postgresql_parameters["max_connections"], 200);
}

TEST(ConfigLoad, InitdbMappingBecomesList) {
  auto res = load_patched(json::parse(R"({"bootstrap": {"initdb": {"encoding": "UTF8", "skipped": ""}}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->bootstrap.initdb, json::parse(R"([{"encoding": "UTF8"}])"));
}

TEST(ConfigLoad, PostgresqlSection) {
  auto res = load_patched(json::parse(R"({"postgresql": {
      "connect_address": "10.0.0.1:5432", "proxy_address": "10.0.0.9:6432", "config_dir": "/etc/pg",
      "bin_dir": "/usr/lib/postgresql/15/bin", "pgpass": "/tmp/pgpass", "custom_conf": "/etc/custom.conf",
      "use_unix_socket": true, "use_unix_socket_repl": "on", "use_pg_rewind": true,
      "remove_data_directory_on_rewind_failure": true, "remove_data_directory_on_diverged_timelines": "yes",
      "pg_ctl_timeout": "90",
      "authentication": {"superuser": {"username": "su", "password": "supw", "sslmode": "require"},
                         "replication": {"username": "rep", "password": "reppw"},
                         "rewind": {"username": "rw", "password": "rwpw", "sslrootcert": "/ca.pem"}},
      "parameters": {"shared_buffers": "1GB", "max_connections": 300},
      "pg_hba": ["local all all trust"], "pg_ident": ["map a b"],
      "callbacks": {"on_start": "/bin/cb.sh", "on_stop": "/bin/cb.sh"},
      "create_replica_methods": ["wal_e", "basebackup"],
      "wal_e": {"command": "/bin/wale.sh", "keep_data": true, "no_leader": true, "threads": 4},
      "basebackup": {"max-rate": "100M", "checkpoint": "fast"},
      "recovery_conf": {"restore_command": "cp %f %p"}}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_TRUE(res.warnings.empty()) << joined(res.warnings);
  const auto& pg = res.config->postgresql;
  EXPECT_EQ(pg.connect_address, "10.0.0.1:5432");
  EXPECT_EQ(pg.proxy_address, "10.0.0.9:6432");
  EXPECT_EQ(pg.config_dir, "/etc/pg");
  EXPECT_EQ(pg.bin_dir, "/usr/lib/postgresql/15/bin");
  EXPECT_EQ(pg.pgpass, "/tmp/pgpass");
  EXPECT_EQ(pg.custom_conf, "/etc/custom.conf");
  EXPECT_TRUE(pg.use_unix_socket);
  EXPECT_TRUE(pg.use_unix_socket_repl);
  EXPECT_EQ(pg.use_pg_rewind, std::optional<bool>(true));
  EXPECT_TRUE(pg.remove_data_directory_on_rewind_failure);
  EXPECT_TRUE(pg.remove_data_directory_on_diverged_timelines);
  EXPECT_EQ(pg.pg_ctl_timeout, 90);
  EXPECT_EQ(pg.superuser.username, "su");
  EXPECT_EQ(pg.superuser.password, "supw");
  EXPECT_EQ(pg.superuser.extra.at("sslmode"), "require");
  EXPECT_EQ(pg.replication.username, "rep");
  EXPECT_EQ(pg.rewind.username, "rw");
  EXPECT_EQ(pg.rewind.extra.at("sslrootcert"), "/ca.pem");
  EXPECT_EQ(pg.parameters["shared_buffers"], "1GB");
  EXPECT_EQ(pg.pg_hba, std::vector<std::string>{"local all all trust"});
  EXPECT_EQ(pg.pg_ident, std::vector<std::string>{"map a b"});
  EXPECT_EQ(pg.callbacks.at("on_start"), "/bin/cb.sh");
  ASSERT_TRUE(pg.replica_methods.count("wal_e"));
  const auto& m = pg.replica_methods.at("wal_e");
  EXPECT_EQ(m.command, "/bin/wale.sh");
  EXPECT_TRUE(m.keep_data);
  EXPECT_TRUE(m.no_master);
  EXPECT_FALSE(m.no_params);
  EXPECT_EQ(m.extra, json({{"threads", 4}}));
  EXPECT_EQ(pg.basebackup["checkpoint"], "fast");
  EXPECT_EQ(pg.recovery_conf["restore_command"], "cp %f %p");
}

TEST(ConfigLoad, RestapiSection) {
  auto res = load_patched(json::parse(R"({"restapi": {"listen": ":::8009", "connect_address": "10.0.0.1:8009",
      "authentication": {"username": "u", "password": "p"}, "certfile": "/c.pem", "keyfile": "/k.pem",
      "keyfile_password": "kp", "cafile": "/ca.pem", "verify_client": "optional", "ciphers": "HIGH"}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& a = res.config->restapi;
  EXPECT_EQ(a.listen.host, "::");
  EXPECT_EQ(a.listen.port, 8009);
  EXPECT_EQ(a.connect_address, "10.0.0.1:8009");
  EXPECT_EQ(a.username, "u");
  EXPECT_EQ(a.password, "p");
  EXPECT_EQ(a.certfile, "/c.pem");
  EXPECT_EQ(a.keyfile, "/k.pem");
  EXPECT_EQ(a.keyfile_password, "kp");
  EXPECT_EQ(a.cafile, "/ca.pem");
  EXPECT_EQ(a.verify_client, "optional");
  EXPECT_EQ(a.ciphers, "HIGH");
}

TEST(ConfigLoad, KubernetesSection) {
  auto doc = testing::minimal_doc();
  doc.erase("etcd3");
  doc["kubernetes"] = json::parse(R"({"namespace": "ns", "labels": {"app": "x", "n": 1}, "scope_label": "s",
      "role_label": "r", "use_endpoints": true, "pod_ip": "10.1.2.3", "bypass_api_service": "true",
      "ports": [{"name": "postgresql", "port": 5432}]})");
  auto res = load_from_string(doc.dump(), {}, "t");
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& k = res.config->kubernetes;
  EXPECT_TRUE(k.enabled);
  EXPECT_EQ(k.namespace_, "ns");
  EXPECT_EQ(k.labels, (std::map<std::string, std::string>{{"app", "x"}, {"n", "1"}}));
  EXPECT_EQ(k.scope_label, "s");
  EXPECT_EQ(k.role_label, "r");
  EXPECT_TRUE(k.use_endpoints);
  EXPECT_TRUE(k.bypass_api_service);
  EXPECT_EQ(k.pod_ip, "10.1.2.3");
  EXPECT_EQ(k.ports, json::parse(R"([{"name": "postgresql", "port": 5432}])"));
  EXPECT_TRUE(res.config->etcd3.hosts.empty());
}

TEST(ConfigLoad, YamlScalarsResolveLikePyYaml) {
  const std::string yaml = R"(
scope: demo
name: node1
restapi: {listen: "127.0.0.1:8008"}
etcd3: {hosts: "127.0.0.1:2379"}
postgresql:
  listen: 0.0.0.0:5432
  data_dir: /data
  parameters:
    plain_on: on
    quoted_on: 'on'
    yes_value: yes
    octal: 0750
    quoted_octal: '0750'
    hex: 0x1F
    float: 0.02
    int: 100
    size: 1GB
    empty:
    tilde: ~
    time: 1800s
    underscored: 1_000
)";
  auto res = load_from_string(yaml, {}, "t");
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& p = res.config->raw["postgresql"]["parameters"];
  EXPECT_EQ(p["plain_on"], true);
  EXPECT_EQ(p["quoted_on"], "on");
  EXPECT_EQ(p["yes_value"], true);
  EXPECT_EQ(p["octal"], 488);
  EXPECT_EQ(p["quoted_octal"], "0750");
  EXPECT_EQ(p["hex"], 31);
  EXPECT_DOUBLE_EQ(p["float"].get<double>(), 0.02);
  EXPECT_EQ(p["int"], 100);
  EXPECT_EQ(p["size"], "1GB");
  EXPECT_TRUE(p["empty"].is_null());
  EXPECT_TRUE(p["tilde"].is_null());
  EXPECT_EQ(p["time"], "1800s");
  EXPECT_EQ(p["underscored"], 1000);
  EXPECT_EQ(res.config->raw["postgresql"]["listen"], "0.0.0.0:5432");
}

TEST(ConfigLoad, YamlSyntaxErrorIsOneLine) {
  auto res = load_from_string("scope: demo\nname: [unclosed\n", {}, "/etc/patroni.yaml");
  EXPECT_FALSE(res.config);
  ASSERT_EQ(res.errors.size(), 1u) << joined(res.errors);
  EXPECT_EQ(res.errors[0].rfind("/etc/patroni.yaml: YAML syntax error at line ", 0), 0u) << res.errors[0];
  EXPECT_NE(res.errors[0].find(", column "), std::string::npos) << res.errors[0];
}

TEST(ConfigLoad, TopLevelMustBeAMapping) {
  auto res = load_from_string("- a\n- b\n", {}, "x.yaml");
  EXPECT_FALSE(res.config);
  ASSERT_EQ(res.errors.size(), 1u);
  EXPECT_EQ(res.errors[0], "x.yaml: expected a mapping at the top level, got a list");
}

TEST(ConfigLoad, EmptyDocumentWithEverythingFromEnv) {
  util::Environment env = {{"PATRONI_SCOPE", "s"}, {"PATRONI_NAME", "n"}, {"PATRONI_RESTAPI_LISTEN", ":8008"},
                           {"PATRONI_POSTGRESQL_LISTEN", ":5432"}, {"PATRONI_POSTGRESQL_DATA_DIR", "/d"},
                           {"PATRONI_ETCD3_HOSTS", "e1:2379"}};
  auto res = load_from_string("", env, "env");
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->scope, "s");
  EXPECT_EQ(res.config->etcd3.hosts[0].to_string(), "e1:2379");
}

TEST(ConfigLoad, FromFile) {
  test::TempDir dir("pgwarden-config");
  auto path = dir.file("patroni.yaml");
  test::write_file(path, testing::minimal_doc().dump());
  auto res = load_from_file(path, {});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->source_path, path);
}

TEST(ConfigLoad, FromDirectoryMergesYamlFilesInOrder) {
  test::TempDir dir("pgwarden-config");
  test::write_file(dir.file("10-base.yml"), testing::minimal_doc().dump());
  test::write_file(dir.file("20-override.yaml"), "name: node2\n");
  test::write_file(dir.file("ignored.txt"), "name: node3\n");
  auto res = load_from_file(dir.path(), {});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->name, "node2");
}

TEST(ConfigLoad, MissingFileIsOneError) {
  auto res = load_from_file("/nonexistent/patroni.yaml", {});
  EXPECT_FALSE(res.config);
  ASSERT_EQ(res.errors.size(), 1u);
  EXPECT_EQ(res.errors[0], "/nonexistent/patroni.yaml: cannot read configuration file: No such file or directory");
}

TEST(ConfigLoad, UnknownKeysWarnWithPath) {
  auto res = load_patched(json::parse(R"({
      "restapi": {"foo": 1, "authentication": {"bar": 2}},
      "toplevel_typo": true,
      "postgresql": {"paramaters": {}, "authentication": {"superuser": {"sslmode": "require", "bogus": 1}},
                     "parameters": {"anything_goes": 1}, "recovery_conf": {"whatever": 1}},
      "bootstrap": {"dcs": {"free_form": 1}, "users": {"u": {"password": "x", "whatever": 1}},
                    "custom": {"command": "x", "anything": 1}},
      "tags": {"custom_tag": 1},
      "kubernetes_typo": {},
      "synchronous_mode": true, "watchdog": {"mode": "off", "devise": "x"}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  std::vector<std::string> want = {"restapi.foo", "restapi.authentication.bar", "toplevel_typo",
                                   "postgresql.paramaters", "postgresql.authentication.superuser.bogus",
                                   "kubernetes_typo", "watchdog.devise"};
  for (const auto& w : want) EXPECT_TRUE(has_line(res.warnings, "unknown configuration key: " + w)) << w << "\n" << joined(res.warnings);
  EXPECT_EQ(res.warnings.size(), want.size()) << joined(res.warnings);
}

}  // namespace
}  // namespace pgwarden::config
