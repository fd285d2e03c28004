// Replica creation, replication slots and pg_rewind against real PostgreSQL 15 clusters in a
// temp dir (no DCS): basebackup clones that stream, method fallback, no-leader methods,
// physical slot sync, rewinding a diverged former primary.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <filesystem>
#include <thread>

#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/postgres/recovery.hpp"
#include "pgwarden/postgres/replica.hpp"
#include "pgwarden/postgres/rewind.hpp"
#include "pgwarden/postgres/slots.hpp"
#include "support/harness.hpp"

namespace pgwarden::postgres {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

std::optional<std::string> query_one(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  std::optional<std::string> out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    auto st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0);
    else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) out = "";
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

// Directories (siblings of a data dir) whose name starts with "<data_dir>.failed_".
std::vector<std::string> moved_aside(const std::string& data_dir) {
  std::vector<std::string> out;
  fs::path dd(data_dir);
  for (const auto& e : fs::directory_iterator(dd.parent_path()))
    if (e.path().filename().string().rfind(dd.filename().string() + ".failed_", 0) == 0) out.push_back(e.path());
  return out;
}

class ReplicaIntegration : public ::testing::Test {
 protected:
  void SetUp() override { env_ = util::current_environment(); }

  // Runs even when an assertion failed half-way: never leave a postmaster behind.
  void TearDown() override {
    for (const auto& dd : data_dirs_) {
      if (!fs::exists(dd + "/postmaster.pid")) continue;
      (void)util::run({{test::pg_bin_dir() + "/pg_ctl", "stop", "-D", dd, "-m", "immediate", "-w", "-t", "30"},
                       env_,
                       std::nullopt},
                      40s);
    }
  }

  // A member with its own data dir and port; all share passwords, pgpass and socket dir.
  config::Config member(const std::string& name) {
    config::Config cfg;
    int port = test::free_port();
    cfg.scope = "pgw-replica-it";
    cfg.name = name;
    cfg.postgresql.data_dir = dir_.file("data-" + name);
    cfg.postgresql.pgpass = dir_.file("pgpass");  // HOME is not writable as `postgres`
    cfg.postgresql.bin_dir = test::pg_bin_dir();
    cfg.postgresql.listen = {"127.0.0.1", port};
    cfg.postgresql.listen_addresses = {"127.0.0.1"};
    cfg.postgresql.connect_address = "127.0.0.1:" + std::to_string(port);
    cfg.postgresql.use_unix_socket = true;
    cfg.postgresql.superuser = {"postgres", "su-secret", {}};
    cfg.postgresql.replication = {"replicator", "re:pl'secret", {}};
    cfg.postgresql.parameters = json{{"unix_socket_directories", dir_.path()}};
    cfg.bootstrap.initdb = json::array({"data-checksums", {{"encoding", "UTF8"}}});
    data_dirs_.push_back(cfg.postgresql.data_dir);
    return cfg;
  }

  json parameters(const json& extra = json::object()) const {
    json p{{"unix_socket_directories", dir_.path()}, {"shared_buffers", "16MB"}, {"max_connections", 30}};
    p.update(extra);
    return p;
  }

  std::vector<std::string> hba() const {
    return {"local all all trust", "host all all 127.0.0.1/32 md5", "host replication all 127.0.0.1/32 md5"};
  }

  std::string local(const config::Config& cfg) const {
    return "host=" + dir_.path() + " port=" + std::to_string(cfg.postgresql.listen.port) +
           " dbname=postgres user=postgres";
  }

  // initdb + configuration + pgpass + start + roles.
  void bring_up_primary(Postgres& pg, const json& extra = json::object()) {
    auto st = pg.initdb();
    ASSERT_TRUE(st) << st.message();
    st = pg.write_configuration(parameters(extra), hba());
    ASSERT_TRUE(st) << st.message();
    st = pg.write_pgpass();
    ASSERT_TRUE(st) << st.message();
    st = pg.start(60s);
    ASSERT_TRUE(st) << st.message();
    st = pg.create_users();
    ASSERT_TRUE(st) << st.message();
  }

