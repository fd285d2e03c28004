// Three pgwarden members on one DCS (etcd, or the Kubernetes API emulator): replicas,
// failover, rejoin, graceful handover, DCS loss and nofailover. Real PostgreSQL 15 on loopback.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <thread>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

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

size_t count_of(const std::string& text, const std::string& word) {
  size_t n = 0;
  for (size_t pos = 0; (pos = text.find(word, pos)) != std::string::npos; pos += word.size()) ++n;
  return n;
}

// The same scenarios on every DCS: real etcd, and the Kubernetes API emulator with the lock
// on Endpoints (the chart's mode) or on ConfigMaps.
class ThreeMembers : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "etcd") {
      etcd = std::make_unique<EtcdServer>();
      dcs = std::make_unique<EtcdTestDcs>(*etcd);
    } else {
      k8s = new K8sTestDcs(GetParam() == "k8s_endpoints");
      dcs.reset(k8s);
    }
  }

  void TearDown() override {
    // Members first (they still talk to the DCS while stopping), then the DCS.
    members.clear();
    dcs.reset();
    etcd.reset();
  }

  void start(int n = 3, const std::function<void(MemberOptions&)>& tweak = {}) {
    for (int i = 1; i <= n; ++i) add(i, tweak, false);
    for (auto& m : members) m->start();
  }

  // Member `i` (node<i>, ttl=10, loop_wait=2, retry_timeout=4), started unless told not to.
  PgwardenMember* add(int i, const std::function<void(MemberOptions&)>& tweak = {}, bool run = true) {
    MemberOptions o = nth_member(i, /*ttl=*/10, /*loop_wait=*/2, /*retry_timeout=*/4);
    if (tweak) tweak(o);
    members.push_back(std::make_unique<PgwardenMember>(*dcs, o));
    if (run) members.back()->start();
    return members.back().get();
  }

  PgwardenMember* leader() {
    for (auto& m : members)
      if (m->alive() && m->get("/leader").status == 200) return m.get();
    return nullptr;
  }

  // Members whose WAL receiver streams from `m` (a base backup's WAL stream does not count).
  int streaming_replicas(PgwardenMember* m) {
    std::string port = std::to_string(m->pg_port());
    int n = 0;
    for (auto& r : members)
      if (r.get() != m && r->alive() &&
          r->sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") == "streaming:" + port)
        ++n;
    return n;
  }

  // Waits for one leader with `replicas` streaming replicas; returns it.
  PgwardenMember* wait_for_cluster(int replicas, std::chrono::seconds timeout = 120s) {
    PgwardenMember* l = nullptr;
    wait_until([&] { l = leader(); return l && streaming_replicas(l) == replicas; }, timeout);
    return l && streaming_replicas(l) == replicas ? l : nullptr;
  }

  std::string logs() {
    std::string all;
    for (auto& m : members) all += "----- " + m->options().name + "\n" + m->log();
    return all;
  }

  std::string patronictl(PgwardenMember* m, const std::string& args) {
    return capture(dcs->shell_env() + "patronictl -c " + m->config_path() + " " + args);
  }

  // On Kubernetes: the objects end up in Patroni's layout for `leader` (labels and status
  // follow a cycle later than the REST API, so this waits a little).
  void expect_layout(PgwardenMember* leader) {
    if (!k8s) return;
    std::vector<std::string> names;
    for (auto& m : members)
      if (m->alive()) names.push_back(m->options().name);
    std::string why;
    EXPECT_TRUE(wait_until([&] { return (why = k8s->layout_mismatch(leader->options().name, names)).empty(); }, 30s))
        << why << "\n" << logs();
  }

  std::unique_ptr<EtcdServer> etcd;
  std::unique_ptr<TestDcs> dcs;
  K8sTestDcs* k8s = nullptr;  // dcs, when it is the Kubernetes emulator
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

// Scenarios that also run on the ConfigMap layout; the rest run on etcd and Endpoints.
class ThreeMembersFull : public ThreeMembers {};

TEST_P(ThreeMembers, BootstrapOneLeaderTwoStreamingReplicasWithSlots) {
  start();
  PgwardenMember* l = wait_for_cluster(2);
  ASSERT_TRUE(l) << logs();
  EXPECT_EQ(l->sql("SELECT count(*) FROM pg_replication_slots WHERE active"), "2");
  expect_layout(l);
  int leaders = 0;
  for (auto& m : members) leaders += m->get("/leader").status == 200;
  EXPECT_EQ(leaders, 1);
  for (auto& m : members) {
    if (m.get() == l) continue;
    // The member publishes its state right after the cycle that started it streaming.
    EXPECT_TRUE(wait_until([&] { return m->get("/replica").status == 200; }, 10s)) << m->get("/replica").body;
    EXPECT_EQ(m->sql("SELECT pg_is_in_recovery()::text"), "true");
  }
  // patronictl sees all three with their roles.
  std::string out;
  EXPECT_TRUE(wait_until(
      [&] {
        out = patronictl(l, "list");
        return out.find("Leader") != std::string::npos && count_of(out, "Replica") == 2;
      },
      30s))
      << out;
}

TEST_P(ThreeMembers, KilledLeaderFailsOverAndRejoinsWithRewind) {
  // A restore_command (here one that finds nothing, as an empty archive) makes the rewind
  // write it into the configuration first and let pg_rewind fetch missing WAL with it.
  start(3, [](MemberOptions& o) { o.postgresql_yaml = "  recovery_conf:\n    restore_command: 'false'\n"; });
  PgwardenMember* old = wait_for_cluster(2);
  ASSERT_TRUE(old) << logs();
  ASSERT_EQ(old->sql("CREATE TABLE kept(x int); INSERT INTO kept VALUES (1)"), "OK");
  // Let the row reach the replicas before the crash.
  std::this_thread::sleep_for(1s);
  auto pm = old->postmaster_pid();
  old->kill9();
  if (pm) kill(*pm, SIGKILL);
  PgwardenMember* next = nullptr;
  ASSERT_TRUE(wait_until([&] { next = leader(); return next && next != old; }, 60s)) << logs();
  EXPECT_EQ(next->sql("SELECT x FROM kept"), "1");
  EXPECT_EQ(next->sql("INSERT INTO kept VALUES (2)"), "OK");
  // The other replica follows the new leader.
  EXPECT_TRUE(wait_until([&] { return streaming_replicas(next) == 1; }, 30s)) << logs();
  // The old leader comes back as a replica (pg_rewind) and streams again.
  old->start();
  EXPECT_TRUE(wait_until([&] { return streaming_replicas(next) == 2; }, 90s)) << logs();
  EXPECT_EQ(old->sql("SELECT pg_is_in_recovery()::text"), "true") << logs();
  EXPECT_NE(old->log().find("pg_rewind succeeded"), std::string::npos) << old->log();
  EXPECT_NE(old->log().find("with --restore-target-wal"), std::string::npos) << old->log();
  // patronictl shows the new leader on the new timeline and both replicas.
  std::string out;
  EXPECT_TRUE(wait_until(
      [&] {
        out = patronictl(next, "list");
        return out.find("| " + next->options().name) != std::string::npos && out.find("Leader") != std::string::npos &&
               out.find("|  2 |") != std::string::npos && count_of(out, "Replica") == 2;
      },
      30s))
      << out;
  expect_layout(next);
  auto history = dcs->history("itest");
  ASSERT_TRUE(history.is_array());
  EXPECT_GE(history.size(), 1u);
}

// A replica busy with a long action (here a clone method that takes longer than ttl, then
// fails over to basebackup) keeps its member key, so the leader keeps the slot made for it.
// On etcd the key would otherwise expire after ttl and the leader drop the slot.
TEST_P(ThreeMembers, MemberBusyLongerThanTtlKeepsItsKeyAndSlot) {
  if (GetParam() != "etcd") GTEST_SKIP() << "only etcd member keys expire (Kubernetes members are pods)";
  TempDir scripts;
  const std::string started = scripts.file("slow.started");
  const std::string script = scripts.file("slow_clone.sh");
  write_file(script, "#!/bin/sh\ntouch " + started + "\nsleep 18\necho 'slow clone gave up' >&2\nexit 1\n", 0755);
  auto slow = [&](MemberOptions& o) {
    o.postgresql_yaml = "  create_replica_methods:\n    - slow_clone\n    - basebackup\n"
                        "  slow_clone:\n    command: " + script + "\n";
  };
  start(1, slow);
  ASSERT_TRUE(wait_until([&] { return leader() != nullptr; }, 90s)) << logs();
  PgwardenMember* l = leader();
  // The replica joins an initialized cluster: its very first cycle is the slow clone.
  PgwardenMember* replica = add(2, slow);
  ASSERT_TRUE(wait_until([&] { return file_exists(started); }, 90s)) << logs();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string slot_query =
      "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + replica->options().name + "'";
  // Past ttl (10 s) and a few leader cycles after it: key and slot still there.
  std::this_thread::sleep_until(t0 + 14s);
  EXPECT_EQ(l->sql(slot_query), "1") << logs();
  EXPECT_NE(patronictl(l, "list").find(replica->options().name), std::string::npos) << logs();
  // Its REST API names the scope although its first cycle has not ended yet.
  auto doc = nlohmann::json::parse(replica->get("/cluster").body, nullptr, false);
  EXPECT_EQ(doc.is_object() ? doc.value("scope", "") : "", "itest") << doc.dump();
  doc = nlohmann::json::parse(replica->get("/patroni").body, nullptr, false);
  EXPECT_EQ(doc.is_object() ? doc["patroni"].value("scope", "") : "", "itest") << doc.dump();
  // The clone then falls back to basebackup and streams through that slot.
  EXPECT_TRUE(wait_until([&] { return streaming_replicas(l) == 1; }, 90s)) << logs();
  EXPECT_EQ(l->sql("SELECT active::text FROM pg_replication_slots WHERE slot_name = '" + replica->options().name + "'"),
            "true");
}

// A standby slower to start than pg_ctl_timeout (here each WAL fetch first runs a
// restore_command that sleeps 12 s) has not failed to start: as in Patroni, the loop stops
// waiting after pg_ctl_timeout, goes on cycling with the member "starting", and fires
// on_start once PostgreSQL answers. Before, the loop waited up to primary_start_timeout.
TEST_P(ThreeMembers, StandbySlowerThanPgCtlTimeoutDoesNotHoldTheLoop) {
  if (GetParam() != "etcd") GTEST_SKIP() << "the start path is the same on every DCS";
  TempDir scripts;
  start(2, [&](MemberOptions& o) {
    o.postgresql_yaml = "  pg_ctl_timeout: 10\n  recovery_conf:\n    restore_command: 'sleep 8; false'\n";
    o.callback = scripts.file("cb_" + o.name + ".sh");
    write_file(o.callback, "#!/bin/sh\necho \"$1 $2\" >> " + scripts.file(o.name + ".callbacks") + "\n", 0755);
  });
  PgwardenMember* replica = nullptr;
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto& m : members)
          if (m->log().find("still starting up as a standby after 10 s") != std::string::npos) replica = m.get();
        return replica != nullptr;
      },
      120s))
      << logs();
  // The loop runs while PostgreSQL is still starting: the member says so.
  auto doc = nlohmann::json::parse(replica->get("/patroni").body, nullptr, false);
  EXPECT_EQ(doc.value("state", ""), "starting") << replica->get("/patroni").body;
  EXPECT_TRUE(wait_until(
      [&] { return replica->log().find("PostgreSQL is still starting up as a standby; following leader") != std::string::npos; },
      10s))
      << logs();
  PgwardenMember* l = leader();
  ASSERT_TRUE(l) << logs();
  EXPECT_TRUE(wait_until([&] { return streaming_replicas(l) == 1; }, 90s)) << logs();
  EXPECT_TRUE(wait_until([&] { return replica->log().find("PostgreSQL has started as a standby") != std::string::npos; }, 10s))
      << logs();
  EXPECT_TRUE(wait_until(
      [&] { return nlohmann::json::parse(replica->get("/patroni").body, nullptr, false).value("state", "") == "running"; },
      10s));
  // on_start fired once, for the replica, after the wait had ended.
  EXPECT_TRUE(wait_until([&] { return file_exists(scripts.file(replica->options().name + ".callbacks")); }, 10s));
  EXPECT_EQ(count_of(read_file(scripts.file(replica->options().name + ".callbacks")), "on_start replica"), 1u)
      << read_file(scripts.file(replica->options().name + ".callbacks"));
}

