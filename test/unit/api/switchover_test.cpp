// POST /switchover, /failover and DELETE /switchover with fakes for the DCS and the peers.
#include "pgwarden/api/switchover.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pgwarden::api {
namespace {

using nlohmann::json;

dcs::Member member(const std::string& name) {
  dcs::Member m;
  m.name = name;
  m.data = {{"api_url", "http://127.0.0.1:1/patroni"}, {"state", "running"}};
  return m;
}

struct Fake {
  dcs::Cluster cluster;
  bool paused = false;
  std::vector<std::pair<std::string, std::optional<int64_t>>> writes;
  Status write_status = Status::Ok();
  std::vector<ha::PeerStatus> peers;
  int reads = 0;
  // After this many reads the lock moves to `new_leader` ("" : never).
  int move_after = 3;
  std::string new_leader;
  bool clear_instead = false;  // the leader refuses: the key goes, the lock stays
  int wakes = 0;

  Fake() {
    cluster.leader = dcs::Leader{"node1", 1, ""};
    cluster.members = {member("node1"), member("node2"), member("node3")};
  }

  SwitchoverDeps deps() {
    SwitchoverDeps d;
    d.write_failover = [this](const std::string& v, std::optional<int64_t> i) {
      writes.emplace_back(v, i);
      if (write_status.ok()) cluster.failover = json::parse(v);
      return write_status;
    };
    d.read_cluster = [this]() -> Result<dcs::Cluster> {
      ++reads;
      if (reads > move_after && !writes.empty()) {
        if (clear_instead) cluster.failover = json::object();
        else if (!new_leader.empty()) cluster.leader = dcs::Leader{new_leader, 2, ""};
      }
      return cluster;
    };
    d.paused = [this] { return paused; };
    d.fetch_peers = [this](const std::vector<dcs::Member>& ms) {
      std::vector<ha::PeerStatus> out;
      for (const auto& m : ms)
        for (const auto& p : peers)
          if (p.name == m.name) out.push_back(p);
      return out;
    };
    d.wake_ha = [this] { ++wakes; };
    d.now = [] { return 1705592625.0; };  // 2024-01-18T15:43:45Z
    d.sleep = [](std::chrono::milliseconds) {};
    d.poll_timeout = std::chrono::seconds(2);
    return d;
  }
};

ha::PeerStatus healthy(const std::string& name) {
  ha::PeerStatus p;
  p.name = name;
  p.reachable = true;
  return p;
}

TEST(Switchover, RefusalsChangeNothing) {
  struct Row {
    const char* what;
    const char* action;
    const char* body;
    std::function<void(Fake&)> change;
    int status;
    const char* message;
  } rows[] = {
      {"not json", "switchover", "{nope", {}, 400, "JSON object"},
      {"empty object", "switchover", "{}", {}, 400, "JSON object"},
      {"switchover without leader", "switchover", R"({"candidate":"node2"})", {}, 400, "from a specific leader"},
      {"failover without candidate", "failover", R"({"leader":"node1"})", {}, 400, "to a specific candidate"},
      {"failover scheduled", "failover", R"({"candidate":"node2","scheduled_at":"2030-01-01T00:00:00+00:00"})", {}, 400,
       "can't be scheduled"},
      {"scheduled while paused", "switchover", R"({"leader":"node1","scheduled_at":"2030-01-01T00:00:00+00:00"})",
       [](Fake& f) { f.paused = true; }, 400, "paused state"},
      {"unparsable time", "switchover", R"({"leader":"node1","scheduled_at":"next tuesday"})", {}, 422, "Unable to parse"},
      {"time without zone", "switchover", R"({"leader":"node1","scheduled_at":"2030-01-01T00:00:00"})", {}, 400,
       "Timezone information is mandatory"},
      {"time in the past", "switchover", R"({"leader":"node1","scheduled_at":"2020-01-01T00:00:00+00:00"})", {}, 422,
       "in the past"},
      {"paused without candidate", "switchover", R"({"leader":"node1"})", [](Fake& f) { f.paused = true; }, 400,
       "specific candidate in a paused state"},
      {"same source and target", "switchover", R"({"leader":"node1","candidate":"node1"})", {}, 400, "the same"},
      {"wrong leader", "switchover", R"({"leader":"node2","candidate":"node3"})", {}, 412, "leader name does not match"},
      {"no such candidate", "switchover", R"({"leader":"node1","candidate":"node9"})", {}, 412, "candidate does not exists"},
      {"candidate not healthy", "switchover", R"({"leader":"node1","candidate":"node2"})",
       [](Fake& f) { auto p = healthy("node2"); p.nofailover = true; f.peers = {p}; }, 412, "no good candidates"},
      {"nobody but the leader", "switchover", R"({"leader":"node1"})",
       [](Fake& f) { f.cluster.members = {member("node1")}; }, 412, "does not have members except leader"},
      {"not the sync standby", "switchover", R"({"leader":"node1","candidate":"node2"})",
       [](Fake& f) { f.cluster.sync = json{{"leader", "node1"}, {"sync_standby", "node3"}}; f.peers = {healthy("node2")}; },
       412, "sync_standby"},
  };
  for (const auto& r : rows) {
    Fake f;
    if (r.change) r.change(f);
    auto d = f.deps();
    SwitchoverReply rep = post_switchover(r.action, r.body, d);
    EXPECT_EQ(rep.status, r.status) << r.what << ": " << rep.body;
    EXPECT_NE(rep.body.find(r.message), std::string::npos) << r.what << ": " << rep.body;
    EXPECT_TRUE(f.writes.empty()) << r.what;
  }
}

TEST(Switchover, WritesTheRequestAndAnswersWhenTheLockMoves) {
  Fake f;
  f.peers = {healthy("node2")};
  f.new_leader = "node2";
  auto d = f.deps();
  SwitchoverReply rep = post_switchover("switchover", R"({"leader":"node1","candidate":"node2"})", d);
  EXPECT_EQ(rep.status, 200) << rep.body;
  EXPECT_EQ(rep.body, "Successfully switched over to \"node2\"");
  ASSERT_EQ(f.writes.size(), 1u);
  EXPECT_EQ(json::parse(f.writes[0].first), (json{{"leader", "node1"}, {"member", "node2"}}));
  EXPECT_EQ(f.wakes, 1);
}

TEST(Switchover, OtherOutcomes) {
  {
    Fake f;  // another member won
    f.peers = {healthy("node2")};
    f.new_leader = "node3";
    auto d = f.deps();
    auto rep = post_switchover("switchover", R"({"leader":"node1","candidate":"node2"})", d);
    EXPECT_EQ(rep.status, 200);
    EXPECT_EQ(rep.body, "Switched over to \"node3\" instead of \"node2\"");
  }
  {
    Fake f;  // the leader refused and cleared the key
    f.peers = {healthy("node2")};
    f.clear_instead = true;
    auto d = f.deps();
    auto rep = post_switchover("switchover", R"({"leader":"node1","candidate":"node2"})", d);
    EXPECT_EQ(rep.status, 503);
    EXPECT_EQ(rep.body, "Switchover failed");
  }
  {
    Fake f;  // nothing happens in time
    f.peers = {healthy("node2")};
    auto d = f.deps();
    auto rep = post_switchover("switchover", R"({"leader":"node1","candidate":"node2"})", d);
    EXPECT_EQ(rep.status, 503);
    EXPECT_EQ(rep.body, "Switchover status unknown");
  }
  {
    Fake f;  // the DCS refuses the write
    f.peers = {healthy("node2")};
    f.write_status = Status::Unavailable("down");
    auto d = f.deps();
    auto rep = post_switchover("switchover", R"({"leader":"node1","candidate":"node2"})", d);
    EXPECT_EQ(rep.status, 503);
    EXPECT_EQ(rep.body, "failed to write failover key into DCS");
  }
  {
    Fake f;  // manual failover to a named member
    f.cluster.leader.reset();
    f.peers = {healthy("node3")};
    f.new_leader = "node3";
    auto d = f.deps();
    auto rep = post_switchover("failover", R"({"candidate":"node3"})", d);
    EXPECT_EQ(rep.status, 200) << rep.body;
    EXPECT_EQ(rep.body, "Successfully failed over to \"node3\"");
    EXPECT_EQ(json::parse(f.writes[0].first), (json{{"member", "node3"}}));
  }
}

TEST(Switchover, ScheduledAndCancelled) {
  Fake f;
  auto d = f.deps();
  EXPECT_EQ(delete_switchover(d).status, 404);
  auto rep = post_switchover("switchover", R"({"leader":"node1","scheduled_at":"2030-01-01T02:00:00+02:00"})", d);
  EXPECT_EQ(rep.status, 202) << rep.body;
  EXPECT_EQ(rep.body, "Switchover scheduled");
  ASSERT_EQ(f.writes.size(), 1u);
  EXPECT_EQ(json::parse(f.writes[0].first)["scheduled_at"], "2030-01-01T00:00:00+00:00");
  f.cluster.failover_index = 42;
  auto del = delete_switchover(d);
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(del.body, "scheduled switchover deleted");
  ASSERT_EQ(f.writes.size(), 2u);
  EXPECT_EQ(f.writes[1].first, "{}");
  EXPECT_EQ(f.writes[1].second, std::optional<int64_t>(42));
}

}  // namespace
}  // namespace pgwarden::api
