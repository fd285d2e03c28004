// pgBackRest with pgwarden, as the timescaledb-single chart configures Patroni: real etcd (or the
// Kubernetes API emulator), PostgreSQL 15 and pgBackRest with a posix repository in a temp dir.
// Replicas created from a backup (create_replica_methods [pgbackrest, basebackup]) and the
// fallback to basebackup; new clusters bootstrapped from another cluster's backup with the
// chart's restore_or_initdb method (both branches); point-in-time bootstrap through a method's
// recovery_conf; a failing bootstrap command.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "cluster_fixture.hpp"
#include "pgbackrest_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
constexpr auto npos = std::string::npos;

bool is_leader(const PgwardenMember& m) { return m.get("/leader").status == 200; }

MemberOptions member_options(const std::string& scope, const std::string& name, int index) {
  MemberOptions o;
  o.scope = scope;
  o.name = name;
  o.index = index;
  return o;
}

std::string yq(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The member's own WAL receiver streams from `leader`.
bool streams_from(const PgwardenMember& m, const PgwardenMember& leader) {
  return wal_receiver_status(m) == "streaming" &&
         m.sql("SELECT sender_port::text FROM pg_stat_wal_receiver") == std::to_string(leader.pg_port());
}

// pgBackRest's own log of the restores run with this repository.
std::string restore_log(const PgBackRestRepo& repo) {
  std::string p = repo.dir() + "/log/" + repo.stanza() + "-restore.log";
  return file_exists(p) ? read_file(p) : "";
}

std::string tail(const std::string& s, size_t n = 6000) { return s.size() <= n ? s : s.substr(s.size() - n); }

// Cluster with archiving into `repo`: the leader, a stanza, rows before and after a full
// backup; then a new member restores that backup and streams. Shared by etcd and Kubernetes.
void scale_up_from_backup(TestDcs& dcs, const std::string& scope) {
  PgBackRestRepo repo;
  auto o1 = member_options(scope, "node1", 1);
  repo.configure(o1);
  PgwardenMember n1(dcs, o1);
  n1.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(n1); }, 90s)) << tail(n1.log());
  ASSERT_TRUE(wait_until([&] { return n1.sql("SHOW archive_mode") == "on"; }, 30s)) << tail(n1.log());
  auto r = repo.stanza_create(n1);
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_EQ(n1.sql("CREATE TABLE before_backup AS SELECT g AS id FROM generate_series(1, 1000) g"), "OK");
  r = repo.backup(n1, "full");
  ASSERT_TRUE(r.ok()) << r.output;
  EXPECT_EQ(repo.backup_count(), 1u);
  ASSERT_EQ(n1.sql("CREATE TABLE after_backup AS SELECT g AS id FROM generate_series(1, 500) g"), "OK");

  auto o2 = member_options(scope, "node2", 2);
  repo.configure(o2);
  PgwardenMember n2(dcs, o2);
  n2.start();
  ASSERT_TRUE(wait_until([&] { return streams_from(n2, n1); }, 120s))
      << "wal receiver: " << wal_receiver_status(n2) << "\n" << tail(n2.log());
  std::string log = n2.log();
  EXPECT_NE(log.find("replica has been created using pgbackrest"), npos) << tail(log);
  EXPECT_EQ(log.find("replica has been created using basebackup"), npos) << tail(log);
  EXPECT_NE(restore_log(repo).find("restore command end: completed successfully"), npos) << restore_log(repo);
  EXPECT_EQ(n2.sql("SELECT count(*) FROM before_backup"), "1000");
  EXPECT_TRUE(wait_until([&] { return n2.sql("SELECT count(*) FROM after_backup") == "500"; }, 30s))
      << n2.sql("SELECT count(*) FROM after_backup");
  // New writes arrive by streaming, and the replica is a replica for pgwarden too.
  ASSERT_EQ(n1.sql("INSERT INTO after_backup VALUES (501)"), "OK");
  EXPECT_TRUE(wait_until([&] { return n2.sql("SELECT count(*) FROM after_backup") == "501"; }, 30s));
  EXPECT_TRUE(wait_until([&] { return n2.get("/replica").status == 200; }, 30s)) << n2.get("/patroni").body;
}

class PgBackRestRestore : public ::testing::Test {
 protected:
  EtcdServer etcd;
};

// (a) A new member of a cluster with backups is created by `pgbackrest restore`, then streams.
TEST_F(PgBackRestRestore, NewMemberRestoresFromBackupThenStreams) {
  EtcdTestDcs dcs(etcd);
  scale_up_from_backup(dcs, "bkscale");
}