  // What the HA loop does after a clone or rewind: recovery parameters, standby.signal, start.
  void start_standby(Postgres& pg, const std::string& primary_url) {
    const auto& cfg = pg.config();
    json params = parameters({{"primary_conninfo", replica_conninfo(cfg, primary_url)},
                              {"primary_slot_name", slot_name_from_member_name(cfg.name)},
                              {"recovery_target_timeline", "latest"}});
    auto st = pg.write_configuration(params, hba());
    ASSERT_TRUE(st) << st.message();
    st = write_standby_signal(cfg.postgresql.data_dir);
    ASSERT_TRUE(st) << st.message();
    st = pg.start(60s);
    ASSERT_TRUE(st) << st.message();
  }

  // `a` a primary (with `extra` parameters), `b` its standby: a base backup, b's slot on a,
  // streaming.
  void primary_and_standby(Postgres& a, Postgres& b, const json& extra = json::object()) {
    ASSERT_NO_FATAL_FAILURE(bring_up_primary(a, extra));
    ASSERT_TRUE(sync_physical_slots(a, {slot_name_from_member_name(b.config().name)}));
    auto method = create_replica(b.config(), env_, CloneSource{a.connection_url(), ""});
    ASSERT_TRUE(method) << method.status().message();
    ASSERT_NO_FATAL_FAILURE(start_standby(b, a.connection_url()));
    ASSERT_TRUE(wait_streaming(a, b.config().name));
  }

  // Until `primary` shows `name` streaming in pg_stat_replication.
  bool wait_streaming(const Postgres& primary, const std::string& name) {
    return test::wait_until(
        [&] {
          auto s = primary.query_state();
          if (!s) return false;
          for (const auto& row : nlohmann::json::parse(s->replication_json, nullptr, false))
            if (row.value("application_name", "") == name && row.value("state", "") == "streaming") return true;
          return false;
        },
        60s);
  }

  test::TempDir dir_{"pgw-replica-it"};
  util::Environment env_;
  std::vector<std::string> data_dirs_;
};

TEST_F(ReplicaIntegration, BasebackupCloneStreamsFromThePrimary) {
  auto acfg = member("node-a");
  Postgres a(acfg, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up_primary(a));
  ASSERT_TRUE(a.execute("CREATE TABLE before_clone AS SELECT generate_series(1, 100) AS x"));

  auto bcfg = member("node-b");
  auto slots = sync_physical_slots(a, {slot_name_from_member_name(bcfg.name)});
  ASSERT_TRUE(slots) << slots.message();
  auto method = create_replica(bcfg, env_, CloneSource{a.connection_url(), ""});
  ASSERT_TRUE(method) << method.status().message();
  EXPECT_EQ(*method, "basebackup");
  EXPECT_TRUE(fs::exists(bcfg.postgresql.data_dir + "/PG_VERSION"));

  Postgres b(bcfg, env_);
  ASSERT_NO_FATAL_FAILURE(start_standby(b, a.connection_url()));
  ASSERT_TRUE(wait_streaming(a, "node-b"));
  auto bs = b.query_state();
  ASSERT_TRUE(bs) << bs.status().message();
  EXPECT_TRUE(bs->in_recovery);
  EXPECT_EQ(bs->system_identifier, a.query_state()->system_identifier);
  EXPECT_EQ(query_one(local(acfg), "SELECT active FROM pg_replication_slots WHERE slot_name = 'node_b'"), "t");
  EXPECT_EQ(query_one(local(bcfg), "SELECT count(*) FROM before_clone"), "100");
}

