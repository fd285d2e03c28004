// One pgwarden member against real etcd and PostgreSQL 15: bootstrap, leader key,
// supervision, clean stop, callbacks, failing post_init, patronictl, broken config.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string leader_key(const MemberOptions& o) { return "/service/" + o.scope + "/leader"; }
std::string member_key(const MemberOptions& o) { return "/service/" + o.scope + "/members/" + o.name; }

bool is_leader(const PgwardenMember& m) { return m.get("/leader").status == 200; }

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(("(" + cmd + ") 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

class DaemonTest : public ::testing::Test {
 protected:
  EtcdServer etcd;
};

TEST_F(DaemonTest, BootstrapsHoldsLeaderKeyAndAcceptsWrites) {
  PgwardenMember m(etcd, {});
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();

  auto keys = etcd.get_prefix("/service/itest/");
  EXPECT_EQ(keys[leader_key(m.options())], "node1");
  ASSERT_TRUE(keys.count(member_key(m.options())));
  auto member = nlohmann::json::parse(keys[member_key(m.options())]);
  EXPECT_EQ(member["role"], "master");
  EXPECT_EQ(member["state"], "running");
  EXPECT_EQ(member["conn_url"], "postgres://127.0.0.1:" + std::to_string(m.pg_port()) + "/postgres");
  EXPECT_EQ(member["api_url"], "http://127.0.0.1:" + std::to_string(m.api_port()) + "/patroni");
  ASSERT_TRUE(keys.count("/service/itest/initialize"));
  EXPECT_FALSE(keys["/service/itest/initialize"].empty());
  EXPECT_EQ(keys["/service/itest/initialize"], m.sql("SELECT system_identifier::text FROM pg_control_system()"));
  auto config = nlohmann::json::parse(keys["/service/itest/config"]);
  EXPECT_EQ(config["loop_wait"], 2);

  EXPECT_EQ(m.sql("CREATE TABLE t(x int)"), "OK");
  EXPECT_EQ(m.sql("INSERT INTO t VALUES (42)"), "OK");
  EXPECT_EQ(m.sql("SELECT x FROM t"), "42");
  // The replication user exists with its password.
  EXPECT_EQ(m.sql("SELECT rolreplication::text FROM pg_roles WHERE rolname = 'standby'"), "true");

  auto root = m.get("/");
  EXPECT_EQ(root.status, 200);
  auto doc = nlohmann::json::parse(root.body);
  EXPECT_EQ(doc["role"], "master");
  EXPECT_EQ(doc["state"], "running");
  EXPECT_EQ(doc["patroni"]["scope"], "itest");
  EXPECT_EQ(m.get("/replica").status, 503);
  EXPECT_EQ(m.get("/health").status, 200);

  // .pgpass is private.
  EXPECT_EQ(fs::status(m.dir() + "/pgpass").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  // PostgreSQL got no PATRONI_* / KUBERNETES_* variables.
  auto pid = m.postmaster_pid();
  ASSERT_TRUE(pid);
  std::string environ = read_file("/proc/" + std::to_string(*pid) + "/environ");
  EXPECT_EQ(environ.find("PATRONI_"), std::string::npos);
  EXPECT_EQ(environ.find("KUBERNETES_"), std::string::npos);
  // No password in the log.
  EXPECT_EQ(m.log().find(kSuperuserPassword), std::string::npos);
  EXPECT_EQ(m.log().find(kReplicationPassword), std::string::npos);
}

TEST_F(DaemonTest, PatronictlListsTheLeader) {
  PgwardenMember m(etcd, {});
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  std::string out;
  // Wait for the member key to show running (first touch may precede the last restart).
  bool ok = wait_until(
      [&] {
        out = run_capture("patronictl -c " + m.config_path() + " list");
        return out.find("node1") != std::string::npos && out.find("Leader") != std::string::npos &&
               out.find("running") != std::string::npos;
      },
      30s);
  EXPECT_TRUE(ok) << out;
}

TEST_F(DaemonTest, RestartsKilledPostmasterWithinLoopWait) {
  PgwardenMember m(etcd, {});
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  auto pid = m.postmaster_pid();
  ASSERT_TRUE(pid);
  kill(*pid, SIGKILL);
  // loop_wait is 2 s; allow for orphaned backends to exit before the restart succeeds.
  ASSERT_TRUE(wait_until([&] { auto p = m.postmaster_pid(); return p && *p != *pid && m.sql("SELECT 1") == "1"; }, 30s))
      << m.log();
  EXPECT_TRUE(wait_until([&] { return is_leader(m); }, 10s));
  EXPECT_EQ(etcd.get_prefix("/service/itest/")[leader_key(m.options())], "node1");
}

TEST_F(DaemonTest, SigtermStopsPostgresReleasesLockAndExitsZero) {
  PgwardenMember m(etcd, {});
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  auto pid = m.postmaster_pid();
  ASSERT_TRUE(pid);
  auto code = m.stop(SIGTERM, 60s);
  ASSERT_TRUE(code) << m.log();
  EXPECT_EQ(*code, 0) << m.log();
  EXPECT_FALSE(m.postmaster_pid());
  auto keys = etcd.get_prefix("/service/itest/");
  EXPECT_EQ(keys.count(leader_key(m.options())), 0u);
  EXPECT_EQ(keys.count(member_key(m.options())), 0u);
  // The shutdown checkpoint position was recorded for a replica to compare against.
  ASSERT_TRUE(keys.count("/service/itest/status"));
  EXPECT_GT(nlohmann::json::parse(keys["/service/itest/status"])["optime"].get<int64_t>(), 0);
  // pg_controldata says the cluster was shut down cleanly.
  std::string ctl = run_capture(pg_bin_dir() + "/pg_controldata " + m.data_dir());
  EXPECT_NE(ctl.find("shut down"), std::string::npos) << ctl;
}

TEST_F(DaemonTest, SigintBehavesLikeSigterm) {
  PgwardenMember m(etcd, {});
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  auto code = m.stop(SIGINT, 60s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(etcd.get_prefix("/service/itest/").count(leader_key(m.options())), 0u);
}

TEST_F(DaemonTest, AdoptsRunningPostmasterAfterRestart) {
  PgwardenMember m(etcd, {});
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  auto pid = m.postmaster_pid();
  ASSERT_TRUE(pid);
  m.kill9();  // pgwarden dies; PostgreSQL keeps running
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 60s)) << m.log();
  EXPECT_EQ(m.postmaster_pid(), pid) << "a second postmaster was started";
  EXPECT_EQ(m.sql("SELECT 1"), "1");
}

TEST_F(DaemonTest, FailingPostInitMovesDataAsideAndReleasesInitialize) {
  TempDir scripts;
  std::string script = scripts.file("post_init.sh");
  write_file(script, "#!/bin/sh\necho \"post_init got $1\"\nexit 3\n", 0755);
  MemberOptions o;
  o.post_init = script;
  PgwardenMember m(etcd, o);
  m.start();
  auto code = [&] {
    std::optional<int> c;
    wait_until([&] { return !m.alive(); }, 90s);
    c = m.stop(SIGTERM, 5s);
    return c;
  }();
  ASSERT_TRUE(code) << m.log();
  EXPECT_NE(*code, 0);
  std::string log = m.log();
  EXPECT_NE(log.find("post_init"), std::string::npos) << log;
  EXPECT_NE(log.find("code 3"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(m.data_dir()));
  bool moved = false;
  for (auto& e : fs::directory_iterator(m.dir()))
    moved = moved || e.path().filename().string().rfind("data.failed", 0) == 0;
  EXPECT_TRUE(moved) << "data directory was not moved aside";
  EXPECT_EQ(etcd.get_prefix("/service/itest/").count("/service/itest/initialize"), 0u);
  EXPECT_FALSE(m.postmaster_pid());
}

TEST_F(DaemonTest, CallbacksGetActionRoleScopeAndNoPatroniVariables) {
  TempDir scripts;
  std::string record = scripts.file("calls.log");
  std::string script = scripts.file("callback.sh");
  write_file(script,
             "#!/bin/sh\necho \"$1 $2 $3 patroni_vars=$(env | grep -c '^PATRONI_')\" >> " + record + "\n", 0755);
  MemberOptions o;
  o.callback = script;
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  ASSERT_TRUE(wait_until([&] { return read_file(record).find("on_start master itest") != std::string::npos; }, 10s))
      << read_file(record) << m.log();
  EXPECT_NE(read_file(record).find("on_start master itest patroni_vars=0"), std::string::npos) << read_file(record);
  auto code = m.stop(SIGTERM, 60s);
  ASSERT_TRUE(code);
  EXPECT_TRUE(wait_until([&] { return read_file(record).find("on_stop master itest patroni_vars=0") != std::string::npos; },
                         10s))
      << read_file(record);
}

TEST_F(DaemonTest, CreatesBootstrapUsersFromEnvironment) {
  MemberOptions o;
  o.extra_env = {{"PATRONI_admin_PASSWORD", "admin-secret-pw"}, {"PATRONI_admin_OPTIONS", "createrole,createdb"}};
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  EXPECT_EQ(m.sql("SELECT rolcreaterole::text || rolcreatedb::text || rolcanlogin::text FROM pg_roles WHERE rolname = 'admin'"),
            "truetruetrue");
  EXPECT_EQ(m.log().find("admin-secret-pw"), std::string::npos);
}

TEST_F(DaemonTest, SighupReloadsConfiguration) {
  PgwardenMember m(etcd, {});
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  EXPECT_EQ(m.sql("SHOW work_mem"), "4MB");
  std::string cfg = read_file(m.config_path());
  auto at = cfg.find("  parameters:\n    unix_socket_directories:");
  ASSERT_NE(at, std::string::npos);
  cfg.insert(at + std::string("  parameters:\n").size(), "    work_mem: 8MB\n");
  write_file(m.config_path(), cfg, 0600);
  m.stop(SIGHUP, 0ms);
  EXPECT_TRUE(wait_until([&] { return m.sql("SHOW work_mem") == "8MB"; }, 20s)) << m.log();
  EXPECT_TRUE(is_leader(m));
}

TEST_F(DaemonTest, ExactlyOneOfTwoMembersBootstraps) {
  MemberOptions a, b;
  a.name = "node1";
  b.name = "node2";
  PgwardenMember m1(etcd, a), m2(etcd, b);
  m1.start();
  m2.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m1) || is_leader(m2); }, 90s)) << m1.log() << m2.log();
  std::this_thread::sleep_for(3s);
  EXPECT_NE(is_leader(m1), is_leader(m2));
  // The loser clones the winner (it may have data too), but only one ran initdb.
  int won = (m1.log().find("won the initialize race") != std::string::npos) +
            (m2.log().find("won the initialize race") != std::string::npos);
  EXPECT_EQ(won, 1) << m1.log() << m2.log();
  auto keys = etcd.get_prefix("/service/itest/");
  EXPECT_TRUE(keys.count("/service/itest/members/node1"));
  EXPECT_TRUE(keys.count("/service/itest/members/node2"));
}

