// Custom bootstrap (bootstrap.method: <script>) without pgBackRest: the chart's initdb branch
// (a script that runs initdb itself), a restore of another cluster's base backup that must
// recover and come up on a new timeline, and a failing script. The pgBackRest restores are in
// pgbackrest_restore_test.cpp.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <thread>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

bool is_leader(const PgwardenMember& m) { return m.get("/leader").status == 200; }

std::string method_yaml(const std::string& command, const std::string& more = "") {
  return "  method: restore_or_initdb\n  restore_or_initdb:\n    command: " + command + "\n" + more;
}

class CustomBootstrapTest : public ::testing::Test {
 protected:
  EtcdServer etcd;
  TempDir scripts{"pgw-cb-scripts"};
};

TEST_F(CustomBootstrapTest, InitdbScriptLikeTheChartsBootstrapsAndCreatesUsers) {
  // The chart's restore_or_initdb without a backup: drop --scope/--datadir, run initdb.
  std::string script = scripts.file("restore_or_initdb.sh");
  write_file(script,
             "#!/bin/sh\nargs=\nfor a in \"$@\"; do case \"$a\" in --scope*|--datadir*) ;; *) args=\"$args $a\";; "
             "esac; done\necho \"initdb for $PGDATA with$args\"\nexec " +
                 pg_bin_dir() + "/initdb --auth-local=peer --auth-host=md5 --pgdata=\"$PGDATA\" $args\n",
             0755);
  MemberOptions o;
  o.bootstrap_yaml = method_yaml(script + " --encoding=UTF8 --locale=C", "    keep_existing_recovery_conf: true\n");
  o.extra_env = {{"PGDATA", "{data_dir}"}};
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  std::string log = m.log();
  EXPECT_NE(log.find("Running custom bootstrap script"), std::string::npos) << log;
  EXPECT_NE(log.find("with --encoding=UTF8 --locale=C"), std::string::npos) << log;
  // Users got their passwords: the fixture connects over TCP with md5.
  EXPECT_EQ(m.sql("SHOW server_encoding"), "UTF8");
  EXPECT_EQ(m.sql("SELECT rolreplication::text FROM pg_roles WHERE rolname = 'standby'"), "true");
  auto keys = etcd.get_prefix("/service/itest/");
  EXPECT_EQ(keys["/service/itest/initialize"], m.sql("SELECT system_identifier::text FROM pg_control_system()"));
  // The real pg_hba replaced the bootstrap's trust lines.
  std::string hba = read_file(m.data_dir() + "/pg_hba.conf");
  EXPECT_EQ(hba.find("trust\n", hba.find("host")), std::string::npos) << hba;
}

TEST_F(CustomBootstrapTest, RestoredBaseBackupRecoversOnANewTimelineWithTheSourcesData) {
  MemberOptions src_opts;
  src_opts.scope = "source";
  PgwardenMember src(etcd, src_opts);
  src.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(src); }, 90s)) << src.log();
  ASSERT_EQ(src.sql("CREATE TABLE t AS SELECT generate_series(1, 100) AS x"), "OK");

  TempDir backup("pgw-cb-backup");
  std::string copy = backup.file("base");
  std::string take = scripts.file("take_backup.sh");
  write_file(take,
             "#!/bin/sh\nPGPASSWORD='" + std::string(kReplicationPassword) + "' exec " + pg_bin_dir() +
                 "/pg_basebackup -D " + copy + " -X stream -c fast -h 127.0.0.1 -p " + std::to_string(src.pg_port()) +
                 " -U standby\n",
             0755);
  Child backup_run({take}, {{"PATH", "/usr/bin:/bin"}}, backup.file("backup.log"), true);
  ASSERT_EQ(backup_run.wait(120s), std::optional<int>(0)) << backup_run.log();
  std::string sysid = src.sql("SELECT system_identifier::text FROM pg_control_system()");

  // The restore: copy the backup; recovery_conf makes pgwarden replay it and promote.
  std::string restore = scripts.file("restore.sh");
  write_file(restore, "#!/bin/sh\nset -e\nmkdir -p \"$PGDATA\"\ncp -a " + copy + "/. \"$PGDATA\"/\nchmod 700 \"$PGDATA\"\n",
             0755);
  MemberOptions o;
  o.scope = "restored";
  o.index = 2;
  o.bootstrap_yaml = method_yaml(restore, "    no_params: true\n    recovery_conf:\n      restore_command: /bin/false\n"
                                          "      recovery_target_action: promote\n");
  o.extra_env = {{"PGDATA", "{data_dir}"}};
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 120s)) << m.log();
  EXPECT_EQ(m.sql("SELECT count(*)::text FROM t"), "100");
  EXPECT_EQ(m.sql("SELECT pg_is_in_recovery()::text"), "false");
  EXPECT_EQ(m.sql("SELECT timeline_id::text FROM pg_control_checkpoint()"), "2");
  EXPECT_EQ(m.sql("INSERT INTO t VALUES (101)"), "OK");
  auto keys = etcd.get_prefix("/service/restored/");
  EXPECT_EQ(keys["/service/restored/initialize"], sysid);
  EXPECT_EQ(keys["/service/restored/leader"], "node1");
  // hot_standby was off for the recovery (target action promote); the restart after it
  // brought the configured value back, so nothing waits for a restart.
  EXPECT_EQ(m.sql("SHOW hot_standby"), "on");
  EXPECT_EQ(m.sql("SELECT count(*)::text FROM pg_settings WHERE pending_restart"), "0");
  EXPECT_NE(m.log().find("recovery after bootstrap ended on timeline 2"), std::string::npos) << m.log();
}

