// Section 4 of the REST API reference, row by row: the status code for each health path in
// each node situation.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "fixtures.hpp"
#include "pgwarden/api/status_document.hpp"

namespace pgwarden::api {
namespace {

using namespace testing;
using Query = std::map<std::string, std::string>;

struct Node {
  ha::NodeView view;
  std::optional<postgres::PgState> pg;
};

Node leader() { return {leader_view(), primary_pg()}; }
Node replica() { return {replica_view(), replica_pg()}; }
Node stopped_replica() {
  Node n{replica_view(), std::nullopt};
  n.view.state = "stopped";
  return n;
}
Node unreachable_replica() { return {replica_view(), std::nullopt}; }  // state becomes "unknown"
Node replica_without_leader() {
  Node n = replica();
  n.view.cluster = shared(cluster_led_by(""));
  return n;
}
Node primary_without_lock() {  // PostgreSQL still a primary, but the lock is gone
  Node n = leader();
  n.view.is_leader = false;
  n.view.cluster = shared(cluster_led_by(""));
  return n;
}
Node paused_no_dcs(Node n) {
  n.view.cluster.reset();
  n.view.paused = true;
  n.view.is_leader = false;
  return n;
}
Node standby_leader() {
  Node n{leader_view(), replica_pg()};
  n.view.role = "standby_leader";
  cluster_of(n.view).config = nlohmann::json{{"standby_cluster", {{"host", "10.1.1.1"}, {"port", 5432}}}};
  return n;
}
Node paused_standby_leader() {
  Node n = paused_no_dcs(standby_leader());
  return n;
}
Node noloadbalance_replica() {
  Node n = replica();
  n.view.tags = {{"noloadbalance", true}};
  return n;
}
Node sync_replica() {
  Node n = replica();
  cluster_of(n.view).sync = nlohmann::json{{"leader", "n1"}, {"sync_standby", "n3, n2"}};
  return n;
}
Node async_replica() {
  Node n = replica();
  cluster_of(n.view).sync = nlohmann::json{{"leader", "n1"}, {"sync_standby", "n3"}};
  return n;
}
Node replica_without_dcs() {
  Node n = replica();
  n.view.cluster.reset();
  return n;
}
Node tagged(Node n) {
  n.view.tags = {{"zone", "a"}, {"clonefrom", true}, {"weight", 3}};
  return n;
}
Node leader_with_sync() {
  Node n = leader();
  cluster_of(n.view).sync = nlohmann::json{{"leader", "n1"}, {"sync_standby", "n2"}};
  return n;
}
Node leader_without_optime() {  // replica while the DCS has no optime: lag is never measured
  Node n = replica();
  cluster_of(n.view).last_lsn = 0;
  return n;
}

struct Row {
  const char* what;
  std::function<Node()> node;
  std::string path;
  Query query;
  int code;
};

TEST(HealthStatusCode, Table) {
  const std::vector<Row> rows = {
      // `/` is /primary.
      {"leader /", leader, "/", {}, 200},
      {"replica /", replica, "/", {}, 503},
      {"leader /primary", leader, "/primary", {}, 200},
      {"leader /master", leader, "/master", {}, 200},
      {"leader /read-write", leader, "/read-write", {}, 200},
      {"leader /leader", leader, "/leader", {}, 200},
      {"leader /standby-leader", leader, "/standby-leader", {}, 503},
      {"leader /replica", leader, "/replica", {}, 503},
      {"leader /read-only", leader, "/read-only", {}, 200},
      {"leader /health", leader, "/health", {}, 200},
      {"leader unknown path", leader, "/foo", {}, 503},
      {"leader /sync", leader_with_sync, "/sync", {}, 503},
      {"leader /async", leader_with_sync, "/async", {}, 503},
      {"leader /read-only-sync", leader_with_sync, "/read-only-sync", {}, 200},
      // Replica.
      {"replica /primary", replica, "/primary", {}, 503},
      {"replica /master", replica, "/master", {}, 503},
      {"replica /leader", replica, "/leader", {}, 503},
      {"replica /standby_leader", replica, "/standby_leader", {}, 503},
      {"replica /replica", replica, "/replica", {}, 200},
      {"replica substring", replica, "/my-replica-check", {}, 200},
      {"replica /read-only", replica, "/read-only", {}, 200},
      {"replica /health", replica, "/health", {}, 200},
      {"replica unknown path", replica, "/nothing/here", {}, 503},
      {"stopped replica /replica", stopped_replica, "/replica", {}, 503},
      {"stopped replica /health", stopped_replica, "/health", {}, 503},
      {"unreachable pg /health", unreachable_replica, "/health", {}, 503},
      {"unreachable pg /replica", unreachable_replica, "/replica", {}, 503},
      // No leader in the DCS.
      {"no leader: replica /replica", replica_without_leader, "/replica", {}, 200},
      {"no leader: replica /leader", replica_without_leader, "/leader", {}, 503},
      {"lost lock: primary /", primary_without_lock, "/", {}, 503},
      {"lost lock: primary /leader", primary_without_lock, "/leader", {}, 503},
      {"lost lock: primary /read-only", primary_without_lock, "/read-only", {}, 503},
      {"lost lock: primary /health", primary_without_lock, "/health", {}, 200},
      // Paused without a DCS view: trust PostgreSQL's role.
      {"paused/no dcs primary /", [] { return paused_no_dcs(leader()); }, "/", {}, 200},
      {"paused/no dcs primary /leader", [] { return paused_no_dcs(leader()); }, "/leader", {}, 200},
      {"paused/no dcs primary /standby-leader", [] { return paused_no_dcs(leader()); }, "/standby-leader", {}, 503},
      {"paused/no dcs replica /leader", [] { return paused_no_dcs(replica()); }, "/leader", {}, 503},
      {"paused/no dcs replica /replica", [] { return paused_no_dcs(replica()); }, "/replica", {}, 200},
      {"paused/no dcs replica /sync", [] { return paused_no_dcs(replica()); }, "/sync", {}, 503},
      {"paused/no dcs standby leader /standby-leader", paused_standby_leader, "/standby-leader", {}, 200},
      {"paused/no dcs standby leader /leader", paused_standby_leader, "/leader", {}, 200},
      {"paused/no dcs standby leader /primary", paused_standby_leader, "/primary", {}, 503},
      {"not paused/no dcs primary /",
       [] {
         Node n = leader();
         n.view.cluster.reset();
         n.view.is_leader = false;
         return n;
       },
       "/",
       {},
       503},
      // Standby cluster leader.
      {"standby leader /leader", standby_leader, "/leader", {}, 200},
      {"standby leader /standby-leader", standby_leader, "/standby-leader", {}, 200},
      {"standby leader /standby_leader", standby_leader, "/standby_leader", {}, 200},
      {"standby leader /primary", standby_leader, "/primary", {}, 503},
      {"standby leader /replica", standby_leader, "/replica", {}, 503},
      {"standby leader /read-only", standby_leader, "/read-only", {}, 200},
      // Lag against the leader's optime (744 bytes behind).
      {"lag within", replica, "/replica", {{"lag", "1kB"}}, 200},
      {"lag exact", replica, "/replica", {{"lag", "744"}}, 200},
      {"lag exceeded", replica, "/replica", {{"lag", "100"}}, 503},
      {"lag exceeded read-only", replica, "/read-only", {{"lag", "100B"}}, 503},
      {"lag unparseable = no limit", replica, "/replica", {{"lag", "lots"}}, 200},
      {"lag without optime", leader_without_optime, "/replica", {{"lag", "0"}}, 200},
      {"lag does not affect /health", replica, "/health", {{"lag", "0"}}, 200},
      // Tag filters.
      {"tag match", [] { return tagged(replica()); }, "/replica", {{"tag_zone", "a"}}, 200},
      {"tag mismatch", [] { return tagged(replica()); }, "/replica", {{"tag_zone", "b"}}, 503},
      {"tag missing", [] { return tagged(replica()); }, "/replica", {{"tag_rack", "1"}}, 503},
      {"tag bool lowercase", [] { return tagged(replica()); }, "/replica", {{"tag_clonefrom", "true"}}, 200},
      {"tag bool case-sensitive", [] { return tagged(replica()); }, "/replica", {{"tag_clonefrom", "True"}}, 503},
      {"tag number", [] { return tagged(replica()); }, "/replica", {{"tag_weight", "3"}}, 200},
      {"tags all must match",
       [] { return tagged(replica()); },
       "/replica",
       {{"tag_zone", "a"}, {"tag_weight", "4"}},
       503},
      {"tag filter /health", [] { return tagged(replica()); }, "/health", {{"tag_zone", "b"}}, 503},
      {"tag filter /read-only on leader", [] { return tagged(leader()); }, "/read-only", {{"tag_zone", "b"}}, 503},
      {"tags ignored /primary", [] { return tagged(leader()); }, "/primary", {{"tag_zone", "b"}}, 200},
      {"tags ignored /", [] { return tagged(leader()); }, "/", {{"tag_zone", "b"}}, 200},
      {"tags ignored /leader", [] { return tagged(leader()); }, "/leader", {{"tag_x", "b"}}, 200},
      {"tags on 503 stay 503", [] { return tagged(replica()); }, "/primary", {{"tag_zone", "a"}}, 503},
      {"other params ignored", [] { return tagged(replica()); }, "/replica", {{"zone", "b"}}, 200},
      // noloadbalance.
      {"noloadbalance /replica", noloadbalance_replica, "/replica", {}, 503},
      {"noloadbalance /read-only", noloadbalance_replica, "/read-only", {}, 503},
      {"noloadbalance /health", noloadbalance_replica, "/health", {}, 200},
      {"noloadbalance /async", noloadbalance_replica, "/async", {}, 503},
      // Synchronous standby.
      {"sync replica /sync", sync_replica, "/sync", {}, 200},
      {"sync replica /synchronous", sync_replica, "/synchronous", {}, 200},
      {"sync replica /async", sync_replica, "/async", {}, 503},
      {"sync replica /read-only-sync", sync_replica, "/read-only-sync", {}, 200},
      {"sync replica /read-only-synchronous", sync_replica, "/read-only-synchronous", {}, 200},
      {"sync replica /read-only", sync_replica, "/read-only", {}, 200},
      {"async replica /sync", async_replica, "/sync", {}, 503},
      {"async replica /async", async_replica, "/async", {}, 200},
      {"async replica /asynchronous", async_replica, "/asynchronous", {}, 200},
      {"async replica /read-only-sync", async_replica, "/read-only-sync", {}, 503},
      {"replica without sync key /async", replica, "/async", {}, 200},
      {"sync needs exact path", sync_replica, "/sync/", {}, 503},
      {"no dcs view /sync", replica_without_dcs, "/sync", {}, 503},
      {"no dcs view /async", replica_without_dcs, "/async", {}, 503},
      {"sync replica lagging /sync", sync_replica, "/sync", {{"lag", "1"}}, 503},
  };
  for (const auto& row : rows) {
    const Node n = row.node();
    const auto doc = build_status_document(n.view, n.pg);
    EXPECT_EQ(health_status_code(row.path, row.query, n.view, doc), row.code) << row.what << " (" << row.path << ")";
  }
}

TEST(LivenessStatusCode, LeaderAndReplicaThresholds) {
  auto leader = leader_view();  // ttl 30, next run at T
  const double t = leader.next_scheduled_run;
  EXPECT_EQ(liveness_status_code(leader, t + 5), 200);
  EXPECT_EQ(liveness_status_code(leader, t + 30), 200);
  EXPECT_EQ(liveness_status_code(leader, t + 31), 503);
  auto replica = replica_view();
  EXPECT_EQ(liveness_status_code(replica, t + 31), 200);
  EXPECT_EQ(liveness_status_code(replica, t + 60), 200);
  EXPECT_EQ(liveness_status_code(replica, t + 61), 503);
  // A running primary without the lock still counts as primary.
  auto primary = leader_view();
  primary.is_leader = false;
  EXPECT_EQ(liveness_status_code(primary, t + 31), 503);
  leader.paused = true;
  EXPECT_EQ(liveness_status_code(leader, t + 1000), 200);
}

TEST(ReadinessStatusCode, Rules) {
  auto leader = leader_view();
  const double seen = leader.dcs_last_seen;
  leader.state = "starting";
  EXPECT_EQ(readiness_status_code(leader, seen + 1000), 200);  // lock holder is always ready
  auto replica = replica_view();
  EXPECT_EQ(readiness_status_code(replica, seen + 10), 200);
  EXPECT_EQ(readiness_status_code(replica, seen + 30), 200);
  EXPECT_EQ(readiness_status_code(replica, seen + 31), 503);  // DCS view expired
  replica.state = "starting";
  EXPECT_EQ(readiness_status_code(replica, seen + 1), 503);
  auto never = replica_view();
  never.dcs_last_seen = 0;
  EXPECT_EQ(readiness_status_code(never, 10), 503);
}

}  // namespace
}  // namespace pgwarden::api