// (b) The pgbackrest method fails (repository without a stanza; a configuration file that does
// not exist): the next method, basebackup, creates the replica.
TEST_F(PgBackRestRestore, FailingPgbackrestMethodFallsBackToBasebackup) {
  PgBackRestRepo empty;  // no stanza-create, no backup
  auto o1 = member_options("bkfallback", "node1", 1);
  PgwardenMember n1(etcd, o1);
  n1.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(n1); }, 90s)) << tail(n1.log());
  ASSERT_EQ(n1.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g"), "OK");

  auto o2 = member_options("bkfallback", "node2", 2);
  empty.configure(o2, {.archive = false});
  auto o3 = member_options("bkfallback", "node3", 3);
  empty.configure(o3, {.archive = false});
  o3.extra_env["PGBACKREST_CONFIG"] = "{dir}/no-such-pgbackrest.conf";
  PgwardenMember n2(etcd, o2), n3(etcd, o3);
  n2.start();
  n3.start();
  for (auto* m : {&n2, &n3}) {
    ASSERT_TRUE(wait_until([&] { return streams_from(*m, n1); }, 120s))
        << m->options().name << ": " << wal_receiver_status(*m) << "\n" << tail(m->log());
    std::string log = m->log();
    EXPECT_NE(log.find("trying to create the replica using pgbackrest"), npos) << tail(log);
    EXPECT_NE(log.find("Error creating replica using method pgbackrest"), npos) << tail(log);
    EXPECT_NE(log.find("replica has been created using basebackup"), npos) << tail(log);
    EXPECT_EQ(m->sql("SELECT count(*) FROM t"), "100");
  }
}

// (c) A new cluster B starts from cluster A's backup with the chart's restore_or_initdb method:
// A's rows (also those archived after the backup), a new timeline, leader and running; then B
// backs up into its own repository.
TEST_F(PgBackRestRestore, NewClusterBootstrapsFromAnotherClustersBackup) {
  PgBackRestRepo repo_a, repo_b;
  auto oa = member_options("bkclustera", "a1", 1);
  repo_a.configure(oa);
  PgwardenMember a1(etcd, oa);
  a1.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(a1); }, 90s)) << tail(a1.log());
  ASSERT_TRUE(wait_until([&] { return a1.sql("SHOW archive_mode") == "on"; }, 30s));
  auto r = repo_a.stanza_create(a1);
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_EQ(a1.sql("CREATE TABLE r1 AS SELECT g AS id FROM generate_series(1, 1000) g"), "OK");
  r = repo_a.backup(a1);
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_EQ(a1.sql("CREATE TABLE r2 AS SELECT g AS id FROM generate_series(1, 300) g"), "OK");
  ASSERT_TRUE(PgBackRestRepo::switch_wal_and_wait_archived(a1)) << tail(a1.log());
  std::string a_sysid = a1.sql("SELECT system_identifier::text FROM pg_control_system()");
  int a_timeline = std::stoi(a1.sql("SELECT timeline_id FROM pg_control_checkpoint()"));
  std::string a_newest = repo_a.newest_archived_wal();
  ASSERT_FALSE(a_newest.empty());

  auto ob = member_options("bkclusterb", "b1", 1);
  repo_b.configure(ob, {.bootstrap_from = &repo_a});
  ob.extra_env["BOOTSTRAP_FROM_BACKUP"] = "1";
  ob.bootstrap_yaml = "  method: restore_or_initdb\n  restore_or_initdb:\n    command: " +
                      yq(repo_b.restore_or_initdb_script() + " --encoding=UTF8 --locale=C.UTF-8") +
                      "\n    keep_existing_recovery_conf: true\n";
  PgwardenMember b1(etcd, ob);
  b1.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(b1); }, 180s)) << tail(b1.log(), 12000);
  EXPECT_EQ(b1.sql("SELECT count(*) FROM r1"), "1000");
  EXPECT_EQ(b1.sql("SELECT count(*) FROM r2"), "300");
  EXPECT_EQ(b1.sql("SELECT system_identifier::text FROM pg_control_system()"), a_sysid);
  EXPECT_GT(std::stoi(b1.sql("SELECT timeline_id FROM pg_control_checkpoint()")), a_timeline);
  EXPECT_EQ(b1.sql("SELECT pg_is_in_recovery()::text"), "false");
  EXPECT_TRUE(wait_until(
      [&] {
        auto p = b1.get("/patroni");
        if (p.status != 200) return false;
        auto doc = nlohmann::json::parse(p.body, nullptr, false);
        return doc.is_object() && doc.value("role", "") == "master" && doc.value("state", "") == "running";
      },
      30s))
      << b1.get("/patroni").body;
  auto keys = etcd.get_prefix("/service/bkclusterb/");
  EXPECT_EQ(keys["/service/bkclusterb/initialize"], a_sysid);
  EXPECT_EQ(keys["/service/bkclusterb/leader"], "b1");
  // The users pgwarden manages work on the restored cluster (the replication user with its password).
  EXPECT_EQ(b1.sql("SELECT rolreplication::text FROM pg_roles WHERE rolname = 'standby'"), "true");

  // B archives into and backs up to its own repository; A's repository was only read.
  r = repo_b.stanza_create(b1);
  ASSERT_TRUE(r.ok()) << r.output << tail(b1.log());
  r = repo_b.backup(b1);
  ASSERT_TRUE(r.ok()) << r.output << tail(b1.log());
  EXPECT_EQ(repo_b.backup_count(), 1u);
  ASSERT_EQ(b1.sql("INSERT INTO r2 VALUES (301)"), "OK");
  EXPECT_TRUE(PgBackRestRepo::switch_wal_and_wait_archived(b1)) << tail(b1.log());
  EXPECT_EQ(repo_a.newest_archived_wal(), a_newest);
  EXPECT_EQ(repo_a.backup_count(), 1u);
}