TEST_F(CustomBootstrapTest, ALongScriptShowsItsStateAndALiveLoop) {
  // The loop is busy while the script runs; the REST API must still say what it does and
  // that it is alive (liveness probes would otherwise restart a pod in the middle of a restore).
  std::string script = scripts.file("slow.sh");
  write_file(script,
             "#!/bin/sh\nsleep 6\nexec " + pg_bin_dir() + "/initdb --auth-local=trust --pgdata=\"$PGDATA\"\n", 0755);
  MemberOptions o;
  o.bootstrap_yaml = method_yaml(script, "    no_params: true\n");
  o.extra_env = {{"PGDATA", "{data_dir}"}};
  PgwardenMember m(etcd, o);
  m.start();
  std::string state;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = m.get("/patroni");
        auto doc = nlohmann::json::parse(r.body, nullptr, false);
        state = doc.is_object() ? doc.value("state", "") : "";
        return state == "running custom bootstrap script";
      },
      10s))
      << state << "\n" << m.log();
  // Three seconds into the script (longer than loop_wait) the loop still counts as alive.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(m.get("/liveness").status, 200);
  auto doc = nlohmann::json::parse(m.get("/patroni").body, nullptr, false);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.value("state", ""), "running custom bootstrap script");
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << m.log();
  EXPECT_EQ(nlohmann::json::parse(m.get("/patroni").body, nullptr, false).value("state", ""), "running");
}

TEST_F(CustomBootstrapTest, FailingScriptReleasesInitializeAndMovesItsDataAside) {
  std::string script = scripts.file("fail.sh");
  write_file(script, "#!/bin/sh\nmkdir -p \"$PGDATA\" && echo partial > \"$PGDATA/partial\"\necho 'no backup found' >&2\nexit 1\n",
             0755);
  MemberOptions o;
  o.bootstrap_yaml = method_yaml(script);
  o.extra_env = {{"PGDATA", "{data_dir}"}};
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return !m.alive(); }, 60s)) << m.log();
  auto code = m.stop(SIGTERM, 5s);
  ASSERT_TRUE(code);
  EXPECT_NE(*code, 0);
  std::string log = m.log();
  EXPECT_NE(log.find("custom bootstrap script restore_or_initdb exited with code 1"), std::string::npos) << log;
  EXPECT_NE(log.find("no backup found"), std::string::npos) << log;
  EXPECT_EQ(etcd.get_prefix("/service/itest/").count("/service/itest/initialize"), 0u);
  EXPECT_EQ(etcd.get_prefix("/service/itest/").count("/service/itest/leader"), 0u);
  bool moved = false;
  for (auto& e : fs::directory_iterator(m.dir()))
    if (e.path().filename().string().rfind("data.failed", 0) == 0)
      moved = moved || fs::exists(e.path() / "partial");
  EXPECT_TRUE(moved) << "the script's data was not moved aside";
}

}  // namespace
}  // namespace pgwarden::test
