#include <gtest/gtest.h>

#include "pgwarden/postgres/replica.hpp"
#include "pgwarden/postgres/rewind.hpp"

namespace pgwarden::postgres {
namespace {

using nlohmann::json;
using Argv = std::vector<std::string>;

config::Config base_config() {
  config::Config cfg;
  cfg.scope = "demo";
  cfg.name = "node-2";
  cfg.postgresql.data_dir = "/var/lib/postgresql/data";
  cfg.postgresql.bin_dir = "/usr/lib/postgresql/15/bin";
  cfg.postgresql.pgpass = "/tmp/pgpass";
  cfg.postgresql.replication = {"standby", "secret", {}};
  cfg.postgresql.superuser = {"postgres", "su", {}};
  return cfg;
}

TEST(ConnUrl, HostPortDatabase) {
  auto u = parse_conn_url("postgres://10.0.0.5:5433/postgres");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, 5433);
  EXPECT_EQ(u->dbname, "postgres");
}

TEST(ConnUrl, MissingPortAndDatabase) {
  auto u = parse_conn_url("postgres://db.example.com");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "db.example.com");
  EXPECT_EQ(u->port, 5432);
  EXPECT_EQ(u->dbname, "postgres");
  u = parse_conn_url("postgresql://h/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 5432);
  EXPECT_EQ(u->dbname, "postgres");
}

TEST(ConnUrl, Ipv6AndUserInfo) {
  auto u = parse_conn_url("postgres://[::1]:6000/mydb");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 6000);
  EXPECT_EQ(u->dbname, "mydb");
  u = parse_conn_url("postgres://[fe80::1]/postgres");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "fe80::1");
  EXPECT_EQ(u->port, 5432);
  u = parse_conn_url("postgres://user:pw@host:7000/postgres?sslmode=require");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "host");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->dbname, "postgres");
}

TEST(ConnUrl, Rejects) {
  EXPECT_FALSE(parse_conn_url(""));
  EXPECT_FALSE(parse_conn_url("http://h:5432/postgres"));
  EXPECT_FALSE(parse_conn_url("postgres://:5432/postgres"));
  EXPECT_FALSE(parse_conn_url("postgres://h:port/postgres"));
  EXPECT_FALSE(parse_conn_url("postgres://h:99999/postgres"));
  EXPECT_FALSE(parse_conn_url("postgres://[::1/postgres"));
}

TEST(ReplicaConninfo, KeywordForm) {
  auto cfg = base_config();
  EXPECT_EQ(replica_conninfo(cfg, "postgres://10.0.0.5:5432/postgres"),
            "host=10.0.0.5 port=5432 user=standby dbname=postgres application_name=node-2 sslmode=prefer "
            "passfile=/tmp/pgpass");
  EXPECT_EQ(replica_conninfo(cfg, "postgres://[::1]/postgres"),
            "host=::1 port=5432 user=standby dbname=postgres application_name=node-2 sslmode=prefer "
            "passfile=/tmp/pgpass");
  cfg.postgresql.pgpass.clear();
  cfg.postgresql.replication.extra = {{"sslmode", "require"}, {"sslrootcert", "/etc/ca dir/ca.crt"}};
  EXPECT_EQ(replica_conninfo(cfg, "postgres://h:1/postgres"),
            "host=h port=1 user=standby dbname=postgres application_name=node-2 sslmode=require "
            "sslrootcert=/etc/ca\\ dir/ca.crt");
  EXPECT_EQ(replica_conninfo(cfg, "garbage"), "");
  EXPECT_EQ(replica_conninfo(cfg, "postgres://h:1/postgres").find("secret"), std::string::npos);
}

TEST(Basebackup, DefaultArgv) {
  auto cfg = base_config();
  EXPECT_EQ(basebackup_argv(cfg, "host=h port=1"),
            (Argv{"/usr/lib/postgresql/15/bin/pg_basebackup", "--pgdata=/var/lib/postgresql/data", "-X", "stream",
                  "--checkpoint=fast", "--dbname=host=h port=1"}));
  cfg.postgresql.bin_dir.clear();
  EXPECT_EQ(basebackup_argv(cfg, "x").front(), "pg_basebackup");
}

TEST(Basebackup, UserOptionsListForm) {
  auto cfg = base_config();
  cfg.postgresql.basebackup =
      json::array({{{"waldir", "/var/lib/postgresql/wal/pg_wal"}}, "verbose", {{"max-rate", "100M"}}});
  std::vector<std::string> warnings;
  auto argv = basebackup_argv(cfg, "c", &warnings);
  EXPECT_EQ(Argv(argv.begin() + 6, argv.end()),
            (Argv{"--waldir=/var/lib/postgresql/wal/pg_wal", "--verbose", "--max-rate=100M"}));
  EXPECT_TRUE(warnings.empty());
}