// (d) restore_or_initdb without BOOTSTRAP_FROM_BACKUP: initdb with the command's arguments, a
// normal new cluster (users, post_init).
TEST_F(PgBackRestRestore, RestoreOrInitdbWithoutBackupInitializesANewCluster) {
  PgBackRestRepo repo;
  TempDir scripts("pgwarden-bk-scripts");
  std::string post_init = scripts.file("post_init.sh");
  write_file(post_init,
             "#!/bin/sh\nexec " + pg_bin_dir() + "/psql -X -q \"$1\" -c 'CREATE TABLE post_init_ran()'\n", 0755);
  auto o = member_options("bkinitdb", "node1", 1);
  repo.configure(o);
  o.post_init = post_init;
  o.bootstrap_yaml = "  method: restore_or_initdb\n  restore_or_initdb:\n    command: " +
                     yq(repo.restore_or_initdb_script() + " --encoding=UTF8 --locale=C.UTF-8") +
                     "\n    keep_existing_recovery_conf: true\n";
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(m); }, 90s)) << tail(m.log());
  EXPECT_NE(m.log().find("restore_or_initdb: no backup requested: initdb"), npos) << tail(m.log());
  EXPECT_EQ(m.sql("SELECT count(*) FROM pg_class WHERE relname = 'post_init_ran'"), "1");
  EXPECT_EQ(m.sql("SHOW server_encoding"), "UTF8");
  EXPECT_EQ(m.sql("SELECT datcollate FROM pg_database WHERE datname = 'postgres'"), "C.UTF-8");
  EXPECT_EQ(m.sql("SELECT timeline_id::text FROM pg_control_checkpoint()"), "1");
  EXPECT_EQ(m.sql("SELECT rolreplication::text FROM pg_roles WHERE rolname = 'standby'"), "true");
  auto keys = etcd.get_prefix("/service/bkinitdb/");
  EXPECT_EQ(keys["/service/bkinitdb/initialize"], m.sql("SELECT system_identifier::text FROM pg_control_system()"));
  // A replica joins it as usual (its pgbackrest method fails without a stanza, basebackup works).
  auto o2 = member_options("bkinitdb", "node2", 2);
  repo.configure(o2);
  PgwardenMember m2(etcd, o2);
  m2.start();
  EXPECT_TRUE(wait_until([&] { return streams_from(m2, m); }, 120s)) << tail(m2.log());
}

