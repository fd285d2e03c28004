// GET /cluster, /history, /config, /metrics and PATCH/PUT /config: the pure helpers and the
// router's status codes, with hand-made node views and a fake DCS.
#include "pgwarden/api/management.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "fixtures.hpp"
#include "pgwarden/api/router.hpp"
#include "pgwarden/api/status_document.hpp"

namespace pgwarden::api {
namespace {

using namespace testing;
using nlohmann::json;

dcs::Member member(const std::string& name, json data) {
  dcs::Member m;
  m.name = name;
  m.data = std::move(data);
  return m;
}

dcs::Cluster three_members() {
  dcs::Cluster c = cluster_led_by("n1", 50331744);
  c.config_index = 7;
  c.members = {
      member("n3", {{"conn_url", "postgres://10.0.0.3/postgres"},
                    {"api_url", "http://10.0.0.3:8008/patroni"},
                    {"state", "running"},
                    {"role", "replica"},
                    {"xlog_location", 50331000},
                    {"timeline", 3},
                    {"tags", {{"nofailover", true}}}}),
      member("n1", {{"conn_url", "postgres://10.0.0.1:5433/postgres"},
                    {"api_url", "http://10.0.0.1:8008/patroni"},
                    {"state", "running"},
                    {"role", "master"},
                    {"xlog_location", 50331744},
                    {"timeline", 3}}),
      member("n2", {{"conn_url", "postgres://[FD00::2]:5432/postgres"},
                    {"api_url", "http://10.0.0.2:8008/patroni"},
                    {"state", "streaming"},
                    {"role", "replica"},
                    {"xlog_location", 50331800},
                    {"pending_restart", true}}),
      member("n4", {{"api_url", "http://10.0.0.4:8008/patroni"}, {"state", "starting"}}),
  };
  c.sync = json{{"leader", "n1"}, {"sync_standby", "n2, nX"}};
  return c;
}

TEST(ClusterAsJson, MembersRolesLagAndAddresses) {
  const json j = cluster_as_json(three_members(), "demo");
  EXPECT_EQ(j["scope"], "demo");
  EXPECT_FALSE(j.contains("pause"));
  EXPECT_FALSE(j.contains("scheduled_switchover"));
  ASSERT_EQ(j["members"].size(), 4u);
  const json& n1 = j["members"][0];
  const json& n2 = j["members"][1];
  const json& n3 = j["members"][2];
  const json& n4 = j["members"][3];
  EXPECT_EQ(n1["name"], "n1");  // sorted by name
  EXPECT_EQ(n1["role"], "leader");
  EXPECT_EQ(n1["host"], "10.0.0.1");
  EXPECT_EQ(n1["port"], 5433);
  EXPECT_EQ(n1["timeline"], 3);
  EXPECT_FALSE(n1.contains("lag"));  // the leader has no lag
  EXPECT_EQ(n2["role"], "sync_standby");
  EXPECT_EQ(n2["state"], "streaming");
  EXPECT_EQ(n2["host"], "fd00::2");  // urlparse: brackets gone, lower case
  EXPECT_EQ(n2["lag"], 0);           // ahead of the last known leader position
  EXPECT_EQ(n2["pending_restart"], true);
  EXPECT_EQ(n3["role"], "replica");
  EXPECT_EQ(n3["port"], 5432);  // no port in conn_url
  EXPECT_EQ(n3["lag"], 744);
  EXPECT_EQ(n3["tags"], (json{{"nofailover", true}}));
  EXPECT_EQ(n3["api_url"], "http://10.0.0.3:8008/patroni");
  EXPECT_EQ(n4["lag"], "unknown");
  EXPECT_FALSE(n4.contains("host"));  // no conn_url
  EXPECT_FALSE(n4.contains("timeline"));
}

TEST(ClusterAsJson, StandbyLeaderPauseAndScheduledSwitchover) {
  dcs::Cluster c = three_members();
  c.config = json{{"pause", true}, {"standby_cluster", {{"host", "10.1.0.1"}, {"port", 5432}}}};
  c.failover = json{{"leader", "n1"}, {"member", "n2"}, {"scheduled_at", "2016-01-14T10:09:57.1394Z"}};
  json j = cluster_as_json(c, "demo");
  EXPECT_EQ(j["members"][0]["role"], "standby_leader");
  EXPECT_EQ(j["pause"], true);
  EXPECT_EQ(j["scheduled_switchover"],
            (json{{"at", "2016-01-14T10:09:57.139400+00:00"}, {"from", "n1"}, {"to", "n2"}}));
  // A standby_cluster section without host, port or restore_command is no standby cluster;
  // and a failover without scheduled_at is no scheduled switchover.
  c.config = json{{"standby_cluster", {{"primary_slot_name", "x"}}}};
  c.failover = json{{"leader", "n1"}, {"member", "n2"}};
  j = cluster_as_json(c, "demo");
  EXPECT_EQ(j["members"][0]["role"], "leader");
  EXPECT_FALSE(j.contains("scheduled_switchover"));
  EXPECT_FALSE(j.contains("pause"));
}

TEST(Timestamps, EpochAndIsoformat) {
  EXPECT_DOUBLE_EQ(*timestamp_to_epoch("2023-08-30 13:23:45.123456+00:00"), 1693401825.123456);
  EXPECT_DOUBLE_EQ(*timestamp_to_epoch("2023-08-30 15:23:45+02:00"), 1693401825.0);
  EXPECT_DOUBLE_EQ(*timestamp_to_epoch("1970-01-01T00:00:00Z"), 0.0);
  EXPECT_FALSE(timestamp_to_epoch("yesterday"));
  EXPECT_EQ(python_isoformat("2023-08-30T13:23:45Z"), "2023-08-30T13:23:45+00:00");
  EXPECT_EQ(python_isoformat("2023-08-30T13:23:45.5-05:30"), "2023-08-30T13:23:45.500000-05:30");
  EXPECT_EQ(python_isoformat("2023-08-30 13:23"), "2023-08-30T13:23:00");
  EXPECT_EQ(python_isoformat("garbage"), "garbage");
}

std::string metric_line(const std::string& text, const std::string& name) {
  const std::string prefix = name + "{";
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return text.substr(pos, text.find('\n', pos) - pos);
    pos += prefix.size();
  }
  return "";
}

TEST(Metrics, PrimaryReplicaAndDown) {
  ha::NodeView v = leader_view();
  v.paused = true;
  std::string text = render_metrics(v, build_status_document(v, primary_pg()));
  const std::string labels = "{scope=\"demo\",name=\"n1\"}";
  EXPECT_EQ(metric_line(text, "patroni_version"), "patroni_version" + labels + " 030002");
  EXPECT_EQ(metric_line(text, "patroni_postgres_running"), "patroni_postgres_running" + labels + " 1");
  EXPECT_EQ(metric_line(text, "patroni_postmaster_start_time"),
            "patroni_postmaster_start_time" + labels + " 1693401825.123456");
  EXPECT_EQ(metric_line(text, "patroni_master"), "patroni_master" + labels + " 1");
  EXPECT_EQ(metric_line(text, "patroni_primary"), "patroni_primary" + labels + " 1");
  EXPECT_EQ(metric_line(text, "patroni_xlog_location"), "patroni_xlog_location" + labels + " 50331744");
  EXPECT_EQ(metric_line(text, "patroni_replica"), "patroni_replica" + labels + " 0");
  EXPECT_EQ(metric_line(text, "patroni_xlog_replayed_timestamp"), "patroni_xlog_replayed_timestamp" + labels + " 0");
  EXPECT_EQ(metric_line(text, "patroni_postgres_server_version"), "patroni_postgres_server_version" + labels + " 150004");
  EXPECT_EQ(metric_line(text, "patroni_cluster_unlocked"), "patroni_cluster_unlocked" + labels + " 0");
  EXPECT_EQ(metric_line(text, "patroni_postgres_timeline"), "patroni_postgres_timeline" + labels + " 3");
  EXPECT_EQ(metric_line(text, "patroni_dcs_last_seen"), "patroni_dcs_last_seen" + labels + " 1693402000");
  EXPECT_EQ(metric_line(text, "patroni_is_paused"), "patroni_is_paused" + labels + " 1");
  EXPECT_NE(text.find("# HELP patroni_xlog_location Current location of the Postgres transaction log, 0 if this node "
                      "is not the leader.\n# TYPE patroni_xlog_location counter\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE patroni_postgres_timeline counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE patroni_is_paused gauge\n"), std::string::npos);
  // Every metric Patroni 3.0.2 exports, each with HELP and TYPE.
  const std::vector<std::string> names = {
      "patroni_version", "patroni_postgres_running", "patroni_postmaster_start_time", "patroni_master",
      "patroni_primary", "patroni_xlog_location", "patroni_standby_leader", "patroni_replica",
      "patroni_sync_standby", "patroni_xlog_received_location", "patroni_xlog_replayed_location",
      "patroni_xlog_replayed_timestamp", "patroni_xlog_paused", "patroni_postgres_server_version",
      "patroni_cluster_unlocked", "patroni_failsafe_mode_is_active", "patroni_postgres_timeline",
      "patroni_dcs_last_seen", "patroni_pending_restart", "patroni_is_paused"};
  for (const auto& n : names) {
    EXPECT_FALSE(metric_line(text, n).empty()) << n;
    EXPECT_NE(text.find("# HELP " + n + " "), std::string::npos) << n;
    EXPECT_NE(text.find("# TYPE " + n + " "), std::string::npos) << n;
  }
  EXPECT_EQ(text.back(), '\n');

  ha::NodeView r = replica_view();
  cluster_of(r).sync = json{{"leader", "n1"}, {"sync_standby", "n2"}};
  text = render_metrics(r, build_status_document(r, replica_pg(50331000)));
  EXPECT_EQ(metric_line(text, "patroni_replica"), "patroni_replica{scope=\"demo\",name=\"n2\"} 1");
  EXPECT_EQ(metric_line(text, "patroni_sync_standby"), "patroni_sync_standby{scope=\"demo\",name=\"n2\"} 1");
  EXPECT_EQ(metric_line(text, "patroni_xlog_location"), "patroni_xlog_location{scope=\"demo\",name=\"n2\"} 0");
  EXPECT_EQ(metric_line(text, "patroni_xlog_replayed_location"),
            "patroni_xlog_replayed_location{scope=\"demo\",name=\"n2\"} 50331000");
  EXPECT_EQ(metric_line(text, "patroni_xlog_received_location"),
            "patroni_xlog_received_location{scope=\"demo\",name=\"n2\"} 50331100");
  EXPECT_EQ(metric_line(text, "patroni_xlog_replayed_timestamp"),
            "patroni_xlog_replayed_timestamp{scope=\"demo\",name=\"n2\"} 1693402200.5");

  ha::NodeView down = replica_view();
  down.cluster.reset();
  down.name = "we\"ird";
  text = render_metrics(down, build_status_document(down, std::nullopt));
  EXPECT_EQ(metric_line(text, "patroni_postgres_running"), "patroni_postgres_running{scope=\"demo\",name=\"we\\\"ird\"} 0");
  EXPECT_EQ(metric_line(text, "patroni_cluster_unlocked"), "patroni_cluster_unlocked{scope=\"demo\",name=\"we\\\"ird\"} 1");
  EXPECT_EQ(metric_line(text, "patroni_postgres_server_version"),
            "patroni_postgres_server_version{scope=\"demo\",name=\"we\\\"ird\"} 0");
}

TEST(PatchConfig, LikePatroni) {
  json config = {{"ttl", 30}, {"loop_wait", 10}, {"postgresql", {{"parameters", {{"max_connections", 100}}}}},
                 {"pause", true}, {"gone", nullptr}};
  EXPECT_FALSE(patch_config(config, json{{"ttl", "30"}}));  // same text: no change, the int stays
  EXPECT_EQ(config["ttl"], 30);
  EXPECT_FALSE(patch_config(config, json{{"gone", nullptr}}));  // popping a stored null is no change
  EXPECT_FALSE(config.contains("gone"));
  EXPECT_FALSE(patch_config(config, json{{"absent", nullptr}}));
  EXPECT_TRUE(patch_config(config, json{{"pause", nullptr}}));
  EXPECT_FALSE(config.contains("pause"));
  EXPECT_TRUE(patch_config(config, json{{"postgresql", {{"parameters", {{"work_mem", "8MB"}, {"max_connections", nullptr}}}}}}));
  EXPECT_EQ(config["postgresql"], (json{{"parameters", {{"work_mem", "8MB"}}}}));
  EXPECT_TRUE(patch_config(config, json{{"loop_wait", {{"x", 1}}}}));  // an object replaces a scalar
  EXPECT_EQ(config["loop_wait"], (json{{"x", 1}}));
  EXPECT_TRUE(patch_config(config, json{{"ttl", 20}, {"new", {1, 2}}}));
  EXPECT_EQ(config["ttl"], 20);
  EXPECT_EQ(config["new"], (json{1, 2}));
  EXPECT_FALSE(patch_config(config, json{{"new", {1, 2}}}));
  EXPECT_TRUE(patch_config(config, json{{"flag", true}}));
  EXPECT_FALSE(patch_config(config, json{{"flag", true}}));
  EXPECT_TRUE(patch_config(config, json{{"flag", "true"}}));  // str(True) is "True"
}

TEST(ValidateDynamicConfig, TimingsMustBePositiveIntegers) {
  EXPECT_TRUE(validate_dynamic_config(json{{"ttl", 30}, {"loop_wait", "10"}, {"retry_timeout", 10}}).empty());
  EXPECT_TRUE(validate_dynamic_config(json{{"pause", true}, {"custom", {{"a", 1}}}}).empty());
  EXPECT_TRUE(validate_dynamic_config(json{{"ttl", nullptr}}).empty());  // a deletion
  for (const json& bad : {json{{"ttl", 0}}, json{{"loop_wait", -1}}, json{{"retry_timeout", "soon"}},
                          json{{"ttl", true}}, json{{"ttl", {{"a", 1}}}}}) {
    auto errors = validate_dynamic_config(bad);
    ASSERT_EQ(errors.size(), 1u) << bad.dump();
    EXPECT_NE(errors[0].find(bad.begin().key()), std::string::npos) << errors[0];
  }
  EXPECT_FALSE(validate_dynamic_config(json{{"postgresql", {{"parameters", {{"work_mem", {{"x", 1}}}}}}}}).empty());
  EXPECT_FALSE(validate_dynamic_config(json::array()).empty());
}

// ---- the router with a fake DCS ----

struct ConfigEndpoints : ::testing::Test {
  ha::NodeBoard board;
  config::RestApiConfig cfg;
  dcs::Cluster stored = three_members();
  Status read_status = Status::Ok();
  Status write_status = Status::Ok();
  int reads = 0;
  std::vector<std::pair<std::string, std::optional<int64_t>>> writes;

