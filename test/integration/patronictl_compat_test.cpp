// Debian's patronictl 3.0.2 against a three-member pgwarden cluster on etcd: the commands an
// operator of the timescaledb-single chart runs, each with its effect on the cluster.
// (list, switchover, restart and reload have their own tests in daemon, switchover and
// operations tests.)
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class PatronictlCompat : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 1; i <= 3; ++i) {
      members.push_back(std::make_unique<PgwardenMember>(etcd, nth_member(i)));
    }
    for (auto& m : members) m->start();
  }

  PgwardenMember* leader() {
    for (auto& m : members)
      if (m->alive() && m->get("/leader").status == 200) return m.get();
    return nullptr;
  }

  int streaming_replicas(PgwardenMember* m) {
    int n = 0;
    for (auto& r : members)
      if (r.get() != m && r->sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") ==
                              "streaming:" + std::to_string(m->pg_port()))
        ++n;
    return n;
  }

  PgwardenMember* wait_for_cluster() {
    PgwardenMember* l = nullptr;
    wait_until([&] { l = leader(); return l && streaming_replicas(l) == 2; }, 120s);
    return l && streaming_replicas(l) == 2 ? l : nullptr;
  }

  std::string ctl(const std::string& args) {
    std::string out;
    FILE* p = popen(("timeout 90 patronictl -c " + members[0]->config_path() + " " + args + " 2>&1").c_str(), "r");
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  }

  std::string logs() {
    std::string all;
    for (auto& m : members) all += "----- " + m->options().name + "\n" + m->log();
    return all;
  }

  EtcdServer etcd;
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

TEST_F(PatronictlCompat, PauseResumeEditConfigShowConfig) {
  PgwardenMember* l = wait_for_cluster();
  ASSERT_TRUE(l) << logs();
  std::string out = ctl("pause --wait itest");
  EXPECT_TRUE(wait_until([&] { return json::parse(l->get("/patroni").body).value("pause", false); }, 30s)) << out;
  out = ctl("list");
  EXPECT_NE(out.find("Maintenance mode: on"), std::string::npos) << out;
  // Paused: a killed postmaster is not restarted.
  auto pm = l->postmaster_pid();
  ASSERT_TRUE(pm);
  kill(*pm, SIGKILL);
  std::this_thread::sleep_for(6s);
  EXPECT_FALSE(l->postmaster_pid()) << "PostgreSQL was restarted while paused";
  out = ctl("resume --wait itest");
  EXPECT_TRUE(wait_until([&] { return !json::parse(l->get("/patroni").body).value("pause", false); }, 30s)) << out;
  EXPECT_TRUE(wait_until([&] { return leader() && leader()->sql("SELECT 1") == "1"; }, 60s)) << logs();

  out = ctl("edit-config --set loop_wait=3 --pg work_mem=12MB --force itest");
  json cfg;
  EXPECT_TRUE(wait_until(
      [&] {
        cfg = json::parse(l->get("/config").body, nullptr, false);
        return cfg.is_object() && cfg.value("loop_wait", 0) == 3;
      },
      20s))
      << out << cfg;
  EXPECT_EQ(cfg["postgresql"]["parameters"]["work_mem"], "12MB");
  for (auto& m : members)
    EXPECT_TRUE(wait_until([&] { return m->sql("SHOW work_mem") == "12MB"; }, 30s)) << m->options().name;
  out = ctl("show-config itest");
  EXPECT_NE(out.find("loop_wait: 3"), std::string::npos) << out;
}

TEST_F(PatronictlCompat, FailoverAndHistory) {
  PgwardenMember* l = wait_for_cluster();
  ASSERT_TRUE(l) << logs();
  PgwardenMember* cand = members[0].get() == l ? members[1].get() : members[0].get();
  std::string out = ctl("failover --candidate " + cand->options().name + " --force itest");
  EXPECT_TRUE(wait_until([&] { return leader() == cand; }, 40s)) << out << logs();
  EXPECT_EQ(cand->sql("CREATE TABLE after_failover(x int)"), "OK");
  EXPECT_TRUE(wait_until(
      [&] {
        out = ctl("history -f json itest");
        auto h = json::parse(out, nullptr, false);
        return h.is_array() && !h.empty() && h.back().value("New Leader", "") == cand->options().name;
      },
      30s))
      << out;
  // A failover to a member that does not exist is refused and changes nothing.
  out = ctl("failover --candidate node9 --force itest");
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(leader(), cand) << out;
}

}  // namespace
}  // namespace pgwarden::test