// (e) Point in time: a bootstrap method that only restores, with recovery_conf carrying the
// target; the new cluster has the rows committed before the target and none after.
TEST_F(PgBackRestRestore, BootstrapMethodWithRecoveryConfStopsAtTargetTime) {
  PgBackRestRepo repo;
  auto oa = member_options("bkpitra", "a1", 1);
  repo.configure(oa);
  PgwardenMember a1(etcd, oa);
  a1.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(a1); }, 90s)) << tail(a1.log());
  ASSERT_TRUE(wait_until([&] { return a1.sql("SHOW archive_mode") == "on"; }, 30s));
  auto r = repo.stanza_create(a1);
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_EQ(a1.sql("CREATE TABLE t (id int)"), "OK");
  r = repo.backup(a1);
  ASSERT_TRUE(r.ok()) << r.output;
  ASSERT_EQ(a1.sql("INSERT INTO t SELECT generate_series(1, 100)"), "OK");
  std::this_thread::sleep_for(300ms);
  std::string target = a1.sql("SELECT clock_timestamp()::text");
  std::this_thread::sleep_for(1200ms);
  ASSERT_EQ(a1.sql("INSERT INTO t SELECT generate_series(101, 200)"), "OK");
  ASSERT_TRUE(PgBackRestRepo::switch_wal_and_wait_archived(a1)) << tail(a1.log());

  auto oc = member_options("bkpitrc", "c1", 1);
  repo.configure(oc, {.archive = false, .replica_method = false, .restore_command = false});
  oc.bootstrap_yaml = "  method: pitr\n  pitr:\n    command: " + yq(repo.restore_only_script()) +
                      "\n    recovery_conf:\n      recovery_target_time: " + yq(target) +
                      "\n      recovery_target_action: promote\n      restore_command: " +
                      yq(repo.archive_get_script() + " %f \"%p\"") + "\n";
  PgwardenMember c1(etcd, oc);
  c1.start();
  ASSERT_TRUE(wait_until([&] { return is_leader(c1); }, 180s)) << tail(c1.log(), 12000);
  EXPECT_EQ(c1.sql("SELECT count(*) FROM t"), "100");
  EXPECT_EQ(c1.sql("SELECT max(id) FROM t"), "100");
  EXPECT_EQ(c1.sql("SELECT pg_is_in_recovery()::text"), "false");
  EXPECT_GT(std::stoi(c1.sql("SELECT timeline_id FROM pg_control_checkpoint()")), 1);
  EXPECT_EQ(a1.sql("SELECT count(*) FROM t"), "200");
}

// (f) A bootstrap command that fails: no leader, an error naming the method, the initialize key
// released, the member exits as Patroni does, and what the command wrote is moved aside.
TEST_F(PgBackRestRestore, FailingBootstrapCommandLeavesNoLeaderAndKeepsItsData) {
  TempDir scripts("pgwarden-bk-scripts");
  std::string cmd = scripts.file("broken_bootstrap.sh");
  write_file(cmd,
             "#!/bin/bash\n"
             "for a in \"$@\"; do case \"$a\" in --datadir=*) dd=\"${a#--datadir=}\" ;; esac; done\n"
             "mkdir -p \"$dd\" && chmod 0700 \"$dd\" && echo partial > \"$dd/restored_so_far\"\n"
             "echo 'cannot reach the backup repository' >&2\n"
             "exit 1\n",
             0755);
  auto o = member_options("bkfault", "node1", 1);
  o.bootstrap_yaml = "  method: from_backup\n  from_backup:\n    command: " + yq(cmd) + "\n";
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return !m.alive(); }, 90s)) << tail(m.log());
  auto code = m.stop(SIGTERM, 5s);
  ASSERT_TRUE(code) << tail(m.log());
  EXPECT_NE(*code, 0);
  std::string log = m.log();
  EXPECT_NE(log.find("from_backup"), npos) << tail(log);
  EXPECT_NE(log.find("bootstrap failed"), npos) << tail(log);
  EXPECT_EQ(log.find("initialized a new cluster"), npos) << tail(log);
  auto keys = etcd.get_prefix("/service/bkfault/");
  EXPECT_EQ(keys.count("/service/bkfault/initialize"), 0u);
  EXPECT_EQ(keys.count("/service/bkfault/leader"), 0u);
  EXPECT_FALSE(m.postmaster_pid());
  // Nothing deleted: the directory the command started to fill was moved aside.
  EXPECT_FALSE(fs::exists(m.data_dir() + "/restored_so_far"));
  bool kept = false;
  for (auto& e : fs::directory_iterator(m.dir()))
    if (e.path().filename().string().rfind("data.failed", 0) == 0)
      kept = kept || file_exists(e.path().string() + "/restored_so_far");
  EXPECT_TRUE(kept) << "the command's data was not moved aside";
}

// (a) on the Kubernetes backend (the API emulator, Endpoints as the chart uses).
TEST(PgBackRestRestoreK8s, NewMemberRestoresFromBackupThenStreams) {
  K8sTestDcs dcs(true, "bkk8s");
  scale_up_from_backup(dcs, "bkk8s");
}

}  // namespace
}  // namespace pgwarden::test
