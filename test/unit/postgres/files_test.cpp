// Filesystem behaviour that needs no running PostgreSQL: configuration files, pgpass,
// moving a data directory aside, stale postmaster.pid detection, connection strings.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "pgwarden/postgres/postgres.hpp"
#include "support/harness.hpp"

namespace pgwarden::postgres {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pgwarden::test::TempDir;

config::Config make_config(const TempDir& dir) {
  config::Config cfg;
  cfg.scope = "demo";
  cfg.postgresql.data_dir = dir.file("data");
  cfg.postgresql.pgpass = dir.file("pgpass");
  cfg.postgresql.listen = {"127.0.0.1", 6543};
  cfg.postgresql.listen_addresses = {"127.0.0.1"};
  cfg.postgresql.connect_address = "10.1.2.3:6543";
  return cfg;
}

int file_mode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

TEST(PostgresFiles, WriteConfigurationRenamesInitdbConfOnce) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  fs::create_directories(cfg.postgresql.data_dir);
  test::write_file(cfg.postgresql.data_dir + "/postgresql.conf", "# from initdb\nshared_buffers = 128MB\n");
  Postgres pg(cfg, {});
  ASSERT_TRUE(pg.write_configuration(json{{"work_mem", "8MB"}, {"port", 1}}, {"local all all trust"}));
  std::string dd = cfg.postgresql.data_dir;
  EXPECT_EQ(test::read_file(dd + "/postgresql.base.conf"), "# from initdb\nshared_buffers = 128MB\n");
  std::string conf = test::read_file(dd + "/postgresql.conf");
  EXPECT_NE(conf.find("include 'postgresql.base.conf'\n"), std::string::npos);
  EXPECT_NE(conf.find("work_mem = '8MB'\n"), std::string::npos);
  // Command-line options are written with their command-line values (postgresql.listen wins).
  EXPECT_EQ(conf.find("port = '1'"), std::string::npos);
  EXPECT_NE(conf.find("port = '" + std::to_string(cfg.postgresql.listen.port) + "'\n"), std::string::npos) << conf;
  EXPECT_NE(conf.find("hba_file = '" + dd + "/pg_hba.conf'"), std::string::npos);
  EXPECT_EQ(file_mode(dd + "/postgresql.conf"), 0600);
  EXPECT_NE(test::read_file(dd + "/pg_hba.conf").find("local all all trust\n"), std::string::npos);

  // Second write must not clobber the base file with our own postgresql.conf.
  ASSERT_TRUE(pg.write_configuration(json{{"work_mem", "16MB"}}, {}));
  EXPECT_EQ(test::read_file(dd + "/postgresql.base.conf"), "# from initdb\nshared_buffers = 128MB\n");
  EXPECT_NE(test::read_file(dd + "/postgresql.conf").find("work_mem = '16MB'"), std::string::npos);
  // Empty pg_hba list leaves the file as it was.
  EXPECT_NE(test::read_file(dd + "/pg_hba.conf").find("local all all trust\n"), std::string::npos);
  EXPECT_EQ(pg.current_parameters(), (json{{"work_mem", "16MB"}}));
  EXPECT_FALSE(fs::exists(dd + "/postgresql.conf.pgwarden.tmp"));
}

TEST(PostgresFiles, CustomConfIsIncludedAndNothingRenamed) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  cfg.postgresql.custom_conf = "/etc/my.conf";
  fs::create_directories(cfg.postgresql.data_dir);
  test::write_file(cfg.postgresql.data_dir + "/postgresql.conf", "# initdb\n");
  Postgres pg(cfg, {});
  ASSERT_TRUE(pg.write_configuration(json::object(), {}));
  EXPECT_FALSE(fs::exists(cfg.postgresql.data_dir + "/postgresql.base.conf"));
  EXPECT_NE(test::read_file(cfg.postgresql.data_dir + "/postgresql.conf").find("include '/etc/my.conf'"),
            std::string::npos);
}

TEST(PostgresFiles, PgpassIsPrivate) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  cfg.postgresql.superuser.password = "s3cr:t";
  cfg.postgresql.replication = {"standby", "rep", {}};
  Postgres pg(cfg, {});
  ASSERT_TRUE(pg.write_pgpass());
  EXPECT_EQ(file_mode(cfg.postgresql.pgpass), 0600);
  EXPECT_EQ(test::read_file(cfg.postgresql.pgpass), "*:*:*:postgres:s3cr\\:t\n*:*:*:standby:rep\n");
}

