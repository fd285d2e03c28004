#include <gtest/gtest.h>

#include <cstdlib>

#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/dcs/etcd/cluster_builder.hpp"
#include "pgwarden/dcs/etcd/etcd3_dcs.hpp"

namespace pgwarden::dcs::etcd {
namespace {

const std::string P = "/service/batman/";

KeyValue kv(const std::string& rel, const std::string& value, int64_t mod = 1, int64_t lease = 0) {
  return KeyValue{P + rel, value, mod, mod, lease};
}

TEST(EtcdClusterBuilder, FullCluster) {
  std::vector<KeyValue> kvs = {
      kv("members/node2", R"({"conn_url":"postgres://10.0.0.2:5432/postgres","api_url":"http://10.0.0.2:8008/patroni","state":"running","role":"replica","version":"3.0.2","xlog_location":100,"timeline":1})", 11, 555),
      kv("members/node1", R"({"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"master","tags":{"nofailover":true}})", 10, 777),
      kv("leader", "node1", 12, 777),
      kv("initialize", "7221432107392421234", 2),
      kv("config", R"({"ttl":30,"loop_wait":10,"pause":true})", 3),
      kv("history", R"([[1,25165984,"no recovery target specified","2023-01-01T00:00:00+00:00","node0"]])", 4),
      kv("failover", R"({"leader":"node1","member":"node2"})", 5),
      kv("sync", R"({"leader":"node1","sync_standby":"node2"})", 6),
      kv("status", R"({"optime":67108960,"slots":{"node2":100}})", 7),
      {"/service/other/leader", "x", 1, 1, 0},  // another cluster: ignored
      kv("members/sub/dir", "{}", 1),           // nested: not a member
  };
  Cluster c = build_cluster(kvs, P);
  ASSERT_EQ(c.initialize, std::optional<std::string>("7221432107392421234"));
  ASSERT_TRUE(c.config);
  EXPECT_EQ((*c.config)["ttl"], 30);
  EXPECT_EQ(c.config_index, 3);
  EXPECT_TRUE(c.is_paused());
  ASSERT_TRUE(c.leader);
  EXPECT_EQ(c.leader->name, "node1");
  EXPECT_EQ(c.leader->index, 12);
  EXPECT_EQ(c.leader->session, "777");
  EXPECT_EQ(c.last_lsn, 67108960);
  ASSERT_EQ(c.members.size(), 2u);
  EXPECT_EQ(c.members[0].name, "node1");
  EXPECT_EQ(c.members[0].index, 10);
  EXPECT_EQ(c.members[0].session, "777");
  EXPECT_EQ(c.members[0].role(), "master");
  EXPECT_TRUE(c.members[0].nofailover());
  EXPECT_EQ(c.members[1].name, "node2");
  EXPECT_EQ(c.members[1].data["xlog_location"], 100);
  ASSERT_TRUE(c.failover);
  EXPECT_EQ((*c.failover)["member"], "node2");
  EXPECT_EQ(c.failover_index, 5);
  ASSERT_TRUE(c.sync);
  EXPECT_EQ((*c.sync)["sync_standby"], "node2");
  EXPECT_EQ(c.sync_index, 6);
  ASSERT_TRUE(c.history);
  EXPECT_EQ(c.history->size(), 1u);
}

TEST(EtcdClusterBuilder, EmptyCluster) {
  Cluster c = build_cluster({}, P);
  EXPECT_FALSE(c.initialize);
  EXPECT_FALSE(c.leader);
  EXPECT_FALSE(c.config);
  EXPECT_TRUE(c.members.empty());
  EXPECT_EQ(c.last_lsn, 0);
}

TEST(EtcdClusterBuilder, MalformedValuesAreSkipped) {
  std::vector<KeyValue> kvs = {
      kv("members/good", R"({"role":"replica"})", 1, 5),
      kv("members/bad", "{not json", 2, 5),
      kv("members/array", "[1,2]", 3, 5),
      kv("config", "{broken", 4),
      kv("history", R"({"not":"a list"})", 5),
      kv("failover", "[]", 6),
      kv("sync", "nope{", 7),
      kv("status", "garbage", 8),
      kv("leader", "good", 9, 5),
      kv("initialize", "", 10),
  };
  Cluster c = build_cluster(kvs, P);
  ASSERT_EQ(c.members.size(), 1u);
  EXPECT_EQ(c.members[0].name, "good");
  EXPECT_FALSE(c.config);
  EXPECT_EQ(c.config_index, 0);
  EXPECT_FALSE(c.history);
  EXPECT_FALSE(c.failover);
  EXPECT_FALSE(c.sync);
  EXPECT_EQ(c.last_lsn, 0);
  ASSERT_TRUE(c.leader);
  EXPECT_EQ(c.leader->name, "good");
  ASSERT_TRUE(c.initialize);  // an empty sysid still means "initialized"
  EXPECT_EQ(*c.initialize, "");
}

TEST(EtcdClusterBuilder, LegacyOptimeAndStatusForms) {
  EXPECT_EQ(build_cluster({kv("optime/leader", "12345")}, P).last_lsn, 12345);
  EXPECT_EQ(build_cluster({kv("status", R"({"optime":"777"})")}, P).last_lsn, 777);
  // status wins over the legacy key
  EXPECT_EQ(build_cluster({kv("status", R"({"optime":5})"), kv("optime/leader", "9")}, P).last_lsn, 5);
  // a useless status falls back to the legacy key
  EXPECT_EQ(build_cluster({kv("status", R"({"slots":{}})"), kv("optime/leader", "9")}, P).last_lsn, 9);
  EXPECT_EQ(build_cluster({kv("optime/leader", "abc")}, P).last_lsn, 0);
}

TEST(EtcdClusterBuilder, LegacyMemberAndFailoverForms) {
  Cluster c = build_cluster(
      {kv("members/old", "postgres://u:p@10.0.0.9:5432/postgres?application_name=http://10.0.0.9:8008/patroni"),
       kv("failover", "node1:node2", 4)},
      P);
  ASSERT_EQ(c.members.size(), 1u);
  EXPECT_EQ(c.members[0].conn_url(), "postgres://u:p@10.0.0.9:5432/postgres");
  EXPECT_EQ(c.members[0].api_url(), "http://10.0.0.9:8008/patroni");
  ASSERT_TRUE(c.failover);
  EXPECT_EQ((*c.failover)["leader"], "node1");
  EXPECT_EQ((*c.failover)["member"], "node2");
}

TEST(EtcdClusterBuilder, SessionIsDecimalLeaseOrEmpty) {
  EXPECT_EQ(session_of(0), "");
  EXPECT_EQ(session_of(7587862349001312), "7587862349001312");
}

config::Config base_config() {
  config::Config cfg;
  cfg.scope = "batman";
  cfg.name = "node1";
  return cfg;
}

TEST(MakeDcs, Etcd3WhenHostsConfigured) {
  auto cfg = base_config();
  cfg.etcd3.hosts = {{"127.0.0.1", 2379}};
  cfg.namespace_ = "service";
  auto d = make_dcs(cfg);
  ASSERT_TRUE(d.ok()) << d.status().message();
  auto* e = dynamic_cast<Etcd3Dcs*>(d->get());
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->prefix(), "/service/batman/");
}

TEST(MakeDcs, KubernetesWithoutAnApiServerAndNoneAreInvalid) {
  auto cfg = base_config();
  cfg.kubernetes.enabled = true;
  // Neither in a pod nor with a kubeconfig: a clear configuration error, not a crash.
  const char* had = std::getenv("KUBECONFIG");
  std::string saved = had ? had : "";
  setenv("KUBECONFIG", "/nonexistent/pgwarden-kubeconfig", 1);
  unsetenv("KUBERNETES_SERVICE_HOST");
  auto k = make_dcs(cfg);
  if (had) setenv("KUBECONFIG", saved.c_str(), 1);
  else unsetenv("KUBECONFIG");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Code::kInvalid);
  EXPECT_NE(k.status().message().find("pgwarden-kubeconfig"), std::string::npos) << k.status().message();
  auto n = make_dcs(base_config());
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Code::kInvalid);
}

TEST(MakeDcs, OptionsFromConfig) {
  auto cfg = base_config();
  cfg.etcd3.hosts = {{"", 2379}, {"etcd2", 2380}};
  cfg.dynamic.ttl = 20;
  cfg.dynamic.retry_timeout = 7;
  auto o = etcd3_options_from(cfg);
  ASSERT_EQ(o.hosts.size(), 2u);
  EXPECT_EQ(o.hosts[0].host, "127.0.0.1");
  EXPECT_EQ(o.hosts[1].str(), "etcd2:2380");
  EXPECT_EQ(o.ttl, 20);
  EXPECT_EQ(o.retry_timeout, 7);
  EXPECT_EQ(o.prefix, "/service/batman/");
  EXPECT_EQ(o.name, "node1");
}

}  // namespace
}  // namespace pgwarden::dcs::etcd