TEST_P(ThreeMembersFull, KilledLeaderRejoinsByRecloneWithoutRewind) {
  start(3, [](MemberOptions& o) { o.use_pg_rewind = false; });
  PgwardenMember* old = wait_for_cluster(2);
  ASSERT_TRUE(old) << logs();
  auto pm = old->postmaster_pid();
  old->kill9();
  if (pm) kill(*pm, SIGKILL);
  PgwardenMember* next = nullptr;
  ASSERT_TRUE(wait_until([&] { next = leader(); return next && next != old; }, 60s)) << logs();
  old->start();
  EXPECT_TRUE(wait_until([&] { return streaming_replicas(next) == 2; }, 90s)) << logs();
  bool moved = false;
  for (auto& e : fs::directory_iterator(old->dir()))
    moved = moved || e.path().filename().string().rfind("data.failed", 0) == 0;
  EXPECT_TRUE(moved) << "old data directory was not moved aside";
  expect_layout(next);
}

TEST_P(ThreeMembersFull, SigtermOfLeaderHandsOverWithoutWaitingForTtlAndLosesNothing) {
  start(3, [](MemberOptions& o) { o.ttl = 30; o.loop_wait = 10; o.retry_timeout = 10; });
  PgwardenMember* old = wait_for_cluster(2, 180s);
  ASSERT_TRUE(old) << logs();
  ASSERT_EQ(old->sql("CREATE TABLE rows(x int)"), "OK");
  for (int i = 0; i < 200; ++i) ASSERT_EQ(old->sql("INSERT INTO rows VALUES (" + std::to_string(i) + ")"), "OK");
  auto t0 = std::chrono::steady_clock::now();
  old->stop(SIGTERM, 60s);
  PgwardenMember* next = nullptr;
  ASSERT_TRUE(wait_until([&] { next = leader(); return next && next != old; }, 25s)) << logs();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 25s) << "waited for the TTL";
  EXPECT_EQ(next->sql("SELECT count(*) FROM rows"), "200") << logs();
  EXPECT_EQ(next->sql("INSERT INTO rows VALUES (1000)"), "OK");
  expect_layout(next);
}

