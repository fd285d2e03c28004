// Validation: every rule produces exactly the expected error line, and no secret leaks.
#include <gtest/gtest.h>

#include "config_test_util.hpp"

namespace pgwarden::config {
namespace {

using nlohmann::json;
using testing::joined;
using testing::load_patched;

struct ErrorCase {
  const char* name;
  const char* patch;       // JSON merge patch on the minimal config
  const char* want_error;  // exact error line
};

// Short names in test listings (and so in CTest's names) instead of the struct's bytes.
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ConfigErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrors, ReportsExactLine) {
  const auto& tc = GetParam();
  auto res = load_patched(json::parse(tc.patch));
  EXPECT_FALSE(res.config);
  EXPECT_TRUE(testing::has_line(res.errors, tc.want_error)) << "want: " << tc.want_error << "\ngot:\n" << joined(res.errors);
  for (const auto& e : res.errors) EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ConfigErrors,
    ::testing::Values(
        ErrorCase{"ScopeMissing", R"({"scope": null})", "scope: missing (expected a non-empty string)"},
        ErrorCase{"ScopeEmpty", R"({"scope": ""})", "scope: expected a non-empty string, got string \"\""},
        ErrorCase{"ScopeWrongType", R"({"scope": [1]})", "scope: expected a string, got a list"},
        ErrorCase{"NameMissing", R"({"name": null})", "name: missing (expected a non-empty string)"},
        ErrorCase{"DataDirMissing", R"({"postgresql": {"data_dir": null}})",
                  "postgresql.data_dir: missing (expected a non-empty string)"},
        ErrorCase{"PgListenMissing", R"({"postgresql": {"listen": null}})",
                  "postgresql.listen: missing (expected host:port with a port between 1 and 65535)"},
        ErrorCase{"PgListenNoPort", R"({"postgresql": {"listen": "0.0.0.0"}})",
                  "postgresql.listen: expected host:port with a port between 1 and 65535, got string \"0.0.0.0\""},
        ErrorCase{"PgListenPortRange", R"({"postgresql": {"listen": "0.0.0.0:70000"}})",
                  "postgresql.listen: expected host:port with a port between 1 and 65535, got string \"0.0.0.0:70000\""},
        ErrorCase{"PgListenPortZero", R"({"postgresql": {"listen": "0.0.0.0:0"}})",
                  "postgresql.listen: expected host:port with a port between 1 and 65535, got string \"0.0.0.0:0\""},
        ErrorCase{"RestListenMissing", R"({"restapi": {"listen": null}})",
                  "restapi.listen: missing (expected host:port with a port between 1 and 65535)"},
        ErrorCase{"RestSectionMissing", R"({"restapi": null})",
                  "restapi.listen: missing (expected host:port with a port between 1 and 65535)"},
        ErrorCase{"RestListenBadPort", R"({"restapi": {"listen": "0.0.0.0:http"}})",
                  "restapi.listen: expected host:port with a port between 1 and 65535, got string \"0.0.0.0:http\""},
        ErrorCase{"RestListenInteger", R"({"restapi": {"listen": 8008}})",
                  "restapi.listen: expected host:port with a port between 1 and 65535, got integer 8008"},
        ErrorCase{"PgConnectAddress", R"({"postgresql": {"connect_address": "10.0.0.1"}})",
                  "postgresql.connect_address: expected host:port with a port between 1 and 65535, got string \"10.0.0.1\""},
        ErrorCase{"RestConnectAddress", R"({"restapi": {"connect_address": "10.0.0.1:99999"}})",
                  "restapi.connect_address: expected host:port with a port between 1 and 65535, got string \"10.0.0.1:99999\""},
        ErrorCase{"LoopWaitString", R"({"bootstrap": {"dcs": {"loop_wait": "abc"}}})",
                  "bootstrap.dcs.loop_wait: expected an integer, got string \"abc\""},
        ErrorCase{"TtlBool", R"({"bootstrap": {"dcs": {"ttl": true}}})",
                  "bootstrap.dcs.ttl: expected an integer, got boolean true"},
        ErrorCase{"MaxLagFloatString", R"({"bootstrap": {"dcs": {"maximum_lag_on_failover": "1.5"}}})",
                  "bootstrap.dcs.maximum_lag_on_failover: expected an integer, got string \"1.5\""},
        ErrorCase{"SyncModeNotBool", R"({"bootstrap": {"dcs": {"synchronous_mode": "maybe"}}})",
                  "bootstrap.dcs.synchronous_mode: expected a boolean, got string \"maybe\""},
        ErrorCase{"TtlTooSmall", R"({"bootstrap": {"dcs": {"ttl": 20, "loop_wait": 10, "retry_timeout": 10}}})",
                  "bootstrap.dcs.ttl: expected at least loop_wait + 2*retry_timeout = 30 (loop_wait 10, retry_timeout 10), got 20"},
        ErrorCase{"NoDcs", R"({"etcd3": null})",
                  "etcd3/kubernetes: no DCS configured (expected an etcd3 or kubernetes section)"},
        ErrorCase{"EtcdV2", R"({"etcd3": null, "etcd": {"host": "h:2379"}})",
                  "etcd: the etcd v2 API is not supported, only etcd3 is supported (rename the section to etcd3)"},
        ErrorCase{"Consul", R"({"consul": {"host": "h:8500"}})",
                  "consul: not supported (only etcd3 and kubernetes are supported)"},
        ErrorCase{"BothDcs", R"({"kubernetes": {"namespace": "x"}})",
                  "etcd3/kubernetes: both configured (expected exactly one DCS)"},
        ErrorCase{"EtcdNoHosts", R"({"etcd3": {"hosts": null, "protocol": "http"}})",
                  "etcd3: no etcd endpoint configured (expected etcd3.hosts, etcd3.host or etcd3.url)"},
        ErrorCase{"EtcdBadHost", R"({"etcd3": {"hosts": ["h1:2379", "h2:abc"]}})",
                  "etcd3.hosts[1]: expected host:port with a port between 1 and 65535, got string \"h2:abc\""},
        ErrorCase{"EtcdBadProtocol", R"({"etcd3": {"protocol": "gopher"}})",
                  "etcd3.protocol: expected http or https, got string \"gopher\""},
        ErrorCase{"LogLevel", R"({"log": {"level": "VERBOSE"}})",
                  "log.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got string \"VERBOSE\""},
        ErrorCase{"BootstrapMethodMissing", R"({"bootstrap": {"method": "restore"}})",
                  "bootstrap.method: names \"restore\" but there is no bootstrap.restore section with a command"},
        ErrorCase{"BootstrapMethodNoCommand", R"({"bootstrap": {"method": "restore", "restore": {"no_params": true}}})",
                  "bootstrap.method: names \"restore\" but there is no bootstrap.restore section with a command"},
        ErrorCase{"ReplicaMethodMissing", R"({"postgresql": {"create_replica_methods": ["wal_g", "basebackup"]}})",
                  "postgresql.create_replica_methods: names \"wal_g\" but there is no postgresql.wal_g section with a command"},
        ErrorCase{"ReplicaMethodsNotList", R"({"postgresql": {"create_replica_methods": "basebackup"}})",
                  "postgresql.create_replica_methods: expected a list of strings, got string \"basebackup\""},
        ErrorCase{"PgHbaNotList", R"({"postgresql": {"pg_hba": "host all all all md5"}})",
                  "postgresql.pg_hba: expected a list of strings, got string \"host all all all md5\""},
        ErrorCase{"PgHbaElement", R"({"postgresql": {"pg_hba": ["local all all trust", 5]}})",
                  "postgresql.pg_hba[1]: expected a string, got integer 5"},
        ErrorCase{"CallbackNotString", R"({"postgresql": {"callbacks": {"on_start": ["a"]}}})",
                  "postgresql.callbacks.on_start: expected a string, got a list"},
        ErrorCase{"CallbacksNotMap", R"({"postgresql": {"callbacks": "x"}})",
                  "postgresql.callbacks: expected a mapping of action: command, got string \"x\""},
        ErrorCase{"UseUnixSocketNotBool", R"({"postgresql": {"use_unix_socket": "sometimes"}})",
                  "postgresql.use_unix_socket: expected a boolean, got string \"sometimes\""},
        ErrorCase{"PgCtlTimeout", R"({"postgresql": {"pg_ctl_timeout": "soon"}})",
                  "postgresql.pg_ctl_timeout: expected an integer, got string \"soon\""},
        ErrorCase{"ParametersNotMap", R"({"postgresql": {"parameters": ["a"]}})",
                  "postgresql.parameters: expected a mapping, got a list"},
        ErrorCase{"UnixSocketDirsEmpty", R"({"postgresql": {"parameters": {"unix_socket_directories": ""}}})",
                  "postgresql.parameters.unix_socket_directories: expected a non-empty string, got string \"\""},
        ErrorCase{"InitdbForbidden", R"({"bootstrap": {"initdb": ["pgdata"]}})",
                  "bootstrap.initdb[0]: the initdb option pgdata is set by pgwarden and cannot be configured"},
        ErrorCase{"InitdbBadEntry", R"({"bootstrap": {"initdb": [{"a": "1", "b": "2"}]}})",
                  "bootstrap.initdb[0]: expected an option name or a single option: value mapping, got a mapping"},
        ErrorCase{"BasebackupForbidden", R"({"postgresql": {"basebackup": [{"host": "x"}]}})",
                  "postgresql.basebackup[0]: the pg_basebackup option host is set by pgwarden and cannot be configured"},
        ErrorCase{"PodIp", R"({"etcd3": null, "kubernetes": {"pod_ip": "not-an-ip"}})",
                  "kubernetes.pod_ip: expected an IPv4 or IPv6 address, got string \"not-an-ip\""},
        ErrorCase{"UseEndpoints", R"({"etcd3": null, "kubernetes": {"use_endpoints": "perhaps"}})",
                  "kubernetes.use_endpoints: expected a boolean, got string \"perhaps\""},
        ErrorCase{"TagsNofailover", R"({"tags": {"nofailover": "maybe"}})",
                  "tags.nofailover: expected a boolean, got string \"maybe\""},
        ErrorCase{"UsersNotMap", R"({"bootstrap": {"users": ["admin"]}})",
                  "bootstrap.users: expected a mapping of user name: {password, options}, got a list"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

TEST(ConfigValidation, AllProblemsAreCollected) {
  auto res = load_patched(json::parse(
      R"({"scope": null, "name": null, "restapi": {"listen": "x"}, "bootstrap": {"dcs": {"loop_wait": "abc"}}})"));
  EXPECT_FALSE(res.config);
  EXPECT_GE(res.errors.size(), 4u) << joined(res.errors);
}

TEST(ConfigValidation, NumericStringsAreAcceptedAsPatroniCastsWithInt) {
  auto res = load_patched(json::parse(
      R"({"bootstrap": {"dcs": {"loop_wait": "10", "ttl": " 40 ", "retry_timeout": 10.0, "maximum_lag_on_failover": "1_000"}}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->dynamic.loop_wait, 10);
  EXPECT_EQ(res.config->dynamic.ttl, 40);
  EXPECT_EQ(res.config->dynamic.retry_timeout, 10);
  EXPECT_EQ(res.config->dynamic.maximum_lag_on_failover, 1000);
}

TEST(ConfigValidation, PasswordsNeverAppearInMessages) {
  const std::string secret = "S3cr3t-Value";
  json patch = {
      {"restapi", {{"listen", "bad"}, {"authentication", {{"username", 5}, {"password", secret}}},
                   {"keyfile_password", {{"x", secret}}}}},
      {"postgresql",
       {{"authentication",
         {{"superuser", {{"username", "postgres"}, {"password", secret}, {"sslpassword", {secret}}}},
          {"replication", {{"username", {secret}}, {"password", {{"nested", secret}}}}},
          {"rewind", secret}}},
        {"listen", "nope"}}},
      {"etcd3", {{"password", {secret}}, {"username", "u"}}},
      {"bootstrap", {{"users", {{"admin", {{"password", {secret}}, {"options", secret}}}, {"bob", secret}}},
                     {"dcs", {{"loop_wait", "abc"}}}}},
      {"unknown_" + std::string("key"), secret}};
  util::Environment env = {{"PATRONI_SUPERUSER_PASSWORD", secret}, {"PATRONI_admin_PASSWORD", secret},
                           {"PATRONI_admin_OPTIONS", "[unclosed"}, {"PATRONI_RESTAPI_PASSWORD", secret},
                           {"PATRONI_KUBERNETES_LABELS", "{bad"}};
  auto res = load_patched(patch, env);
  EXPECT_FALSE(res.config);
  EXPECT_GE(res.errors.size(), 5u) << joined(res.errors);
  for (const auto& e : res.errors) EXPECT_EQ(e.find("S3cr3t"), std::string::npos) << e;
  for (const auto& w : res.warnings) EXPECT_EQ(w.find("S3cr3t"), std::string::npos) << w;
}

}  // namespace
}  // namespace pgwarden::config