TEST_F(ReplicaIntegration, BasebackupCreatesTheReplicaSlotOrReusesIt) {
  auto acfg = member("node-a");
  Postgres a(acfg, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up_primary(a));
  auto bcfg = member("node-b");
  auto method = create_replica(bcfg, env_, CloneSource{a.connection_url(), "node_b"});
  ASSERT_TRUE(method) << method.status().message();
  EXPECT_EQ(query_one(local(acfg), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'node_b'"), "1");
  // Cloning again while the slot exists reuses it.
  auto ccfg = member("node-c");
  auto again = create_replica(ccfg, env_, CloneSource{a.connection_url(), "node_b"});
  ASSERT_TRUE(again) << again.status().message();
  EXPECT_EQ(query_one(local(acfg), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'node_b'"), "1");
}

TEST_F(ReplicaIntegration, FailingCustomMethodFallsBackToBasebackup) {
  auto acfg = member("node-a");
  Postgres a(acfg, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up_primary(a));

  // Leaves partial files in --datadir, then fails.
  test::write_file(dir_.file("bad_restore.sh"),
                   "#!/bin/sh\nfor a; do case $a in --datadir=*) d=${a#--datadir=};; esac; done\n"
                   "mkdir -p \"$d\" && echo junk > \"$d/junk\"\necho 'restore failed' >&2\nexit 3\n",
                   0755);
  auto bcfg = member("node-b");
  bcfg.postgresql.create_replica_methods = {"bad_restore", "basebackup"};
  config::CustomMethod bad;
  bad.name = "bad_restore";
  bad.command = dir_.file("bad_restore.sh");
  bcfg.postgresql.replica_methods["bad_restore"] = bad;
  // Something the caller should never leave there: it must be moved aside, not deleted.
  fs::create_directories(bcfg.postgresql.data_dir);
  test::write_file(bcfg.postgresql.data_dir + "/user_file", "precious\n");

  auto method = create_replica(bcfg, env_, CloneSource{a.connection_url(), ""});
  ASSERT_TRUE(method) << method.status().message();
  EXPECT_EQ(*method, "basebackup");
  EXPECT_TRUE(fs::exists(bcfg.postgresql.data_dir + "/PG_VERSION"));
  EXPECT_FALSE(fs::exists(bcfg.postgresql.data_dir + "/junk"));
  EXPECT_FALSE(fs::exists(bcfg.postgresql.data_dir + "/user_file"));
  auto aside = moved_aside(bcfg.postgresql.data_dir);
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(test::read_file(aside[0] + "/user_file"), "precious\n");

  // Every method failing: one error per method, in order.
  auto ccfg = member("node-c");
  ccfg.postgresql.create_replica_methods = {"bad_restore"};
  ccfg.postgresql.replica_methods["bad_restore"] = bad;
  auto failed = create_replica(ccfg, env_, CloneSource{a.connection_url(), ""});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.status().code(), Code::kFailed);
  EXPECT_NE(failed.status().message().find("bad_restore"), std::string::npos) << failed.status().message();
  EXPECT_NE(failed.status().message().find("exited with code 3"), std::string::npos);
  EXPECT_NE(failed.status().message().find("restore failed"), std::string::npos);
  EXPECT_FALSE(fs::exists(ccfg.postgresql.data_dir + "/junk")) << "our own partial clone is removed";
  EXPECT_TRUE(moved_aside(ccfg.postgresql.data_dir).empty());
}

TEST_F(ReplicaIntegration, WithoutLeaderOnlyNoMasterMethodsRun) {
  // A fake pg_basebackup that records being called.
  fs::create_directories(dir_.file("fakebin"));
  test::write_file(dir_.file("fakebin/pg_basebackup"), "#!/bin/sh\ntouch " + dir_.file("basebackup_ran") + "\nexit 1\n",
                   0755);
  test::write_file(dir_.file("restore.sh"), "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + dir_.file("restore_args") + "\n",
                   0755);
  auto cfg = member("node-c");
  cfg.postgresql.bin_dir = dir_.file("fakebin");
  cfg.postgresql.create_replica_methods = {"basebackup", "restore"};
  config::CustomMethod restore;
  restore.name = "restore";
  restore.command = dir_.file("restore.sh");
  restore.no_master = true;
  restore.keep_data = true;
  restore.extra = json{{"stanza", "main"}};
  cfg.postgresql.replica_methods["restore"] = restore;
  fs::create_directories(cfg.postgresql.data_dir);
  test::write_file(cfg.postgresql.data_dir + "/keep_me", "x");

  auto method = create_replica(cfg, env_, CloneSource{});
  ASSERT_TRUE(method) << method.status().message();
  EXPECT_EQ(*method, "restore");
  EXPECT_FALSE(fs::exists(dir_.file("basebackup_ran")));
  EXPECT_EQ(test::read_file(dir_.file("restore_args")),
            "--stanza=main\n--scope=pgw-replica-it\n--role=replica\n--datadir=" + cfg.postgresql.data_dir +
                "\n--connstring=\n");
  EXPECT_TRUE(fs::exists(cfg.postgresql.data_dir + "/keep_me")) << "keep_data";
  EXPECT_TRUE(moved_aside(cfg.postgresql.data_dir).empty());

  // Without an eligible method nothing runs.
  cfg.postgresql.create_replica_methods = {"basebackup"};
  auto none = create_replica(cfg, env_, CloneSource{});
  EXPECT_EQ(none.status().code(), Code::kFailed);
  EXPECT_FALSE(fs::exists(dir_.file("basebackup_ran")));
}

TEST_F(ReplicaIntegration, BasebackupGetsTwoAttemptsAndCleansUpAfterItself) {
  // A fake pg_basebackup that leaves partial files and fails; a leftover from the previous
  // attempt would show up in the call log.
  fs::create_directories(dir_.file("fakebin"));
  test::write_file(dir_.file("fakebin/pg_basebackup"),
                   "#!/bin/sh\nfor a; do case $a in --pgdata=*) d=${a#--pgdata=};; esac; done\n"
                   "[ -e \"$d/partial\" ] && echo leftover >> " + dir_.file("calls") + "\n"
                   "mkdir -p \"$d\" && touch \"$d/partial\"\necho call >> " + dir_.file("calls") +
                       "\necho 'could not connect' >&2\nexit 1\n",
                   0755);
  auto cfg = member("node-b");
  cfg.postgresql.bin_dir = dir_.file("fakebin");
  auto r = create_replica(cfg, env_, CloneSource{"postgres://127.0.0.1:1/postgres", ""});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("basebackup: pg_basebackup exited with code 1: could not connect"),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(test::read_file(dir_.file("calls")), "call\ncall\n");
  EXPECT_FALSE(fs::exists(cfg.postgresql.data_dir));
  EXPECT_TRUE(moved_aside(cfg.postgresql.data_dir).empty());
}

TEST_F(ReplicaIntegration, SyncPhysicalSlots) {
  auto cfg = member("node-a");
  Postgres pg(cfg, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up_primary(pg, json{{"wal_level", "logical"}}));
  ASSERT_TRUE(pg.execute("SELECT pg_create_physical_replication_slot('unwanted')"));
  ASSERT_TRUE(pg.execute("SELECT pg_create_physical_replication_slot('active_one', true)"));
  ASSERT_TRUE(pg.execute("SELECT pg_create_logical_replication_slot('logical_one', 'test_decoding')"));

  // Hold active_one with a walsender, as a standby would.
  auto lsn = query_one(local(cfg), "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'active_one'");
  ASSERT_TRUE(lsn);
  std::string repl = "host=127.0.0.1 port=" + std::to_string(cfg.postgresql.listen.port) +
                     " user=replicator password='re:pl\\'secret' replication=true dbname=postgres";
  std::unique_ptr<PGconn, void (*)(PGconn*)> walsender(PQconnectdb(repl.c_str()), PQfinish);
  ASSERT_EQ(PQstatus(walsender.get()), CONNECTION_OK) << PQerrorMessage(walsender.get());
  PGresult* started = PQexec(walsender.get(), ("START_REPLICATION SLOT active_one PHYSICAL " + *lsn).c_str());
  ASSERT_EQ(PQresultStatus(started), PGRES_COPY_BOTH) << PQerrorMessage(walsender.get());
  PQclear(started);
  ASSERT_TRUE(test::wait_until(
      [&] {
        return query_one(local(cfg), "SELECT active FROM pg_replication_slots WHERE slot_name = 'active_one'") == "t";
      },
      20s));

  auto st = sync_physical_slots(pg, {"node_a", "node_b"});
  ASSERT_TRUE(st) << st.message();
  auto slots = list_physical_slots(pg);
  ASSERT_TRUE(slots) << slots.status().message();
  EXPECT_EQ(*slots, (std::vector<std::string>{"active_one", "node_a", "node_b"}));
  EXPECT_EQ(query_one(local(cfg), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'logical_one'"), "1");
  EXPECT_EQ(query_one(local(cfg), "SELECT bool_and(restart_lsn IS NOT NULL) FROM pg_replication_slots "
                                  "WHERE slot_name IN ('node_a', 'node_b')"),
            "t")
      << "WAL is reserved at creation";
  EXPECT_TRUE(sync_physical_slots(pg, {"node_a", "node_b"})) << "idempotent";

  // Once the walsender is gone, the unwanted slot goes too.
  walsender.reset();
  ASSERT_TRUE(test::wait_until(
      [&] {
        return query_one(local(cfg), "SELECT active FROM pg_replication_slots WHERE slot_name = 'active_one'") == "f";
      },
      20s));
  st = sync_physical_slots(pg, {"node_b"});
  ASSERT_TRUE(st) << st.message();
  EXPECT_EQ(*list_physical_slots(pg), (std::vector<std::string>{"node_b"}));

  auto bad = sync_physical_slots(pg, {"node_b", "Not-Valid"});
  EXPECT_EQ(bad.code(), Code::kFailed);
  EXPECT_NE(bad.message().find("Not-Valid"), std::string::npos);
  // The state query lists the slots too; given that list, a sync with nothing to change
  // runs no query at all (here: the server is stopped and it still succeeds).
  auto state = pg.query_state();
  ASSERT_TRUE(state) << state.status().message();
  const std::vector<PhysicalSlot> as_listed = {{"node_b", false}};
  EXPECT_EQ(state->physical_slots, as_listed);
  ASSERT_TRUE(pg.stop("fast", 60s));
  EXPECT_EQ(list_physical_slots(pg).status().code(), Code::kUnavailable);
  EXPECT_TRUE(sync_physical_slots(pg, {"node_b"}, &as_listed));
  EXPECT_EQ(sync_physical_slots(pg, {"node_a"}, &as_listed).code(), Code::kUnavailable);
  // The kept connection died with the server; after a start the next call reconnects.
  ASSERT_TRUE(pg.start(60s));
  ASSERT_TRUE(test::wait_until([&] { return pg.is_ready(); }, 30s));
  st = sync_physical_slots(pg, {"node_a"}, &as_listed);
  ASSERT_TRUE(st) << st.message();
  EXPECT_EQ(*list_physical_slots(pg), (std::vector<std::string>{"node_a"}));
}

TEST_F(ReplicaIntegration, RewindDivergedFormerPrimaryAfterCrash) {
  auto acfg = member("node-a");
  auto bcfg = member("node-b");
  Postgres a(acfg, env_), b(bcfg, env_);
  ASSERT_NO_FATAL_FAILURE(primary_and_standby(a, b));

  // Failover to B while A keeps writing: the timelines diverge.
  auto st = b.promote(60s);
  ASSERT_TRUE(st) << st.message();
  ASSERT_TRUE(a.execute("CREATE TABLE diverged AS SELECT generate_series(1, 10000) AS x"));
  ASSERT_TRUE(b.execute("CREATE TABLE on_new_primary AS SELECT 1 AS x"));
  ASSERT_TRUE(sync_physical_slots(b, {"node_a"}));
  // A crash, not a clean stop: rewind has to run crash recovery first.
  ASSERT_TRUE(a.stop("immediate", 60s));
  EXPECT_EQ(control_data_map(acfg, env_)["Database cluster state"], "in production");
  EXPECT_TRUE(can_rewind(acfg, env_));

  st = rewind(acfg, env_, b.connection_url());
  ASSERT_TRUE(st) << st.message();
  EXPECT_EQ(control_data_map(acfg, env_)["Database cluster state"], "in archive recovery") << "as pg_rewind leaves it";

  Postgres a2(acfg, env_);
  ASSERT_NO_FATAL_FAILURE(start_standby(a2, b.connection_url()));
  ASSERT_TRUE(wait_streaming(b, "node-a"));
  auto as = a2.query_state();
  ASSERT_TRUE(as) << as.status().message();
  EXPECT_TRUE(as->in_recovery);
  EXPECT_EQ(as->timeline, 2);
  EXPECT_EQ(query_one(local(acfg), "SELECT count(*) FROM pg_class WHERE relname = 'diverged'"), "0");
  ASSERT_TRUE(test::wait_until(
      [&] { return query_one(local(acfg), "SELECT count(*) FROM pg_class WHERE relname = 'on_new_primary'") == "1"; },
      30s));
}

// The last common checkpoint spans a segment switch (its redo point in one segment, its record
// in the next) and the promoted source has recycled the redo segment: pg_rewind keeps only
// the target's segments from the checkpoint record on and removes the redo segment, which
// then exists nowhere, and the rewound standby would wait for it forever. rewind() puts it
// back from the target's own copy (see rewind_wal.hpp).
TEST_F(ReplicaIntegration, RewindKeepsTheRedoSegmentTheSourceRecycled) {
  auto acfg = member("node-a");
  auto bcfg = member("node-b");
  Postgres a(acfg, env_), b(bcfg, env_);
  // A spread checkpoint of about 3 s (checkpoint_timeout 300 s x 0.01).
  ASSERT_NO_FATAL_FAILURE(primary_and_standby(a, b, {{"checkpoint_completion_target", "0.01"}}));

  // Dirty buffers for the checkpoint to spread, then a non-fast backup start (a spread
  // checkpoint) with a segment switch while it runs.
  // (INSERT, not CREATE TABLE AS, whose bulk-write ring writes its own buffers out.)
  ASSERT_TRUE(a.execute("CREATE TABLE filler (g int, pad text)"));
  ASSERT_TRUE(a.execute("INSERT INTO filler SELECT g, repeat('x', 400) FROM generate_series(1, 12000) g"));
  PGconn* backup = PQconnectdb(local(acfg).c_str());
  ASSERT_EQ(PQstatus(backup), CONNECTION_OK) << PQerrorMessage(backup);
  ASSERT_EQ(PQsendQuery(backup, "SELECT pg_backup_start('spread', false)"), 1);
  std::this_thread::sleep_for(500ms);
  // (The backup start switched segments itself: something must be written before ours can.)
  ASSERT_TRUE(a.execute("CREATE TABLE before_switch AS SELECT 1 AS x"));
  ASSERT_TRUE(a.execute("SELECT pg_switch_wal()"));
  ASSERT_TRUE(a.execute("CREATE TABLE after_switch AS SELECT 1 AS x"));
  while (PGresult* r = PQgetResult(backup)) PQclear(r);
  PGresult* stop = PQexec(backup, "SELECT lsn FROM pg_backup_stop(false)");
  EXPECT_EQ(PQresultStatus(stop), PGRES_TUPLES_OK) << PQerrorMessage(backup);
  PQclear(stop);
  PQfinish(backup);
  const auto redo_file = query_one(local(acfg), "SELECT redo_wal_file FROM pg_control_checkpoint()");
  const auto record_file = query_one(local(acfg), "SELECT pg_walfile_name(checkpoint_lsn) FROM pg_control_checkpoint()");
  ASSERT_TRUE(redo_file && record_file);
  ASSERT_NE(*redo_file, *record_file) << "the checkpoint ended before the switch: no spanning checkpoint to test";
  ASSERT_TRUE(wait_streaming(a, "node-b"));
  ASSERT_TRUE(test::wait_until(
      [&] {
        return query_one(local(bcfg), "SELECT count(*) FROM pg_class WHERE relname = 'after_switch'") == "1";
      },
      30s));

  // Failover to B, which makes A's slot at once, as the HA loop does: it keeps B's WAL from the
  // promotion on, not the older redo segment, which B's checkpoint then recycles.
  auto st = b.promote(60s);
  ASSERT_TRUE(st) << st.message();
  ASSERT_TRUE(sync_physical_slots(b, {"node_a"}));
  ASSERT_TRUE(a.execute("CREATE TABLE diverged AS SELECT 1 AS x"));
  ASSERT_TRUE(b.execute("SELECT pg_switch_wal()"));
  ASSERT_TRUE(b.execute("CREATE TABLE on_new_primary AS SELECT 1 AS x"));
  ASSERT_TRUE(b.execute("CHECKPOINT"));
  EXPECT_EQ(query_one(local(bcfg), "SELECT count(*) FROM pg_ls_waldir() WHERE name = '" + *redo_file + "'"), "0")
      << "the source still has the redo segment: the case is not reproduced";
  ASSERT_TRUE(a.stop("immediate", 60s));

  st = rewind(acfg, env_, b.connection_url());
  ASSERT_TRUE(st) << st.message();
  EXPECT_TRUE(fs::exists(acfg.postgresql.data_dir + "/pg_wal/" + *redo_file)) << "the redo segment was not put back";
  Postgres a2(acfg, env_);
  ASSERT_NO_FATAL_FAILURE(start_standby(a2, b.connection_url()));
  ASSERT_TRUE(wait_streaming(b, "node-a"));
  EXPECT_EQ(query_one(local(acfg), "SELECT count(*) FROM pg_class WHERE relname = 'diverged'"), "0");
}

// The former primary ran on after the timelines diverged and its checkpoints recycled the
// WAL from the last common checkpoint: pg_rewind cannot read it in pg_wal. With the archive's
// restore_command in the configuration, rewind(..., restore_target_wal) lets pg_rewind fetch
// it (--restore-target-wal), as Patroni does when a restore_command is set.
TEST_F(ReplicaIntegration, RewindFetchesRecycledTargetWalFromTheArchive) {
  const std::string archive = dir_.file("archive");
  fs::create_directory(archive);
  const json archiving{{"archive_mode", "on"},
                       {"archive_command", "cp %p " + archive + "/%f"},
                       {"restore_command", "cp " + archive + "/%f %p"}};
  auto acfg = member("node-a");
  auto bcfg = member("node-b");
  Postgres a(acfg, env_), b(bcfg, env_);
  ASSERT_NO_FATAL_FAILURE(primary_and_standby(a, b, archiving));
  ASSERT_TRUE(a.execute("CREATE TABLE before_failover AS SELECT 1 AS x"));
  ASSERT_TRUE(wait_streaming(a, "node-b"));
  const auto common = query_one(local(acfg), "SELECT pg_walfile_name(checkpoint_lsn) FROM pg_control_checkpoint()");
  ASSERT_TRUE(common);

  auto st = b.promote(60s);
  ASSERT_TRUE(st) << st.message();
  ASSERT_TRUE(sync_physical_slots(b, {"node_a"}));
  ASSERT_TRUE(b.execute("CREATE TABLE on_new_primary AS SELECT 1 AS x"));
  // A goes on alone (no slot keeps its WAL) and archives and recycles its old segments.
  ASSERT_TRUE(a.execute("SELECT pg_drop_replication_slot('node_b')"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a.execute("CREATE TABLE diverged_" + std::to_string(i) + " AS SELECT 1 AS x"));
    auto seg = query_one(local(acfg), "SELECT pg_walfile_name(pg_current_wal_lsn())");
    ASSERT_TRUE(seg);
    ASSERT_TRUE(a.execute("SELECT pg_switch_wal()"));
    ASSERT_TRUE(test::wait_until([&] { return fs::exists(archive + "/" + *seg); }, 30s)) << *seg << " not archived";
    ASSERT_TRUE(a.execute("CHECKPOINT"));
  }
  EXPECT_EQ(query_one(local(acfg), "SELECT count(*) FROM pg_ls_waldir() WHERE name = '" + *common + "'"), "0")
      << "the old primary still has the last common checkpoint's segment: the case is not reproduced";
  ASSERT_TRUE(a.stop("immediate", 60s));

  st = rewind(acfg, env_, b.connection_url());
  EXPECT_FALSE(st) << "pg_rewind found the WAL without the archive";
  st = rewind(acfg, env_, b.connection_url(), /*restore_target_wal=*/true);
  ASSERT_TRUE(st) << st.message();
  Postgres a2(acfg, env_);
  ASSERT_NO_FATAL_FAILURE(start_standby(a2, b.connection_url()));
  ASSERT_TRUE(wait_streaming(b, "node-a"));
  EXPECT_EQ(query_one(local(acfg), "SELECT count(*) FROM pg_class WHERE relname LIKE 'diverged%'"), "0");
}

TEST_F(ReplicaIntegration, RewindRefusesRunningOrUnrewindableClusters) {
  auto acfg = member("node-a");
  acfg.bootstrap.initdb = json::array({{{"encoding", "UTF8"}}});  // no checksums
  Postgres a(acfg, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up_primary(a, json{{"wal_log_hints", "off"}}));
  EXPECT_EQ(rewind(acfg, env_, "postgres://127.0.0.1:1/postgres").code(), Code::kConflict);
  ASSERT_TRUE(a.stop("fast", 60s));
  EXPECT_FALSE(can_rewind(acfg, env_));
  EXPECT_EQ(rewind(acfg, env_, "postgres://127.0.0.1:1/postgres").code(), Code::kInvalid);
}

}  // namespace
}  // namespace pgwarden::postgres
