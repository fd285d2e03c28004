// Planned switchover and manual failover through the REST API (and Debian's patronictl),
// on etcd and on the Kubernetes API emulator: the leader stops cleanly, the candidate takes
// over with everything the old leader wrote, the old leader follows it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <thread>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

class Switchover : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "etcd") {
      etcd = std::make_unique<EtcdServer>();
      dcs = std::make_unique<EtcdTestDcs>(*etcd);
    } else {
      dcs = std::make_unique<K8sTestDcs>(GetParam() == "k8s_endpoints");
    }
    for (int i = 1; i <= 3; ++i) {
      members.push_back(std::make_unique<PgwardenMember>(*dcs, nth_member(i)));
    }
    for (auto& m : members) m->start();
  }

  void TearDown() override {
    members.clear();
    dcs.reset();
    etcd.reset();
  }

  PgwardenMember* leader() {
    for (auto& m : members)
      if (m->alive() && m->get("/leader").status == 200) return m.get();
    return nullptr;
  }

  int streaming_replicas(PgwardenMember* m) {
    std::string port = std::to_string(m->pg_port());
    int n = 0;
    for (auto& r : members)
      if (r.get() != m && r->sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") == "streaming:" + port)
        ++n;
    return n;
  }

  PgwardenMember* wait_for_cluster() {
    PgwardenMember* l = nullptr;
    wait_until([&] { l = leader(); return l && streaming_replicas(l) == 2; }, 120s);
    return l && streaming_replicas(l) == 2 ? l : nullptr;
  }

  PgwardenMember* other_than(PgwardenMember* l) {
    for (auto& m : members)
      if (m.get() != l) return m.get();
    return nullptr;
  }

  HttpReply post(PgwardenMember* m, const std::string& path, const std::string& body) {
    return http_request("POST", "127.0.0.1", m->api_port(), path, body, 60s);
  }

  std::string logs() {
    std::string all;
    for (auto& m : members) all += "----- " + m->options().name + "\n" + m->log();
    return all;
  }

  std::unique_ptr<EtcdServer> etcd;
  std::unique_ptr<TestDcs> dcs;
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

TEST_P(Switchover, PlannedSwitchoverMovesTheLeaderAndLosesNothing) {
  PgwardenMember* old = wait_for_cluster();
  ASSERT_TRUE(old) << logs();
  PgwardenMember* cand = other_than(old);
  ASSERT_EQ(old->sql("CREATE TABLE t(x int)"), "OK");
  for (int i = 0; i < 100; ++i) ASSERT_EQ(old->sql("INSERT INTO t VALUES (" + std::to_string(i) + ")"), "OK");
  auto t0 = std::chrono::steady_clock::now();
  HttpReply r = post(old, "/switchover",
                     json{{"leader", old->options().name}, {"candidate", cand->options().name}}.dump());
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 200) << r.body << logs();
  EXPECT_EQ(r.body, "Successfully switched over to \"" + cand->options().name + "\"");
  EXPECT_LT(took, 20s);
  ASSERT_TRUE(wait_until([&] { return leader() == cand; }, 20s)) << logs();
  EXPECT_EQ(cand->sql("SELECT count(*) FROM t"), "100");
  EXPECT_EQ(cand->sql("INSERT INTO t VALUES (1000)"), "OK");
  // The old leader and the third member follow the new one; the request is gone.
  EXPECT_TRUE(wait_until([&] { return streaming_replicas(cand) == 2; }, 60s)) << logs();
  EXPECT_EQ(old->sql("SELECT pg_is_in_recovery()::text"), "true");
  EXPECT_TRUE(wait_until([&] { return json::parse(cand->get("/cluster").body).value("scheduled_switchover", json()).is_null(); },
                         10s));
}

TEST_P(Switchover, ImpossibleRequestsAreRefusedAndChangeNothing) {
  PgwardenMember* l = wait_for_cluster();
  ASSERT_TRUE(l) << logs();
  std::string name = l->options().name;
  EXPECT_EQ(post(l, "/switchover", "{not json").status, 400);
  EXPECT_EQ(post(l, "/switchover", json{{"candidate", "node2"}}.dump()).status, 400);
  HttpReply r = post(l, "/switchover", json{{"leader", name}, {"candidate", "node9"}}.dump());
  EXPECT_EQ(r.status, 412) << r.body;
  r = post(l, "/switchover", json{{"leader", name == "node1" ? "node2" : "node1"}, {"candidate", "node3"}}.dump());
  EXPECT_EQ(r.status, 412) << r.body;
  r = post(l, "/switchover", json{{"leader", name}, {"scheduled_at", "2020-01-01T00:00:00+00:00"}}.dump());
  EXPECT_EQ(r.status, 422) << r.body;
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(leader(), l);
  EXPECT_EQ(http_request("DELETE", "127.0.0.1", l->api_port(), "/switchover").status, 404);
}

TEST_P(Switchover, ScheduledSwitchoverHappensAtItsTimeAndCanBeCancelled) {
  PgwardenMember* l = wait_for_cluster();
  ASSERT_TRUE(l) << logs();
  PgwardenMember* cand = other_than(l);
  auto at = [](int seconds_from_now) {
    std::time_t t = std::time(nullptr) + seconds_from_now;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    return std::string(buf);
  };
  // Cancelled before its time: nothing happens.
  HttpReply r = post(l, "/switchover", json{{"leader", l->options().name}, {"scheduled_at", at(3600)}}.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_TRUE(wait_until([&] { return json::parse(l->get("/cluster").body).contains("scheduled_switchover"); }, 10s));
  EXPECT_EQ(http_request("DELETE", "127.0.0.1", l->api_port(), "/switchover").status, 200);
  // Scheduled a few seconds ahead: the leader moves then, not before.
  r = post(l, "/switchover",
           json{{"leader", l->options().name}, {"candidate", cand->options().name}, {"scheduled_at", at(6)}}.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(leader(), l);
  EXPECT_TRUE(wait_until([&] { return leader() == cand; }, 40s)) << logs();
}

// Debian's patronictl drives the same switchover through the REST API.
TEST_P(Switchover, PatronictlSwitchover) {
  PgwardenMember* l = wait_for_cluster();
  ASSERT_TRUE(l) << logs();
  PgwardenMember* cand = other_than(l);
  std::string out = capture(dcs->shell_env() + "timeout 90 patronictl -c " + l->config_path() +
                            " switchover --leader " + l->options().name + " --candidate " + cand->options().name +
                            " --force");
  EXPECT_TRUE(wait_until([&] { return leader() == cand; }, 30s)) << out << logs();
  EXPECT_NE(out.find("Successfully switched over"), std::string::npos) << out;
}

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }
INSTANTIATE_TEST_SUITE_P(Dcs, Switchover, ::testing::Values("etcd", "k8s_endpoints"), backend_name);

}  // namespace
}  // namespace pgwarden::test
