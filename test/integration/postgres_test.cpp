// postgres::Postgres against a real PostgreSQL 15 (no DCS): initdb, configuration files,
// start/stop, the state query, roles, post_init, moving a data directory aside.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "pgwarden/postgres/postgres.hpp"
#include "support/harness.hpp"

namespace pgwarden::postgres {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

// First column of the first row, or nullopt when the connection or query fails.
std::optional<std::string> query_one(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  std::optional<std::string> out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    auto st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) out = "";
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

bool can_connect(const std::string& conninfo) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  bool ok = PQstatus(c) == CONNECTION_OK;
  PQfinish(c);
  return ok;
}

class PostgresIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = test::free_port();
    cfg_.scope = "pgw-it";
    cfg_.name = "node1";
    cfg_.postgresql.data_dir = dir_.file("data");
    cfg_.postgresql.pgpass = dir_.file("pgpass");  // HOME is not writable as `postgres`
    cfg_.postgresql.bin_dir = test::pg_bin_dir();
    cfg_.postgresql.listen = {"127.0.0.1", port_};
    cfg_.postgresql.listen_addresses = {"127.0.0.1"};
    cfg_.postgresql.connect_address = "127.0.0.1:" + std::to_string(port_);
    cfg_.postgresql.use_unix_socket = true;
    cfg_.postgresql.superuser = {"postgres", "su-secret", {}};
    cfg_.postgresql.replication = {"replicator", "re:pl'secret", {}};
    cfg_.postgresql.parameters = json{{"unix_socket_directories", dir_.path()}};
    cfg_.bootstrap.initdb = json::array({"data-checksums", {{"encoding", "UTF8"}}});
    cfg_.bootstrap.users = {{"admin", "admin-secret", {"createrole", "createdb"}}};
    env_ = util::current_environment();
  }

  // Runs even when an assertion failed half-way: never leave a postmaster behind.
  void TearDown() override {
    for (const auto& dd : {cfg_.postgresql.data_dir, moved_}) {
      if (dd.empty() || !fs::exists(dd + "/postmaster.pid")) continue;
      (void)util::run({{test::pg_bin_dir() + "/pg_ctl", "stop", "-D", dd, "-m", "immediate", "-w", "-t", "30"},
                       env_,
                       std::nullopt},
                      40s);
    }
  }

  json parameters() const {
    return json{{"unix_socket_directories", dir_.path()},
                {"shared_buffers", "16MB"},
                {"max_connections", 30},  // a command-line option: must reach the postmaster
                {"log_line_prefix", "%t [%p]: [%c-%l] %u@%d,app=%a [%e] "}};
  }

  std::vector<std::string> hba() const {
    return {"local all all trust", "host all all 127.0.0.1/32 md5", "host replication all 127.0.0.1/32 md5"};
  }

  // initdb + configuration + pgpass + start.
  void bring_up(Postgres& pg) {
    auto st = pg.initdb();
    ASSERT_TRUE(st) << st.message();
    st = pg.write_configuration(parameters(), hba());
    ASSERT_TRUE(st) << st.message();
    st = pg.write_pgpass();
    ASSERT_TRUE(st) << st.message();
    st = pg.start(60s);
    ASSERT_TRUE(st) << st.message();
  }

  std::string tcp(const std::string& user, const std::string& password, const std::string& extra = "") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres connect_timeout=3 user=" + user +
           " password='" + password + "'" + extra;
  }

  test::TempDir dir_{"pgw-pg-it"};
  int port_ = 0;
  config::Config cfg_;
  util::Environment env_;
  std::string moved_;
};

