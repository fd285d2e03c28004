#pragma once
// Node views and PostgreSQL readings shared by the API unit tests.
#include <optional>

#include "pgwarden/ha/node_view.hpp"
#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::api::testing {

inline postgres::PgState primary_pg() {
  postgres::PgState pg;
  pg.in_recovery = false;
  pg.server_version = 150004;
  pg.timeline = 3;
  pg.wal_position = 50331744;
  pg.postmaster_start_time = "2023-08-30 13:23:45.123456+00:00";
  pg.replication_json = nlohmann::json::array({{{"usename", "replicator"},
                                                {"application_name", "n2"},
                                                {"client_addr", "10.0.0.2"},
                                                {"state", "streaming"},
                                                {"sync_state", "async"},
                                                {"sync_priority", 0}}})
                            .dump();
  pg.system_identifier = "7273145889263480040";
  return pg;
}

inline postgres::PgState replica_pg(int64_t replayed = 50331000) {
  postgres::PgState pg;
  pg.in_recovery = true;
  pg.server_version = 150004;
  pg.timeline = 3;
  pg.wal_position = replayed + 100;
  pg.received_location = replayed + 100;
  pg.replayed_location = replayed;
  pg.replayed_timestamp = "2023-08-30 13:30:00.5+00:00";
  pg.postmaster_start_time = "2023-08-30 13:23:45.123456+00:00";
  pg.system_identifier = "7273145889263480040";
  return pg;
}

inline dcs::Cluster cluster_led_by(const std::string& leader, int64_t last_lsn = 50331744) {
  dcs::Cluster c;
  c.initialize = "7273145889263480040";
  c.config = nlohmann::json{{"ttl", 30}, {"loop_wait", 10}};
  if (!leader.empty()) c.leader = dcs::Leader{leader, 1, "7587"};
  c.last_lsn = last_lsn;
  return c;
}

// The view's cluster as published: shared, never changed in place.
inline std::shared_ptr<const dcs::Cluster> shared(dcs::Cluster c) {
  return std::make_shared<const dcs::Cluster>(std::move(c));
}

// For a test to change the view's cluster: the view gets a cluster of its own to change.
inline dcs::Cluster& cluster_of(ha::NodeView& v) {
  auto c = std::make_shared<dcs::Cluster>(v.cluster ? *v.cluster : dcs::Cluster{});
  v.cluster = c;
  return *c;
}

inline ha::NodeView leader_view() {
  ha::NodeView v;
  v.name = "n1";
  v.scope = "demo";
  v.state = "running";
  v.role = "master";
  v.is_leader = true;
  v.cluster = shared(cluster_led_by("n1"));
  v.dcs_last_seen = 1693402000;
  v.next_scheduled_run = 1693402010;
  return v;
}

inline ha::NodeView replica_view() {
  ha::NodeView v;
  v.name = "n2";
  v.scope = "demo";
  v.state = "running";
  v.role = "replica";
  v.is_leader = false;
  v.cluster = shared(cluster_led_by("n1"));
  v.dcs_last_seen = 1693402000;
  v.next_scheduled_run = 1693402010;
  return v;
}

}  // namespace pgwarden::api::testing
