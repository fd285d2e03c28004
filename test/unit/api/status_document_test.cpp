// The status document's shape (reference section 3) for a primary, a replica and an
// unreachable PostgreSQL.
#include "pgwarden/api/status_document.hpp"

#include <gtest/gtest.h>

#include "fixtures.hpp"

namespace pgwarden::api {
namespace {

using namespace testing;

TEST(StatusDocument, Primary) {
  auto view = leader_view();
  view.tags = {{"zone", "a"}};
  const auto doc = build_status_document(view, primary_pg());
  EXPECT_EQ(doc["state"], "running");
  EXPECT_EQ(doc["postmaster_start_time"], "2023-08-30 13:23:45.123456+00:00");
  EXPECT_EQ(doc["role"], "master");
  EXPECT_EQ(doc["server_version"], 150004);
  EXPECT_EQ(doc["xlog"], (nlohmann::json{{"location", 50331744}}));
  EXPECT_EQ(doc["timeline"], 3);
  ASSERT_TRUE(doc["replication"].is_array());
  EXPECT_EQ(doc["replication"][0]["application_name"], "n2");
  EXPECT_FALSE(doc.contains("cluster_unlocked"));
  EXPECT_EQ(doc["dcs_last_seen"], 1693402000);
  EXPECT_TRUE(doc["dcs_last_seen"].is_number_integer());
  EXPECT_EQ(doc["tags"], (nlohmann::json{{"zone", "a"}}));
  EXPECT_EQ(doc["database_system_identifier"], "7273145889263480040");
  EXPECT_EQ(doc["patroni"], (nlohmann::json{{"version", "3.0.2"}, {"scope", "demo"}}));
  EXPECT_FALSE(doc.contains("pending_restart"));
  EXPECT_FALSE(doc.contains("pause"));
  EXPECT_FALSE(doc.contains("sync_standby"));
}

TEST(StatusDocument, ReplicationRowsOnlyWhenTheServerListedSome) {
  auto pg = primary_pg();
  for (const char* text : {"[]", "", "not json", "{\"usename\": \"x\"}"}) {
    pg.replication_json = text;
    const auto doc = build_status_document(leader_view(), pg);
    EXPECT_FALSE(doc.contains("replication")) << text;
    EXPECT_EQ(doc["role"], "master") << text << ": the rest of the document stands";
  }
}

TEST(StatusDocument, Replica) {
  auto view = replica_view();
  cluster_of(view).sync = nlohmann::json{{"leader", "n1"}, {"sync_standby", "n2"}};
  view.pending_restart = true;
  view.paused = true;
  const auto doc = build_status_document(view, replica_pg());
  EXPECT_EQ(doc["role"], "replica");
  EXPECT_EQ(doc["xlog"], (nlohmann::json{{"received_location", 50331100},
                                         {"replayed_location", 50331000},
                                         {"replayed_timestamp", "2023-08-30 13:30:00.5+00:00"},
                                         {"paused", false}}));
  EXPECT_EQ(doc["timeline"], 3);
  EXPECT_FALSE(doc.contains("replication"));  // no walsenders
  EXPECT_FALSE(doc.contains("tags"));         // empty tags are omitted
  EXPECT_EQ(doc["sync_standby"], true);
  EXPECT_EQ(doc["pending_restart"], true);
  EXPECT_EQ(doc["pause"], true);
}

TEST(StatusDocument, ReplicaWithoutReplayTimestampOrReceiver) {
  auto pg = replica_pg();
  pg.replayed_timestamp.reset();
  pg.received_location = 0;
  pg.replay_paused = true;
  const auto doc = build_status_document(replica_view(), pg);
  EXPECT_TRUE(doc["xlog"]["replayed_timestamp"].is_null());
  EXPECT_EQ(doc["xlog"]["received_location"], 50331000);
  EXPECT_EQ(doc["xlog"]["paused"], true);
}

TEST(StatusDocument, PostgresUnavailable) {
  auto view = replica_view();
  view.cluster = shared(cluster_led_by(""));  // and no leader
  const auto doc = build_status_document(view, std::nullopt);
  EXPECT_EQ(doc["state"], "unknown");  // the query failed although we believed it running
  EXPECT_EQ(doc["role"], "replica");
  EXPECT_EQ(doc["cluster_unlocked"], true);
  for (const char* key :
       {"xlog", "timeline", "server_version", "postmaster_start_time", "replication", "database_system_identifier"}) {
    EXPECT_FALSE(doc.contains(key)) << key;
  }
  EXPECT_EQ(doc["patroni"]["version"], "3.0.2");
  EXPECT_EQ(doc["dcs_last_seen"], 1693402000);

  view.state = "stopped";
  view.role = "uninitialized";
  view.cluster.reset();
  const auto stopped = build_status_document(view, std::nullopt);
  EXPECT_EQ(stopped["state"], "stopped");
  EXPECT_EQ(stopped["role"], "uninitialized");
  EXPECT_EQ(stopped["cluster_unlocked"], true);  // no DCS view at all
}

TEST(StatusDocument, StandbyLeaderReportsItsRole) {
  auto view = leader_view();
  view.role = "standby_leader";
  EXPECT_EQ(build_status_document(view, replica_pg())["role"], "standby_leader");
}

}  // namespace
}  // namespace pgwarden::api