TEST_P(ThreeMembersFull, PrimaryDemotesWhenTheDcsIsGoneLongerThanTtl) {
  start();
  PgwardenMember* l = wait_for_cluster(2);
  ASSERT_TRUE(l) << logs();
  dcs->make_unavailable();
  // ttl is 10 s: well before then plus a margin, the old primary must no longer be writable.
  bool demoted = wait_until([&] { return l->sql("SELECT pg_is_in_recovery()::text") != "false"; }, 12s);
  dcs->make_available();
  EXPECT_TRUE(demoted) << logs();
  // And the cluster recovers: a leader that accepts writes.
  PgwardenMember* again = nullptr;
  EXPECT_TRUE(wait_until([&] { again = leader(); return again && again->sql("CREATE TABLE after_outage(x int)") == "OK"; },
                         90s))
      << logs();
  if (again) expect_layout(again);
}

TEST_P(ThreeMembersFull, NofailoverMemberIsNeverPromoted) {
  start(2, [](MemberOptions& o) {
    if (o.name == "node2") o.extra_yaml = "tags:\n  nofailover: true\n";
  });
  PgwardenMember* l = wait_for_cluster(1);
  ASSERT_TRUE(l) << logs();
  ASSERT_EQ(l->options().name, "node1") << "the nofailover member took the lock";
  auto pm = l->postmaster_pid();
  l->kill9();
  if (pm) kill(*pm, SIGKILL);
  // Well past the ttl: node2 must still not lead.
  std::this_thread::sleep_for(20s);
  EXPECT_NE(members[1]->get("/leader").status, 200) << logs();
  EXPECT_EQ(members[1]->sql("SELECT pg_is_in_recovery()::text"), "true") << logs();
}

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Dcs, ThreeMembers, ::testing::Values("etcd", "k8s_endpoints", "k8s_configmaps"), backend_name);
INSTANTIATE_TEST_SUITE_P(Dcs, ThreeMembersFull, ::testing::Values("etcd", "k8s_endpoints"), backend_name);

}  // namespace
}  // namespace pgwarden::test
