// Patroni's Kubernetes layout: objects → Cluster, and our intentions → annotations/bodies.
#include <gtest/gtest.h>

#include "pgwarden/dcs/kubernetes/layout.hpp"

namespace pgwarden::dcs::k8s {
namespace {

using nlohmann::json;

json object(const std::string& name, const std::string& rv, json annotations) {
  return json{{"metadata", {{"name", name}, {"resourceVersion", rv}, {"annotations", std::move(annotations)}}}};
}

TEST(K8sLayout, NamesFollowTheMode) {
  Layout e = layout_from("ns", "db", true, {{"app", "x"}}, "cluster-name", "role");
  EXPECT_EQ(e.kind(), "endpoints");
  EXPECT_EQ(e.leader_name(), "db");
  EXPECT_EQ(e.config_name(), "db-config");
  EXPECT_EQ(e.failover_name(), "db-failover");
  EXPECT_EQ(e.sync_name(), "db-sync");
  EXPECT_EQ(e.path("pods", "db-0"), "/api/v1/namespaces/ns/pods/db-0");
  EXPECT_EQ(e.selector(), "app%3Dx%2Ccluster-name%3Ddb");
  Layout c = layout_from("", "db", false, {}, "", "");
  EXPECT_EQ(c.kind(), "configmaps");
  EXPECT_EQ(c.leader_name(), "db-leader");
  EXPECT_EQ(c.namespace_, "default");
  EXPECT_EQ(c.role_label, "role");
  EXPECT_EQ(c.labels.at("cluster-name"), "db");
}

TEST(K8sLayout, BuildsTheClusterFromObjectsAndPods) {
  json leader = object("db", "17", {{"leader", "db-1"}, {"optime", "50331648"}, {"ttl", "30"}});
  json config = object("db-config", "12",
                       {{"config", R"({"ttl":30,"loop_wait":10})"}, {"initialize", "7312345678901234567"},
                        {"history", R"([[1,25165984,"no recovery target specified","2024-01-18T15:43:45+00:00","db-1"]])"}});
  json failover = object("db-failover", "20", {{"leader", "db-1"}, {"member", "db-2"}});
  json sync = object("db-sync", "21", {{"leader", "db-1"}, {"sync_standby", "db-0"}});
  json pod0 = object("db-0", "30", {{"status", R"({"conn_url":"postgres://10.0.0.1:5432/postgres","state":"running","role":"replica"})"}});
  json pod1 = object("db-1", "31", {{"status", R"({"state":"running","role":"master","xlog_location":50331648})"}});
  json pod2 = json{{"metadata", {{"name", "db-2"}, {"resourceVersion", "32"}}}};
  ClusterInputs in;
  in.leader = &leader;
  in.config = &config;
  in.failover = &failover;
  in.sync = &sync;
  in.pods = {&pod2, &pod1, &pod0};
  in.leader_valid = true;
  std::vector<std::string> warnings;
  Cluster c = build_cluster(in, &warnings);
  EXPECT_TRUE(warnings.empty());
  ASSERT_TRUE(c.leader);
  EXPECT_EQ(c.leader->name, "db-1");
  EXPECT_EQ(c.leader->index, 17);
  EXPECT_EQ(c.last_lsn, 50331648);
  ASSERT_TRUE(c.initialize);
  EXPECT_EQ(*c.initialize, "7312345678901234567");
  ASSERT_TRUE(c.config);
  EXPECT_EQ((*c.config)["loop_wait"], 10);
  EXPECT_EQ(c.config_index, 12);
  ASSERT_TRUE(c.history);
  EXPECT_EQ((*c.history)[0][0], 1);
  ASSERT_TRUE(c.failover);
  EXPECT_EQ((*c.failover)["member"], "db-2");
  EXPECT_EQ(c.failover_index, 20);
  ASSERT_TRUE(c.sync);
  EXPECT_EQ((*c.sync)["sync_standby"], "db-0");
  ASSERT_EQ(c.members.size(), 3u);
  EXPECT_EQ(c.members[0].name, "db-0");
  EXPECT_EQ(c.members[0].conn_url(), "postgres://10.0.0.1:5432/postgres");
  EXPECT_EQ(c.members[1].role(), "master");
  EXPECT_EQ(c.members[1].index, 31);
  EXPECT_TRUE(c.members[2].data.empty());  // a pod without status is a member with no data
}

TEST(K8sLayout, LeaderIsAbsentWhenExpiredOrReleased) {
  struct Row {
    const char* what;
    json annotations;
    bool valid;
    bool expect_leader;
  } rows[] = {
      {"valid holder", {{"leader", "a"}}, true, true},
      {"expired by our clock", {{"leader", "a"}}, false, false},
      {"released (no leader annotation)", {{"optime", "5"}}, true, false},
      {"empty holder", {{"leader", ""}}, true, false},
  };
  for (const auto& r : rows) {
    json leader = object("db", "3", r.annotations);
    ClusterInputs in;
    in.leader = &leader;
    in.leader_valid = r.valid;
    Cluster c = build_cluster(in, nullptr);
    EXPECT_EQ(c.leader.has_value(), r.expect_leader) << r.what;
  }
  ClusterInputs none;
  none.leader_valid = true;
  EXPECT_FALSE(build_cluster(none, nullptr).leader);
}

TEST(K8sLayout, MalformedAnnotationsLoseOnlyThemselvesWithAWarning) {
  json leader = object("db", "3", {{"leader", "a"}, {"optime", "not-a-number"}});
  json config = object("db-config", "4", {{"config", "{broken"}, {"history", "{}"}, {"initialize", "123"}});
  json pod = object("db-0", "5", {{"status", "[1,2"}});
  json pod_ok = object("db-1", "6", {{"status", R"({"state":"running"})"}});
  ClusterInputs in;
  in.leader = &leader;
  in.config = &config;
  in.pods = {&pod, &pod_ok};
  in.leader_valid = true;
  std::vector<std::string> warnings;
  Cluster c = build_cluster(in, &warnings);
  EXPECT_EQ(warnings.size(), 4u);
  ASSERT_TRUE(c.leader);
  EXPECT_EQ(c.last_lsn, 0);
  EXPECT_FALSE(c.config);
  EXPECT_FALSE(c.history);
  EXPECT_EQ(*c.initialize, "123");
  ASSERT_EQ(c.members.size(), 2u);
  EXPECT_TRUE(c.members[0].data.empty());
  EXPECT_EQ(c.members[1].state(), "running");
  for (const auto& w : warnings) EXPECT_NE(w.find("malformed"), std::string::npos) << w;
  // A non-string annotation value (which a real server refuses) is ignored, not a crash.
  json odd = json{{"metadata", {{"name", "db"}, {"annotations", {{"leader", 5}}}}}};
  ClusterInputs in2;
  in2.leader = &odd;
  in2.leader_valid = true;
  EXPECT_FALSE(build_cluster(in2, nullptr).leader);
}

TEST(K8sLayout, TimestampsArePythonIsoformat) {
  using namespace std::chrono;
  system_clock::time_point t{seconds(1705592625) + microseconds(123456)};
  EXPECT_EQ(iso_timestamp(t), "2024-01-18T15:43:45.123456+00:00");
  EXPECT_EQ(iso_timestamp(system_clock::time_point{seconds(1705592625)}), "2024-01-18T15:43:45+00:00");
  EXPECT_EQ(iso_timestamp(system_clock::time_point{seconds(1705592625) + microseconds(5)}),
            "2024-01-18T15:43:45.000005+00:00");
}

TEST(K8sLayout, LockAnnotationsCountTransitionsAsPatroni) {
  struct Row {
    const char* what;
    json previous;  // annotations, or null for no object
    const char* acquire;
    const char* transitions;
  } rows[] = {
      {"no object", nullptr, "NOW", "0"},
      {"object without a record", json::object(), "NOW", "0"},
      {"renewal keeps acquireTime", {{"leader", "me"}, {"acquireTime", "T0"}, {"transitions", "3"}}, "T0", "3"},
      {"new holder counts one", {{"leader", "other"}, {"acquireTime", "T0"}, {"transitions", "3"}}, "NOW", "4"},
      {"released lock counts one", {{"acquireTime", "T0"}, {"transitions", "3"}, {"renewTime", "T1"}}, "NOW", "4"},
      {"garbage count restarts", {{"leader", "other"}, {"transitions", "x"}}, "NOW", "1"},
  };
  for (const auto& r : rows) {
    json prev = r.previous.is_null() ? json() : object("db", "1", r.previous);
    json a = lock_annotations(r.previous.is_null() ? nullptr : &prev, "me", 30, "NOW");
    EXPECT_EQ(a["leader"], "me") << r.what;
    EXPECT_EQ(a["ttl"], "30") << r.what;
    EXPECT_EQ(a["renewTime"], "NOW") << r.what;
    EXPECT_EQ(a["acquireTime"], r.acquire) << r.what;
    EXPECT_EQ(a["transitions"], r.transitions) << r.what;
  }
}

TEST(K8sLayout, LeaderSubsetsPointAtThePodWithTheChartsPortNames) {
  json pod = {{"metadata", {{"name", "db-1"}, {"uid", "u-1"}}}, {"spec", {{"nodeName", "n1"}, {"hostname", "db-1"}}}};
  json ports = json::parse(R"([{"name":"postgresql","port":5432},{"name":"pgbouncer","port":"6432"}])");
  json s = leader_subsets("192.0.2.11", &pod, "ns", ports);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["addresses"][0]["ip"], "192.0.2.11");
  EXPECT_EQ(s[0]["addresses"][0]["nodeName"], "n1");
  EXPECT_EQ(s[0]["addresses"][0]["targetRef"]["uid"], "u-1");
  EXPECT_EQ(s[0]["addresses"][0]["targetRef"]["kind"], "Pod");
  EXPECT_EQ(s[0]["ports"][0]["name"], "postgresql");
  EXPECT_EQ(s[0]["ports"][1]["port"], 6432);
  json plain = leader_subsets("192.0.2.11", nullptr, "ns", json::array());
  EXPECT_EQ(plain[0]["ports"], json::parse(R"([{"port":5432}])"));
  EXPECT_TRUE(leader_subsets("", &pod, "ns", ports).empty());
  EXPECT_TRUE(same_subsets(s, leader_subsets("192.0.2.11", nullptr, "ns", ports)));
  EXPECT_FALSE(same_subsets(s, leader_subsets("192.0.2.12", nullptr, "ns", ports)));
  EXPECT_FALSE(same_subsets(s, plain));
  EXPECT_FALSE(same_subsets(s, json::array()));
  EXPECT_TRUE(same_subsets(json::array(), json()));
}

TEST(K8sLayout, RoleLabelValues) {
  EXPECT_EQ(role_label_value(true, json{{"state", "stopped"}}), "master");
  EXPECT_EQ(role_label_value(false, json{{"state", "running"}, {"role", "replica"}}), "replica");
  EXPECT_EQ(role_label_value(false, json{{"state", "running"}, {"role", "primary"}}), "master");
  EXPECT_TRUE(role_label_value(false, json{{"state", "starting"}, {"role", "replica"}}).is_null());
  EXPECT_TRUE(role_label_value(false, json::object()).is_null());
}

TEST(K8sLayout, BodiesCarryLabelsAndThePrecondition) {
  Layout l = layout_from("ns", "db", true, {{"app", "x"}}, "cluster-name", "role");
  json b = object_body(l, "db", json{{"leader", nullptr}}, std::string("42"));
  EXPECT_EQ(b["metadata"]["resourceVersion"], "42");
  EXPECT_EQ(b["metadata"]["labels"]["cluster-name"], "db");
  EXPECT_TRUE(b["metadata"]["annotations"]["leader"].is_null());
  EXPECT_FALSE(object_body(l, "db", json::object(), std::nullopt)["metadata"].contains("resourceVersion"));
}

TEST(K8sLayout, FailoverAndSyncAnnotations) {
  json f = failover_annotations(json{{"leader", "a"}, {"candidate", "b"}});
  EXPECT_EQ(f["leader"], "a");
  EXPECT_EQ(f["member"], "b");
  EXPECT_TRUE(f["scheduled_at"].is_null());
  json cleared = failover_annotations(json::object());
  for (const char* k : {"leader", "member", "scheduled_at"}) EXPECT_TRUE(cleared[k].is_null()) << k;
  json s = sync_annotations(json{{"leader", "a"}, {"sync_standby", "b,c"}});
  EXPECT_EQ(s["sync_standby"], "b,c");
}

}  // namespace
}  // namespace pgwarden::dcs::k8s