  void SetUp() override {
    stored.history = json::array({json::array({1, 25165984, "no recovery target specified"}),
                                  json::array({2, 33554592, "no recovery target specified",
                                               "2023-08-30T13:40:00.123456+00:00", "n1"})});
    board.publish(leader_view());
  }

  Router make(bool with_dcs = true) {
    ServerDeps deps;
    deps.board = &board;
    deps.query_postgres = []() -> std::optional<postgres::PgState> { return primary_pg(); };
    if (with_dcs) {
      deps.read_cluster = [this]() -> Result<dcs::Cluster> {
        ++reads;
        if (!read_status.ok()) return read_status;
        return stored;
      };
      deps.write_config = [this](const std::string& doc, std::optional<int64_t> index) {
        writes.emplace_back(doc, index);
        if (write_status.ok()) {
          stored.config = json::parse(doc);
          ++stored.config_index;
        }
        return write_status;
      };
    }
    return Router(cfg, deps);
  }

  static HttpRequest request(const std::string& method, const std::string& target, const std::string& body = "",
                             bool with_length = true) {
    HttpRequest r;
    r.method = method;
    r.target = target;
    split_target(target, &r.path, &r.query);
    r.body = body;
    if (with_length) r.headers["content-length"] = std::to_string(body.size());
    return r;
  }
};

TEST_F(ConfigEndpoints, ReadOnlyEndpoints) {
  auto router = make();
  auto cluster = router.handle(request("GET", "/cluster"));
  EXPECT_EQ(cluster.status, 200);
  EXPECT_EQ(cluster.content_type, "application/json");
  EXPECT_EQ(json::parse(cluster.body)["members"].size(), 4u);
  EXPECT_EQ(reads, 1);  // a fresh read, as Patroni's get_cluster(force)

  auto history = router.handle(request("GET", "/history"));
  EXPECT_EQ(history.status, 200);
  EXPECT_EQ(json::parse(history.body), *stored.history);

  auto config = router.handle(request("GET", "/config"));
  EXPECT_EQ(config.status, 200);
  EXPECT_EQ(json::parse(config.body), (json{{"ttl", 30}, {"loop_wait", 10}}));

  auto metrics = router.handle(request("GET", "/metrics"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain");
  EXPECT_NE(metrics.body.find("patroni_primary{scope=\"demo\",name=\"n1\"} 1\n"), std::string::npos);

  EXPECT_EQ(router.handle(request("GET", "/failsafe")).status, 502);

  // No dynamic configuration: 502; no history: an empty list.
  stored.config.reset();
  stored.history.reset();
  EXPECT_EQ(router.handle(request("GET", "/config")).status, 502);
  EXPECT_EQ(router.handle(request("GET", "/history")).body, "[]");

  // The DCS read fails: the HA loop's last view answers; without one, 503.
  read_status = Status::Unavailable("etcd is down");
  EXPECT_EQ(router.handle(request("GET", "/config")).status, 200);
  ha::NodeView no_dcs = leader_view();
  no_dcs.cluster.reset();
  board.publish(no_dcs);
  auto down = router.handle(request("GET", "/cluster"));
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("etcd is down"), std::string::npos);
}

TEST_F(ConfigEndpoints, WithoutDcsAccessTheViewAnswers) {
  auto router = make(false);
  auto cluster = router.handle(request("GET", "/cluster"));
  EXPECT_EQ(cluster.status, 200);
  EXPECT_EQ(json::parse(cluster.body)["members"], json::array());  // the fixture view has no members
  EXPECT_EQ(router.handle(request("PATCH", "/config", R"({"ttl": 20})")).status, 503);
}

TEST_F(ConfigEndpoints, PatchMergesAndWritesWithCompareAndSet) {
  auto router = make();
  auto res = router.handle(request("PATCH", "/config", R"({"ttl": 20, "loop_wait": null, "pause": true})"));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.content_type, "application/json");
  const json expected = {{"ttl", 20}, {"pause", true}};
  EXPECT_EQ(json::parse(res.body), expected);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(json::parse(writes[0].first), expected);
  EXPECT_EQ(writes[0].second, std::optional<int64_t>(7));  // the index of the config read

  // Nothing changes: 200 and no write.
  res = router.handle(request("PATCH", "/config/anything", R"({"ttl": 20})"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(writes.size(), 1u);

  // Lost compare-and-set: 409, as Patroni.
  write_status = Status::Conflict("modified since index 8");
  res = router.handle(request("PATCH", "/config", R"({"ttl": 25})"));
  EXPECT_EQ(res.status, 409);
  EXPECT_NE(res.body.find("modified since"), std::string::npos);

  // No config in the DCS yet (or index 0): 503.
  stored.config_index = 0;
  EXPECT_EQ(router.handle(request("PATCH", "/config", R"({"ttl": 25})")).status, 503);
  stored.config.reset();
  stored.config_index = 3;
  EXPECT_EQ(router.handle(request("PATCH", "/config", R"({"ttl": 25})")).status, 503);
  EXPECT_EQ(writes.size(), 2u);
}

TEST_F(ConfigEndpoints, PutReplacesUnlessEqual) {
  auto router = make();
  auto res = router.handle(request("PUT", "/config", R"({"ttl": 40, "loop_wait": 5, "retry_timeout": 5})"));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(json::parse(res.body), (json{{"ttl", 40}, {"loop_wait", 5}, {"retry_timeout", 5}}));
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].second, std::nullopt);  // unconditional
  // The same document again: nothing written.
  EXPECT_EQ(router.handle(request("PUT", "/config", R"({"retry_timeout": 5, "loop_wait": 5, "ttl": 40})")).status, 200);
  EXPECT_EQ(writes.size(), 1u);
  write_status = Status::Unavailable("etcd is down");
  EXPECT_EQ(router.handle(request("PUT", "/config", R"({"ttl": 50})")).status, 502);
}

TEST_F(ConfigEndpoints, RefusalsWriteNothing) {
  auto router = make();
  struct Case {
    std::string method, body;
    bool with_length;
    int status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"PATCH", "{\"ttl\": ", true, 400, "not valid JSON"},
      {"PATCH", "", true, 400, "not valid JSON"},
      {"PUT", "[1, 2]", true, 400, "must be a JSON object"},
      {"PATCH", "\"ttl\"", true, 400, "must be a JSON object"},
      {"PUT", "{}", true, 400, "empty"},
      {"PATCH", R"({"ttl": 0})", true, 400, "ttl"},
      {"PATCH", R"({"loop_wait": "often"})", true, 400, "loop_wait"},
      {"PUT", R"({"ttl": 30, "retry_timeout": -5})", true, 400, "retry_timeout"},
      {"PATCH", R"({"ttl": 20})", false, 411, "Content-Length"},
  };
  for (const auto& c : cases) {
    auto res = router.handle(request(c.method, "/config", c.body, c.with_length));
    EXPECT_EQ(res.status, c.status) << c.method << " " << c.body;
    EXPECT_NE(res.body.find(c.says), std::string::npos) << res.body;
  }
  EXPECT_TRUE(writes.empty());
  EXPECT_EQ(reads, 0);  // refused before the DCS is asked
}