TEST(Basebackup, UserOptionsMapFormAndNumbers) {
  auto opts = basebackup_options(json{{"max-rate", "10M"}, {"label", "clone"}, {"status-interval", 5}}, nullptr);
  EXPECT_EQ(opts, (Argv{"--label=clone", "--max-rate=10M", "--status-interval=5"}));
}

TEST(Basebackup, ForbiddenAndMalformedOptionsAreSkippedWithWarnings) {
  std::vector<std::string> warnings;
  auto opts = basebackup_options(
      json::array({"pgdata", {{"host", "evil"}}, {{"a", "1"}, {"b", "2"}}, 42, "progress", {{"wal-method", "none"}}}),
      &warnings);
  EXPECT_EQ(opts, (Argv{"--progress"}));
  EXPECT_EQ(warnings.size(), 5u);
  warnings.clear();
  opts = basebackup_options(json{{"dbname", "x"}, {"label", "ok"}}, &warnings);
  EXPECT_EQ(opts, (Argv{"--label=ok"}));
  EXPECT_EQ(warnings.size(), 1u);
  warnings.clear();
  EXPECT_TRUE(basebackup_options(json("verbose"), &warnings).empty());
  EXPECT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(basebackup_options(json(), nullptr).empty());
}

TEST(CustomMethod, DefaultParams) {
  auto cfg = base_config();
  config::CustomMethod m;
  m.name = "wal_e";
  m.command = "/usr/bin/restore 'with space' --flag";
  auto argv = custom_method_argv(cfg, m, "host=h port=1");
  ASSERT_TRUE(argv) << argv.status().message();
  EXPECT_EQ(*argv, (Argv{"/usr/bin/restore", "with space", "--flag", "--scope=demo", "--role=replica",
                         "--datadir=/var/lib/postgresql/data", "--connstring=host=h port=1"}));
}

TEST(CustomMethod, ExtrasAndNoParams) {
  auto cfg = base_config();
  config::CustomMethod m;
  m.name = "pgbackrest";
  m.command = "/etc/timescaledb/scripts/pgbackrest_restore.sh";
  m.no_params = true;
  m.keep_data = true;
  m.no_master = true;
  auto argv = custom_method_argv(cfg, m, "");
  ASSERT_TRUE(argv);
  EXPECT_EQ(*argv, (Argv{"/etc/timescaledb/scripts/pgbackrest_restore.sh"}));

  m.extra = json{{"envdir", "/etc/wal-e"}, {"threshold_megabytes", 10240}, {"use_iam", true}};
  argv = custom_method_argv(cfg, m, "");
  ASSERT_TRUE(argv);
  EXPECT_EQ(*argv, (Argv{"/etc/timescaledb/scripts/pgbackrest_restore.sh", "--envdir=/etc/wal-e",
                         "--threshold_megabytes=10240", "--use_iam=True"}));

  m.no_params = false;
  argv = custom_method_argv(cfg, m, "");
  ASSERT_TRUE(argv);
  EXPECT_EQ(argv->size(), 8u);
  EXPECT_EQ(argv->back(), "--connstring=");
}

TEST(CustomMethod, BadCommand) {
  auto cfg = base_config();
  config::CustomMethod m;
  m.name = "bad";
  m.command = "restore 'unterminated";
  EXPECT_EQ(custom_method_argv(cfg, m, "").status().code(), Code::kInvalid);
  m.command = "   ";
  EXPECT_EQ(custom_method_argv(cfg, m, "").status().code(), Code::kInvalid);
}

TEST(CreateReplica, NoLeaderAndNoEligibleMethod) {
  auto cfg = base_config();
  cfg.postgresql.data_dir = "/nonexistent/pgwarden-unit/data";
  auto r = create_replica(cfg, {}, CloneSource{});
  EXPECT_EQ(r.status().code(), Code::kFailed);
  EXPECT_NE(r.status().message().find("without a leader"), std::string::npos) << r.status().message();
}

TEST(RewindConninfo, RewindUserOrSuperuser) {
  auto cfg = base_config();
  EXPECT_EQ(rewind_source_conninfo(cfg, "postgres://10.0.0.1:5432/postgres"),
            "host=10.0.0.1 port=5432 user=postgres dbname=postgres target_session_attrs=read-write");
  cfg.postgresql.rewind = {"rewinder", "pw", {{"sslmode", "require"}}};
  EXPECT_EQ(rewind_source_conninfo(cfg, "postgres://[::1]:5433/postgres"),
            "host=::1 port=5433 user=rewinder dbname=postgres sslmode=require target_session_attrs=read-write");
  EXPECT_EQ(rewind_source_conninfo(cfg, "nope"), "");
}

TEST(RewindEnabled, LocalWinsOverDynamic) {
  auto cfg = base_config();
  cfg.dynamic.use_pg_rewind = true;
  EXPECT_TRUE(rewind_enabled(cfg));
  cfg.postgresql.use_pg_rewind = false;
  EXPECT_FALSE(rewind_enabled(cfg));
}

}  // namespace
}  // namespace pgwarden::postgres
