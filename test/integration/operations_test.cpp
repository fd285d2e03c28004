// Operator requests through the REST API and Debian's patronictl on a two-member etcd
// cluster: restart (now, with filters, scheduled and cancelled), reload, reinitialize, and
// the dynamic configuration applied by every member (reloadable parameters at once, the
// others as pending_restart until a restart).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <thread>

#include "cluster_fixture.hpp"
#include "pgwarden/util/iso_time.hpp"

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

double epoch_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Operations : public ::testing::Test {
 protected:
  void SetUp() override {
    record = scripts.file("calls.log");
    std::string script = scripts.file("callback.sh");
    write_file(script, "#!/bin/sh\necho \"$1 $2 $3\" >> " + record + "\n", 0755);
    chmod(scripts.path().c_str(), 0777);
    dcs = std::make_unique<EtcdTestDcs>(etcd);
    for (int i = 1; i <= 2; ++i) {
      MemberOptions o;
      o.index = i;
      o.name = "node" + std::to_string(i);
      o.callback = script;
      members.push_back(std::make_unique<PgwardenMember>(*dcs, o));
    }
    members[0]->start();
    // The first member bootstraps alone, so node1 leads.
    wait_until([&] { return members[0]->get("/leader").status == 200; }, 90s);
    members[1]->start();
  }

  void TearDown() override {
    members.clear();
    dcs.reset();
  }

  PgwardenMember* leader() { return members[0].get(); }
  PgwardenMember* replica() { return members[1].get(); }

  bool streaming() {
    return replica()->sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") ==
           "streaming:" + std::to_string(leader()->pg_port());
  }
  bool ready() { return leader()->get("/leader").status == 200 && streaming(); }

  std::string logs() {
    std::string out;
    for (auto& m : members) out += "==== " + m->options().name + "\n" + m->log() + "\n";
    return out + "==== callbacks\n" + read_file(record);
  }

  HttpReply post(PgwardenMember* m, const std::string& path, const std::string& body = "") {
    return http_request("POST", "127.0.0.1", m->api_port(), path, body, 120s);
  }
  HttpReply del(PgwardenMember* m, const std::string& path) {
    return http_request("DELETE", "127.0.0.1", m->api_port(), path, "", 30s);
  }
  json status(PgwardenMember* m) {
    auto r = m->get("/patroni");
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
  }
  json cluster_member(PgwardenMember* m) {
    auto r = m->get("/cluster");
    if (r.status != 200) return json();
    const json doc = json::parse(r.body, nullptr, false);
    if (!doc.is_object() || !doc.contains("members")) return json();
    for (const auto& x : doc["members"])
      if (x.value("name", "") == m->options().name) return x;
    return json();
  }
  bool called(const std::string& line) { return read_file(record).find(line) != std::string::npos; }

  EtcdServer etcd;
  std::unique_ptr<EtcdTestDcs> dcs;
  std::vector<std::unique_ptr<PgwardenMember>> members;
  TempDir scripts;
  std::string record;
};