TEST(DaemonCli, BrokenConfigExitsTwoWithOneLinePerProblem) {
  TempDir dir;
  std::string cfg = dir.file("bad.yml");
  write_file(cfg,
             "scope: x\nname: n\nrestapi:\n  listen: 127.0.0.1:99999\netcd3:\n  hosts: 127.0.0.1:2379\n"
             "bootstrap:\n  dcs:\n    ttl: 5\n    loop_wait: 10\n    retry_timeout: 10\n"
             "postgresql:\n  listen: 127.0.0.1:5432\n  authentication:\n    superuser:\n      password: hunter2-secret\n",
             0644);
  std::string out = run_capture(std::string(PGWARDEN_BINARY) + " " + cfg + "; echo exit=$?");
  EXPECT_NE(out.find("exit=2"), std::string::npos) << out;
  EXPECT_NE(out.find("restapi.listen"), std::string::npos) << out;
  EXPECT_NE(out.find("postgresql.data_dir"), std::string::npos) << out;
  EXPECT_NE(out.find("ttl"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2-secret"), std::string::npos) << out;
  EXPECT_EQ(out.find("terminate"), std::string::npos) << out;

  std::string v = run_capture(std::string(PGWARDEN_BINARY) + " --validate-config " + cfg + "; echo exit=$?");
  EXPECT_NE(v.find("exit=2"), std::string::npos) << v;

  write_file(cfg, "scope: [unclosed\n", 0644);
  std::string y = run_capture(std::string(PGWARDEN_BINARY) + " " + cfg + "; echo exit=$?");
  EXPECT_NE(y.find("exit=2"), std::string::npos) << y;
  EXPECT_NE(y.find("YAML"), std::string::npos) << y;

  std::string missing = run_capture(std::string(PGWARDEN_BINARY) + " " + dir.file("nope.yml") + "; echo exit=$?");
  EXPECT_NE(missing.find("exit=2"), std::string::npos) << missing;
}

TEST(DaemonCli, VersionAndValidConfig) {
  std::string out = run_capture(std::string(PGWARDEN_BINARY) + " --version; echo exit=$?");
  EXPECT_NE(out.find("pgwarden"), std::string::npos);
  EXPECT_NE(out.find("exit=0"), std::string::npos);
  TempDir dir;
  std::string cfg = dir.file("good.yml");
  write_file(cfg,
             "scope: x\nname: n\nrestapi:\n  listen: 127.0.0.1:8008\netcd3:\n  hosts: 127.0.0.1:2379\n"
             "postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n",
             0644);
  std::string v = run_capture(std::string(PGWARDEN_BINARY) + " --validate-config " + cfg + "; echo exit=$?");
  EXPECT_NE(v.find("exit=0"), std::string::npos) << v;
}

}  // namespace
}  // namespace pgwarden::test