TEST(PostgresFiles, MoveDataDirectoryAside) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  Postgres pg(cfg, {});
  EXPECT_EQ(pg.move_data_directory_aside().status().code(), Code::kNotFound);
  fs::create_directories(cfg.postgresql.data_dir);
  test::write_file(cfg.postgresql.data_dir + "/PG_VERSION", "15\n");
  EXPECT_TRUE(pg.is_initialized());
  auto moved = pg.move_data_directory_aside();
  ASSERT_TRUE(moved) << moved.status().message();
  EXPECT_EQ(moved->rfind(cfg.postgresql.data_dir + ".failed_", 0), 0u) << *moved;
  EXPECT_EQ(moved->size(), cfg.postgresql.data_dir.size() + 8 + 19);
  EXPECT_TRUE(fs::exists(*moved + "/PG_VERSION"));
  EXPECT_FALSE(pg.data_directory_exists());
  EXPECT_TRUE(pg.data_directory_empty());
  // A second failure in the same second gets its own name.
  fs::create_directories(cfg.postgresql.data_dir);
  auto again = pg.move_data_directory_aside();
  ASSERT_TRUE(again);
  EXPECT_NE(*again, *moved);
}

TEST(PostgresFiles, StalePidFileIsNotARunningPostmaster) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  fs::create_directories(cfg.postgresql.data_dir);
  Postgres pg(cfg, {});
  EXPECT_FALSE(pg.postmaster_pid());
  // Our own pid (a restarted container often reuses it) and a pid that is surely dead.
  test::write_file(cfg.postgresql.data_dir + "/postmaster.pid", std::to_string(getpid()) + "\n" +
                                                                   cfg.postgresql.data_dir + "\n");
  EXPECT_FALSE(pg.postmaster_pid());
  test::write_file(cfg.postgresql.data_dir + "/postmaster.pid", "4194000\n" + cfg.postgresql.data_dir + "\n");
  EXPECT_FALSE(pg.postmaster_pid());
  // pid 1 is alive but is not a postgres binary here.
  test::write_file(cfg.postgresql.data_dir + "/postmaster.pid", "1\n" + cfg.postgresql.data_dir + "\n");
  EXPECT_FALSE(pg.postmaster_pid());
  test::write_file(cfg.postgresql.data_dir + "/postmaster.pid", "garbage\n");
  EXPECT_FALSE(pg.is_running());
}

TEST(PostgresFiles, ConnectionStrings) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  Postgres tcp(cfg, {});
  EXPECT_EQ(tcp.superuser_dsn(), "dbname=postgres user=postgres host=127.0.0.1 port=6543");
  EXPECT_EQ(tcp.connection_url(), "postgres://10.1.2.3:6543/postgres");

  cfg.postgresql.use_unix_socket = true;
  cfg.postgresql.parameters = json{{"unix_socket_directories", "@abstract, /var/run/postgresql,/tmp"}};
  Postgres sock(cfg, {});
  EXPECT_EQ(sock.local_host(), "/var/run/postgresql");
  EXPECT_EQ(sock.superuser_dsn(), "dbname=postgres user=postgres host=/var/run/postgresql port=6543");

  cfg.postgresql.use_unix_socket = false;
  cfg.postgresql.listen = {"0.0.0.0", 5432};
  cfg.postgresql.listen_addresses = {"0.0.0.0"};
  cfg.postgresql.connect_address = "";
  Postgres any(cfg, {});
  EXPECT_EQ(any.local_host(), "127.0.0.1");
  EXPECT_EQ(any.connection_url(), "postgres://0.0.0.0:5432/postgres");
}

TEST(PostgresFiles, PostInitMissingIsOk) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  Postgres pg(cfg, util::current_environment());
  EXPECT_TRUE(pg.run_post_init(std::chrono::seconds(5)));
}

TEST(PostgresFiles, PostInitGetsDsnAndEnvAndReportsExitCode) {
  TempDir dir("pgw-unit-pg");
  auto cfg = make_config(dir);
  std::string out = dir.file("out");
  test::write_file(dir.file("post_init.sh"),
                   "#!/bin/sh\necho \"$1|$PGPASSFILE|$PGOPTIONS\" > " + out + "\necho boom; exit 3\n", 0755);
  cfg.bootstrap.post_init = dir.file("post_init.sh");
  Postgres pg(cfg, util::current_environment());
  auto st = pg.run_post_init(std::chrono::seconds(10));
  EXPECT_EQ(st.code(), Code::kFailed);
  EXPECT_NE(st.message().find("exited with code 3"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("boom"), std::string::npos) << st.message();
  EXPECT_EQ(test::read_file(out), "dbname=postgres user=postgres host=127.0.0.1 port=6543|" + cfg.postgresql.pgpass +
                                      "|-c synchronous_commit=local\n");
}

}  // namespace
}  // namespace pgwarden::postgres
