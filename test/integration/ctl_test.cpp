// `pgwarden ctl` against a real three-member cluster on etcd: list (pretty and json),
// edit-config, pause/resume, switchover, history, and the errors scripts rely on (non-zero
// exit, the reason on stderr).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdio>
#include <memory>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct CtlResult {
  int code = -1;
  std::string out, err;
};

class Ctl : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd = std::make_unique<EtcdServer>();
    dcs = std::make_unique<EtcdTestDcs>(*etcd);
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

  // `pgwarden ctl -c <node1's config> <args>` with stdin from /dev/null.
  CtlResult ctl(const std::string& args) {
    CtlResult r;
    std::string err_file = tmp.file("ctl.err");
    std::string cmd = std::string("timeout 120 ") + PGWARDEN_BINARY + " ctl -c " + members[0]->config_path() + " " +
                      args + " </dev/null 2>" + err_file;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = read_file(err_file);
    return r;
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

  std::string logs() {
    std::string all;
    for (auto& m : members) all += "----- " + m->options().name + "\n" + m->log();
    return all;
  }

  TempDir tmp{"pgwarden-ctl"};
  std::unique_ptr<EtcdServer> etcd;
  std::unique_ptr<TestDcs> dcs;
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

TEST_F(Ctl, ListEditConfigPauseAndResume) {
  PgwardenMember* l = wait_for_cluster();
  ASSERT_TRUE(l) << logs();
  const std::string lname = l->options().name;

  // list: the title, one Leader and two Replicas (members' data is refreshed every loop_wait).
  CtlResult r;
  ASSERT_TRUE(wait_until([&] {
    r = ctl("list");
    std::size_t replicas = 0;
    for (auto p = r.out.find("| Replica "); p != std::string::npos; p = r.out.find("| Replica ", p + 1)) ++replicas;
    return r.code == 0 && replicas == 2;
  }, 20s)) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("+ Cluster: itest (", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("| Member | Host "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| " + lname + "  | 127.0.0.1:" + std::to_string(l->pg_port()) + " | Leader "), std::string::npos)
      << r.out;

  // -f json: one object per member, the Patroni keys.
  r = ctl("list -f json");
  ASSERT_EQ(r.code, 0) << r.err;
  json doc = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(doc.is_array()) << r.out;
  ASSERT_EQ(doc.size(), 3u) << r.out;
  int leaders = 0;
  for (const auto& m : doc) {
    EXPECT_EQ(m.value("Cluster", ""), "itest");
    if (m.value("Role", "") == "Leader") {
      ++leaders;
      EXPECT_EQ(m.value("Member", ""), lname);
      EXPECT_FALSE(m.contains("Lag in MB"));
    } else {
      EXPECT_EQ(m.value("Role", ""), "Replica");
      EXPECT_TRUE(m.contains("Lag in MB")) << m.dump();
    }
  }
  EXPECT_EQ(leaders, 1);
  r = ctl("topology");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| + node"), std::string::npos) << r.out;

  // edit-config: the diff, the write, GET /config shows it; the same change again is "Not changed".
  r = ctl("edit-config -s loop_wait=3 -p work_mem=8MB --force");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("-loop_wait: 2\n+loop_wait: 3\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("+    work_mem: 8MB\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Configuration changed"), std::string::npos) << r.out;
  json cfg = json::parse(l->get("/config").body, nullptr, false);
  EXPECT_EQ(cfg.value("loop_wait", 0), 3) << cfg.dump();
  EXPECT_EQ(cfg["postgresql"]["parameters"].value("work_mem", ""), "8MB") << cfg.dump();
  r = ctl("edit-config -s loop_wait=3 --force");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Not changed\n");
  r = ctl("show-config");
  EXPECT_NE(r.out.find("loop_wait: 3\n"), std::string::npos) << r.out;
  // Without --force and nothing on stdin the change is not applied.
  r = ctl("edit-config -s loop_wait=4");
  EXPECT_NE(r.out.find("Apply these changes? [y/N]"), std::string::npos) << r.out;
  EXPECT_EQ(json::parse(l->get("/config").body, nullptr, false).value("loop_wait", 0), 3);
  r = ctl("edit-config -s loop_wait");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("Invalid parameter setting loop_wait"), std::string::npos) << r.err;

  // pause / resume: PATCH /config through a member; every member's status document follows.
  r = ctl("pause --force");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Success: cluster management is paused"), std::string::npos) << r.out;
  EXPECT_TRUE(wait_until([&] {
    for (auto& m : members)
      if (!json::parse(m->get("/patroni").body, nullptr, false).value("pause", false)) return false;
    return true;
  }, 20s));
  r = ctl("list");
  EXPECT_NE(r.out.find("\n Maintenance mode: on\n"), std::string::npos) << r.out;
  r = ctl("pause");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("Cluster is already paused"), std::string::npos) << r.err;
  r = ctl("resume --wait");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Success: cluster management is resumed"), std::string::npos) << r.out;
  for (auto& m : members) EXPECT_FALSE(json::parse(m->get("/patroni").body, nullptr, false).value("pause", false));
  EXPECT_FALSE(json::parse(l->get("/config").body, nullptr, false).contains("pause"));
}

TEST_F(Ctl, SwitchoverHistoryAndErrors) {
  PgwardenMember* old = wait_for_cluster();
  ASSERT_TRUE(old) << logs();
  PgwardenMember* cand = members[0].get() == old ? members[1].get() : members[0].get();

  // Refused requests: non-zero exit, the reason on stderr, nothing changes.
  CtlResult r = ctl("switchover --candidate node9 --force");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("Member node9 does not exist in cluster itest"), std::string::npos) << r.err;
  r = ctl("switchover --leader " + cand->options().name + " --candidate " + old->options().name + " --force");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is not the leader of cluster itest"), std::string::npos) << r.err;
  r = ctl("failover --force");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("Failover could be performed only to a specific candidate"), std::string::npos) << r.err;
  r = ctl("restart node9 --force");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("node9 is not a member of cluster itest"), std::string::npos) << r.err;
  // Without --force the confirmation is asked on stdin; no "y" there: nothing happens.
  r = ctl("switchover --leader " + old->options().name + " --candidate " + cand->options().name + " --scheduled now");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("Aborting switchover"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(leader(), old);
  r = ctl("history");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("| TL | LSN | Reason | Timestamp | New Leader |"), std::string::npos) << r.out;

  // The switchover itself, through the leader's REST API.
  r = ctl("switchover --candidate " + cand->options().name + " --force");
  EXPECT_EQ(r.code, 0) << r.out << r.err << logs();
  EXPECT_NE(r.out.find("Successfully switched over to \"" + cand->options().name + "\""), std::string::npos) << r.out;
  ASSERT_TRUE(wait_until([&] { return leader() == cand; }, 30s)) << logs();

  // history: the timeline switch, in every format.
  ASSERT_TRUE(wait_until([&] {
    r = ctl("history");
    return r.out.find("|  1 |") != std::string::npos;
  }, 20s)) << r.out << r.err;
  EXPECT_NE(r.out.find(cand->options().name), std::string::npos) << r.out;
  r = ctl("history -f json");
  json h = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(h.is_array() && !h.empty()) << r.out;
  EXPECT_EQ(h[0].value("TL", 0), 1) << r.out;
  EXPECT_EQ(h[0].value("New Leader", ""), cand->options().name) << r.out;

  // The DCS cannot be reached: a clear error and a non-zero exit.
  r = ctl("-d 127.0.0.1:1 list");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot read cluster itest from the DCS"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pgwarden::test