TEST_F(PostgresIntegration, LifecycleFromInitdbToStop) {
  Postgres pg(cfg_, env_);
  EXPECT_TRUE(pg.data_directory_empty());
  EXPECT_FALSE(pg.is_running());
  EXPECT_EQ(pg.query_state().status().code(), Code::kUnavailable);
  ASSERT_NO_FATAL_FAILURE(bring_up(pg));

  const std::string dd = cfg_.postgresql.data_dir;
  EXPECT_TRUE(pg.is_initialized());
  EXPECT_TRUE(fs::exists(dd + "/postgresql.base.conf"));
  // As Patroni: the command-line options are in postgresql.conf too, with the same values, so
  // that a reload never sees initdb's max_connections from postgresql.base.conf.
  EXPECT_NE(test::read_file(dd + "/postgresql.conf").find("max_connections"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(stat(cfg_.postgresql.pgpass.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(dd + "/postmaster.log"));  // the log lives next to PGDATA
  EXPECT_TRUE(fs::exists(pg.log_file()));

  auto pid = pg.postmaster_pid();
  ASSERT_TRUE(pid);
  EXPECT_TRUE(pg.is_ready());

  auto state = pg.query_state();
  ASSERT_TRUE(state) << state.status().message();
  EXPECT_FALSE(state->in_recovery);
  EXPECT_EQ(state->timeline, 1);
  EXPECT_GT(state->wal_position, 0);
  EXPECT_GE(state->server_version, 150000);
  EXPECT_EQ(nlohmann::json::parse(state->replication_json), nlohmann::json::array());
  EXPECT_FALSE(state->replay_paused);
  EXPECT_FALSE(state->replayed_timestamp);
  EXPECT_FALSE(state->pending_restart);
  EXPECT_TRUE(std::regex_match(state->postmaster_start_time,
                               std::regex(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00)")))
      << state->postmaster_start_time;
  EXPECT_FALSE(state->system_identifier.empty());
  EXPECT_EQ(state->system_identifier, pg.system_identifier());

  // Command-line options reached the postmaster; file parameters were loaded.
  std::string local = "host=" + dir_.path() + " port=" + std::to_string(port_) + " dbname=postgres user=postgres";
  EXPECT_EQ(query_one(local, "SHOW max_connections"), "30");
  EXPECT_EQ(query_one(local, "SHOW cluster_name"), "pgw-it");
  EXPECT_EQ(query_one(local, "SHOW wal_log_hints"), "on");
  EXPECT_EQ(query_one(local, "SHOW shared_buffers"), "16MB");
  EXPECT_EQ(query_one(local, "SHOW data_checksums"), "on");

  // Roles: passwords work over TCP with md5, the replication user can replicate.
  EXPECT_FALSE(can_connect(tcp("replicator", "re:pl\\'secret")));
  auto created = pg.create_users();
  ASSERT_TRUE(created) << created.message();
  EXPECT_TRUE(can_connect(tcp("replicator", "re:pl\\'secret")));
  EXPECT_TRUE(can_connect(tcp("replicator", "re:pl\\'secret", " replication=true")));
  EXPECT_FALSE(can_connect(tcp("replicator", "wrong")));
  EXPECT_TRUE(can_connect(tcp("postgres", "su-secret")));
  EXPECT_TRUE(can_connect(tcp("admin", "admin-secret")));
  EXPECT_EQ(query_one(local, "SELECT rolcreaterole AND rolcreatedb AND NOT rolsuper FROM pg_roles WHERE "
                             "rolname = 'admin'"),
            "t");
  EXPECT_EQ(query_one(local, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'"), "t");
  EXPECT_TRUE(pg.create_users()) << "second run alters the existing roles";

  // execute() reports SQL errors as values.
  EXPECT_TRUE(pg.execute("CREATE TABLE t_exec(x int)"));
  EXPECT_EQ(pg.execute("SELECT * FROM no_such_table").code(), Code::kFailed);

  // post_init gets a working dsn (socket dir, PGPASSFILE) as its argument.
  test::write_file(dir_.file("post_init_ok.sh"),
                   "#!/bin/sh\nexec " + test::pg_bin_dir() + "/psql -X -q \"$1\" -c 'CREATE TABLE post_init_ran()'\n",
                   0755);
  cfg_.bootstrap.post_init = dir_.file("post_init_ok.sh");
  pg.set_config(cfg_);
  auto post = pg.run_post_init(30s);
  EXPECT_TRUE(post) << post.message();
  EXPECT_EQ(query_one(local, "SELECT count(*) FROM pg_class WHERE relname = 'post_init_ran'"), "1");

  // A second start must not touch the running postmaster.
  auto again = pg.start(10s);
  EXPECT_EQ(again.code(), Code::kConflict) << again.message();
  EXPECT_EQ(pg.postmaster_pid(), pid);
  EXPECT_TRUE(pg.is_ready());

  EXPECT_TRUE(pg.reload());
  auto stopped = pg.stop("fast", 60s);
  ASSERT_TRUE(stopped) << stopped.message();
  EXPECT_FALSE(pg.is_running());
  EXPECT_FALSE(pg.is_ready());
  EXPECT_TRUE(pg.stop("fast", 10s)) << "stopping a stopped server is fine";
  EXPECT_EQ(pg.reload().code(), Code::kUnavailable);
  EXPECT_EQ(pg.query_state().status().code(), Code::kUnavailable);
  EXPECT_EQ(pg.stop("sideways", 10s).code(), Code::kInvalid);
}

TEST_F(PostgresIntegration, StalePidFileDoesNotBlockStart) {
  Postgres pg(cfg_, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up(pg));
  ASSERT_TRUE(pg.stop("immediate", 30s));
  // What a crash or container restart leaves: a pid file whose pid is gone.
  test::write_file(cfg_.postgresql.data_dir + "/postmaster.pid", "4194000\n" + cfg_.postgresql.data_dir + "\n", 0600);
  EXPECT_FALSE(pg.is_running());
  auto st = pg.start(60s);
  ASSERT_TRUE(st) << st.message();
  EXPECT_TRUE(pg.is_running());
  auto state = pg.query_state();
  ASSERT_TRUE(state) << state.status().message();
  EXPECT_FALSE(state->in_recovery);
  ASSERT_TRUE(pg.stop("fast", 60s));
}

// postmaster_pid() proves a postmaster once and then holds it by a pidfd; a copy of the
// Postgres shares what was proved. When that process dies, its postmaster.pid stays behind
// (as after a crash) and the next call must say so, not trust what it knew.
TEST_F(PostgresIntegration, AProvedPostmasterIsForgottenWhenItDies) {
  Postgres pg(cfg_, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up(pg));
  auto pid = pg.postmaster_pid();
  ASSERT_TRUE(pid);
  EXPECT_EQ(pg.postmaster_pid(), pid);
  Postgres copy = pg;
  EXPECT_EQ(copy.postmaster_pid(), pid);
  // The proof stands only while its postmaster.pid does: moved away, nothing runs there (as
  // Patroni reads it); put back as a new file with the same content, it is proved again.
  const std::string pid_file = cfg_.postgresql.data_dir + "/postmaster.pid";
  fs::rename(pid_file, pid_file + ".aside");
  EXPECT_FALSE(pg.postmaster_pid());
  EXPECT_FALSE(copy.is_running());
  fs::copy_file(pid_file + ".aside", pid_file);
  fs::remove(pid_file + ".aside");
  EXPECT_EQ(pg.postmaster_pid(), pid);
  EXPECT_EQ(copy.postmaster_pid(), pid);
  ASSERT_EQ(::kill(*pid, SIGKILL), 0);
  EXPECT_TRUE(test::wait_until([&] { return !pg.postmaster_pid(); }, 10s));
  EXPECT_FALSE(copy.is_running());
  EXPECT_TRUE(fs::exists(cfg_.postgresql.data_dir + "/postmaster.pid")) << "the crash left its pid file";
  // A new postmaster (once the old one's backends are gone) is proved afresh.
  ASSERT_TRUE(test::wait_until([&] { return pg.start(30s).ok(); }, 60s));
  auto next = pg.postmaster_pid();
  ASSERT_TRUE(next);
  EXPECT_NE(*next, *pid);
  EXPECT_EQ(copy.postmaster_pid(), next);
  ASSERT_TRUE(pg.stop("fast", 60s));
}

// The state query sent before the HA loop's sleep: its answer stands for a fresh one only
// within the window the caller gives; without one (or once it is too old) the answer is
// dropped and the server asked again; a server restarted meanwhile is asked on a new
// connection. The WAL position tells which answer came back: a write in between moves it.
TEST_F(PostgresIntegration, AStateQuerySentAheadStandsOnlyWithinItsWindow) {
  Postgres pg(cfg_, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up(pg));
  auto write = [&] { return pg.execute("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t VALUES (1)"); };
  ASSERT_TRUE(pg.is_running());    // proves the postmaster the queries go to
  auto first = pg.query_state();  // opens the kept connection
  ASSERT_TRUE(first) << first.status().message();
  // The query sent ahead has run before the write that follows it.
  auto settle = [] { std::this_thread::sleep_for(200ms); };

  pg.send_state_query();
  pg.send_state_query();  // one is out already: nothing more is sent
  settle();
  ASSERT_TRUE(write());
  auto ahead = pg.query_state(2s);
  ASSERT_TRUE(ahead) << ahead.status().message();
  auto now = pg.query_state();
  ASSERT_TRUE(now) << now.status().message();
  EXPECT_LT(ahead->wal_position, now->wal_position) << "the answer sent ahead was taken";

  pg.send_state_query();
  settle();
  ASSERT_TRUE(write());
  auto fresh = pg.query_state();
  ASSERT_TRUE(fresh) << fresh.status().message();
  EXPECT_GT(fresh->wal_position, now->wal_position) << "no window: asked afresh";

  pg.send_state_query();
  settle();
  ASSERT_TRUE(write());
  std::this_thread::sleep_for(300ms);
  auto late = pg.query_state(100ms);
  ASSERT_TRUE(late) << late.status().message();
  EXPECT_GT(late->wal_position, fresh->wal_position) << "older than the window: asked afresh";

  // The kept connection's other users find it free.
  pg.send_state_query();
  EXPECT_TRUE(pg.with_kept_connection([](pg_conn* c) {
    PGresult* r = PQexec(c, "SELECT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok ? Status::Ok() : Status::Failed("SELECT 1 failed on the kept connection");
  }));

  // Answered by a server that then restarts: that answer, though in the socket, is not
  // taken for the new server's (its start time tells), which is asked on a new connection.
  pg.send_state_query();
  settle();
  ASSERT_TRUE(pg.stop("fast", 60s));
  ASSERT_TRUE(pg.start(60s));
  ASSERT_TRUE(pg.is_running());
  auto after_restart = pg.query_state(10s);
  ASSERT_TRUE(after_restart) << after_restart.status().message();
  EXPECT_NE(after_restart->postmaster_start_time, late->postmaster_start_time);
  ASSERT_TRUE(pg.stop("fast", 60s));
}

TEST_F(PostgresIntegration, FailingPostInitAndMovingTheDataDirectoryAside) {
  test::write_file(dir_.file("post_init_bad.sh"), "#!/bin/sh\necho \"cannot do it\" >&2\nexit 7\n", 0755);
  cfg_.bootstrap.post_init = dir_.file("post_init_bad.sh") + " --flag";
  Postgres pg(cfg_, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up(pg));
  auto st = pg.run_post_init(30s);
  EXPECT_EQ(st.code(), Code::kFailed);
  EXPECT_NE(st.message().find("exited with code 7"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cannot do it"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("su-secret"), std::string::npos);

  // What bootstrap does after a failed post_init: stop immediately, keep the data for a human.
  ASSERT_TRUE(pg.stop("immediate", 30s));
  auto moved = pg.move_data_directory_aside();
  ASSERT_TRUE(moved) << moved.status().message();
  moved_ = *moved;
  EXPECT_TRUE(std::regex_match(*moved, std::regex(".*/data\\.failed_\\d{4}-\\d\\d-\\d\\d-\\d\\d-\\d\\d-\\d\\d")))
      << *moved;
  EXPECT_TRUE(fs::exists(*moved + "/PG_VERSION"));
  EXPECT_FALSE(pg.data_directory_exists());
  EXPECT_TRUE(pg.data_directory_empty());
  EXPECT_FALSE(pg.is_initialized());
}

TEST_F(PostgresIntegration, ReplicaStateAndPrimaryReplicationRows) {
  Postgres primary(cfg_, env_);
  ASSERT_NO_FATAL_FAILURE(bring_up(primary));
  ASSERT_TRUE(primary.create_users());

  // Clone with the pgpass pgwarden wrote (its escaped ':' and '\'' must work for libpq).
  config::Config rcfg = cfg_;
  int rport = test::free_port();
  rcfg.postgresql.data_dir = dir_.file("replica");
  rcfg.postgresql.listen = {"127.0.0.1", rport};
  rcfg.postgresql.connect_address = "127.0.0.1:" + std::to_string(rport);
  moved_ = rcfg.postgresql.data_dir;  // TearDown stops it too
  util::Environment env = env_;
  env["PGPASSFILE"] = cfg_.postgresql.pgpass;
  auto bb = util::run({{test::pg_bin_dir() + "/pg_basebackup", "-D", rcfg.postgresql.data_dir, "-h", "127.0.0.1",
                        "-p", std::to_string(port_), "-U", "replicator", "-R", "-X", "stream", "-w"},
                       env,
                       std::nullopt},
                      120s);
  ASSERT_TRUE(bb);
  ASSERT_EQ(bb->exit_code, 0) << bb->output;

  Postgres replica(rcfg, env_);
  auto st = replica.write_configuration(parameters(), hba());
  ASSERT_TRUE(st) << st.message();
  st = replica.start(60s);
  ASSERT_TRUE(st) << st.message();
  ASSERT_TRUE(primary.execute("CREATE TABLE more_wal AS SELECT generate_series(1, 1000) AS x"));

  ASSERT_TRUE(test::wait_until(
      [&] {
        auto s = replica.query_state();
        return s && s->received_location > 0;
      },
      30s));
  auto rs = replica.query_state();
  ASSERT_TRUE(rs) << rs.status().message();
  EXPECT_TRUE(rs->in_recovery);
  EXPECT_EQ(rs->timeline, 1);
  EXPECT_GT(rs->replayed_location, 0);
  EXPECT_EQ(rs->wal_position, std::max(rs->received_location, rs->replayed_location));
  EXPECT_FALSE(rs->replay_paused);
  EXPECT_EQ(rs->system_identifier, primary.query_state()->system_identifier);

  ASSERT_TRUE(test::wait_until(
      [&] {
        auto s = primary.query_state();
        if (!s) return false;
        auto rows = nlohmann::json::parse(s->replication_json, nullptr, false);
        return rows.is_array() && rows.size() == 1 && rows[0].value("state", "") == "streaming";
      },
      30s));
  auto ps = primary.query_state();
  ASSERT_TRUE(ps);
  const auto row = nlohmann::json::parse(ps->replication_json).at(0);
  EXPECT_EQ(row.value("usename", ""), "replicator");
  EXPECT_EQ(row.value("client_addr", ""), "127.0.0.1");
  EXPECT_EQ(row.value("sync_state", ""), "async");
  EXPECT_TRUE(row.contains("application_name"));
  EXPECT_TRUE(row.contains("sync_priority"));

  // Promotion: the replica leaves recovery on a new timeline.
  st = replica.promote(60s);
  ASSERT_TRUE(st) << st.message();
  auto promoted = replica.query_state();
  ASSERT_TRUE(promoted) << promoted.status().message();
  EXPECT_FALSE(promoted->in_recovery);
  EXPECT_EQ(promoted->timeline, 2);
  EXPECT_TRUE(replica.stop("fast", 60s));
  EXPECT_TRUE(primary.stop("fast", 60s));
}

TEST_F(PostgresIntegration, InitdbFailureCarriesItsOutput) {
  cfg_.bootstrap.initdb = json::array({{{"encoding", "NO_SUCH_ENCODING"}}});
  Postgres pg(cfg_, env_);
  auto st = pg.initdb();
  EXPECT_EQ(st.code(), Code::kFailed);
  EXPECT_NE(st.message().find("NO_SUCH_ENCODING"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace pgwarden::postgres