TEST_F(ConfigEndpoints, BadCredentialsGive401AndNoWrite) {
  cfg.username = "u";
  cfg.password = "p";
  auto router = make();
  for (const char* method : {"PATCH", "PUT"}) {
    auto none = router.handle(request(method, "/config", R"({"ttl": 20})"));
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(none.body, "no auth header received");
    auto wrong = request(method, "/config", R"({"ttl": 20})");
    wrong.headers["authorization"] = "Basic dTp4";  // u:x
    auto res = router.handle(wrong);
    EXPECT_EQ(res.status, 401);
    EXPECT_EQ(res.body, "not authenticated");
    ASSERT_EQ(res.headers.size(), 1u);
    EXPECT_EQ(res.headers[0].first, "WWW-Authenticate");
  }
  // Even a malformed body is refused for the credentials first.
  EXPECT_EQ(router.handle(request("PATCH", "/config", "{")).status, 401);
  EXPECT_TRUE(writes.empty());
  EXPECT_EQ(reads, 0);

  auto right = request("PATCH", "/config", R"({"ttl": 20})");
  right.headers["authorization"] = "Basic dTpw";  // u:p
  EXPECT_EQ(router.handle(right).status, 200);
  EXPECT_EQ(writes.size(), 1u);
  // GETs need no credentials.
  EXPECT_EQ(router.handle(request("GET", "/config")).status, 200);
}

}  // namespace
}  // namespace pgwarden::api