TEST_F(Operations, RestartReloadAndScheduledRestart) {
  ASSERT_TRUE(wait_until([&] { return ready(); }, 120s)) << logs();

  // The leader restarts as primary and keeps the lock.
  const auto pid = leader()->postmaster_pid();
  const int timeline = status(leader()).value("timeline", 0);
  auto r = post(leader(), "/restart", "{}");
  EXPECT_EQ(r.status, 200) << r.body << logs();
  EXPECT_EQ(r.body, "restarted successfully");
  EXPECT_NE(leader()->postmaster_pid(), pid);
  EXPECT_EQ(leader()->get("/leader").status, 200);
  EXPECT_EQ(leader()->sql("SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(status(leader()).value("timeline", 0), timeline);  // no failover happened
  EXPECT_EQ(replica()->get("/leader").status, 503);
  EXPECT_TRUE(wait_until([&] { return called("on_restart master itest"); }, 10s)) << logs();

  // Filters that do not match: 503 and nothing happens.
  const auto rpid = replica()->postmaster_pid();
  r = post(replica(), "/restart", R"({"role":"primary"})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "restart conditions are not satisfied");
  r = post(replica(), "/restart", R"({"restart_pending":true})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(replica()->postmaster_pid(), rpid);
  EXPECT_EQ(post(replica(), "/restart", R"({"role":)").status, 400);
  EXPECT_EQ(post(replica(), "/restart", R"({"pending_restart":true})").status, 400);
  EXPECT_EQ(replica()->postmaster_pid(), rpid);

  // A matching filter: the replica restarts as a replica and streams again.
  r = post(replica(), "/restart", R"({"role":"replica","postgres_version":"99.0"})");
  EXPECT_EQ(r.status, 200) << r.body << logs();
  EXPECT_NE(replica()->postmaster_pid(), rpid);
  EXPECT_EQ(replica()->sql("SELECT pg_is_in_recovery()"), "t");
  EXPECT_TRUE(wait_until([&] { return streaming(); }, 30s)) << logs();

  // Scheduled far ahead: shown in /patroni and in the member key, then cancelled.
  std::string later = util::format_iso8601(std::floor(epoch_now()) + 3600);
  r = post(leader(), "/restart", json{{"schedule", later}}.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.body, "Restart scheduled");
  EXPECT_EQ(status(leader())["scheduled_restart"]["schedule"], later);
  EXPECT_TRUE(wait_until([&] { return cluster_member(leader()).contains("scheduled_restart"); }, 10s)) << logs();
  r = post(leader(), "/restart", json{{"schedule", later}}.dump());
  EXPECT_EQ(r.status, 409);
  r = del(leader(), "/restart");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "scheduled restart deleted");
  EXPECT_FALSE(status(leader()).contains("scheduled_restart"));
  EXPECT_TRUE(wait_until([&] { return !cluster_member(leader()).contains("scheduled_restart"); }, 10s));
  EXPECT_EQ(del(leader(), "/restart").status, 404);

  // Scheduled a few seconds ahead: it happens on time and is then gone.
  const auto pid2 = leader()->postmaster_pid();
  r = post(leader(), "/restart", json{{"schedule", util::format_iso8601(std::floor(epoch_now()) + 4)}}.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_TRUE(wait_until([&] { auto p = leader()->postmaster_pid(); return p && p != pid2; }, 20s)) << logs();
  EXPECT_TRUE(wait_until([&] { return !status(leader()).contains("scheduled_restart"); }, 10s));
  EXPECT_TRUE(wait_until([&] { return leader()->get("/leader").status == 200; }, 20s));

  // POST /reload re-reads the configuration, as SIGHUP: PostgreSQL reloads, on_reload runs.
  r = post(replica(), "/reload");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "reload scheduled");
  EXPECT_TRUE(wait_until([&] { return called("on_reload replica itest"); }, 15s)) << logs();
  EXPECT_TRUE(wait_until([&] { return streaming(); }, 30s)) << logs();  // primary_conninfo kept
}

TEST_F(Operations, Reinitialize) {
  ASSERT_TRUE(wait_until([&] { return ready(); }, 120s)) << logs();
  auto r = post(leader(), "/reinitialize", "{}");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "I am the leader, can not reinitialize");
  EXPECT_EQ(leader()->get("/leader").status, 200);

  leader()->sql("CREATE TABLE before_reinit AS SELECT 1 AS x");
  const auto rpid = replica()->postmaster_pid();
  r = post(replica(), "/reinitialize", R"({"force":true})");
  EXPECT_EQ(r.status, 200) << r.body << logs();
  EXPECT_EQ(r.body, "reinitialize started");
  EXPECT_TRUE(wait_until([&] { auto p = replica()->postmaster_pid(); return p && p != rpid && streaming(); }, 90s))
      << logs();
  bool moved = false;
  for (const auto& e : std::filesystem::directory_iterator(replica()->dir()))
    moved = moved || e.path().filename().string().rfind("data.failed_", 0) == 0;
  EXPECT_TRUE(moved) << "the old data directory is kept aside";
  leader()->sql("CREATE TABLE after_reinit AS SELECT 2 AS x");
  EXPECT_TRUE(wait_until([&] { return replica()->sql("SELECT x FROM after_reinit") == "2"; }, 30s)) << logs();
  EXPECT_EQ(replica()->sql("SELECT x FROM before_reinit"), "1");
}

TEST_F(Operations, DynamicConfigurationReachesEveryMember) {
  ASSERT_TRUE(wait_until([&] { return ready(); }, 120s)) << logs();
  auto r = http_request("PATCH", "127.0.0.1", leader()->api_port(), "/config",
                        R"({"postgresql":{"parameters":{"work_mem":"8MB"}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  for (auto& m : members)
    EXPECT_TRUE(wait_until([&] { return m->sql("SHOW work_mem") == "8MB"; }, 15s)) << m->options().name << logs();
  EXPECT_FALSE(status(leader()).contains("pending_restart"))
      << leader()->sql("SELECT string_agg(name || '=' || setting, ',') FROM pg_settings WHERE pending_restart");

  // max_connections needs a restart: every member says so until it is restarted.
  r = http_request("PATCH", "127.0.0.1", leader()->api_port(), "/config",
                   R"({"postgresql":{"parameters":{"max_connections":60}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  for (auto& m : members)
    EXPECT_TRUE(wait_until([&] { return status(m.get()).value("pending_restart", false); }, 15s))
        << m->options().name << logs();
  EXPECT_TRUE(wait_until([&] { return cluster_member(leader()).value("pending_restart", false); }, 15s));
  EXPECT_EQ(leader()->sql("SHOW max_connections"), "50");
  // A replica needs at least the primary's max_connections: replicas first, as Patroni advises.
  for (PgwardenMember* m : {replica(), leader()}) {
    r = post(m, "/restart", R"({"restart_pending":true})");
    EXPECT_EQ(r.status, 200) << m->options().name << " " << r.body << logs();
    EXPECT_EQ(m->sql("SHOW max_connections"), "60");
    EXPECT_TRUE(wait_until([&] { return !status(m).contains("pending_restart"); }, 15s)) << logs();
  }
  EXPECT_TRUE(wait_until([&] { return !cluster_member(leader()).contains("pending_restart"); }, 15s));
  EXPECT_TRUE(wait_until([&] { return streaming(); }, 30s)) << logs();
}

// Debian's patronictl (3.0.2) restart and reload go through the same endpoints.
TEST_F(Operations, PatronictlRestartAndReload) {
  ASSERT_TRUE(wait_until([&] { return ready(); }, 120s)) << logs();
  const auto pid = replica()->postmaster_pid();
  std::string out = capture(dcs->shell_env() + "timeout 120 patronictl -c " + leader()->config_path() +
                            " restart itest node2 --force");
  EXPECT_NE(out.find("Success: restart on member node2"), std::string::npos) << out << logs();
  EXPECT_NE(replica()->postmaster_pid(), pid) << out;
  EXPECT_TRUE(wait_until([&] { return streaming(); }, 30s)) << logs();

  out = capture(dcs->shell_env() + "timeout 60 patronictl -c " + leader()->config_path() +
                " reload itest node1 --force");
  EXPECT_NE(out.find("Reload request received for member node1"), std::string::npos) << out;
  EXPECT_TRUE(wait_until([&] { return called("on_reload master itest"); }, 15s)) << out << logs();
  EXPECT_EQ(leader()->get("/leader").status, 200);
}

}  // namespace
}  // namespace pgwarden::test
