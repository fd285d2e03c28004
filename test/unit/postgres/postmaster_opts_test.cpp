// postmaster.opts parsing and the comparison that tells a restart is pending for options
// given on the postmaster command line (max_connections, wal_level, ...).
#include <gtest/gtest.h>

#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::postgres {
namespace {

TEST(PostmasterOpts, ParsesTheQuotedOptions) {
  const std::string text =
      "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/var/lib/pg data\" \"--listen_addresses=127.0.0.1\" "
      "\"--port=5432\" \"--max_connections=100\"\n";
  EXPECT_EQ(parse_postmaster_opts(text),
            (std::vector<std::string>{"--listen_addresses=127.0.0.1", "--port=5432", "--max_connections=100"}));
  EXPECT_TRUE(parse_postmaster_opts("/usr/bin/postgres\n").empty());
  EXPECT_TRUE(parse_postmaster_opts("").empty());
}

TEST(PostmasterOpts, ChangedOptions) {
  std::vector<std::string> running{"--port=5432", "--max_connections=100", "--wal_level=replica"};
  EXPECT_TRUE(changed_command_line_options(running, running).empty());
  EXPECT_EQ(changed_command_line_options(running, {"--port=5432", "--max_connections=150", "--wal_level=replica"}),
            (std::vector<std::string>{"max_connections"}));
  EXPECT_EQ(changed_command_line_options(running, {"--port=5432", "--max_connections=100"}),
            (std::vector<std::string>{"wal_level"}));
  EXPECT_EQ(changed_command_line_options({"--port=5432"}, {"--port=5432", "--hot_standby=on"}),
            (std::vector<std::string>{"hot_standby"}));
}

TEST(PostmasterOpts, RoundTripsWhatStartPasses) {
  config::Config cfg;
  cfg.scope = "demo";
  cfg.postgresql.listen.host = "127.0.0.1";
  cfg.postgresql.listen.port = 5433;
  auto wanted = command_line_options(cfg, nlohmann::json{{"max_connections", 120}});
  std::string opts = "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/d\"";
  for (const auto& o : wanted) opts += " \"" + o + "\"";
  EXPECT_EQ(parse_postmaster_opts(opts + "\n"), wanted);
  EXPECT_TRUE(changed_command_line_options(parse_postmaster_opts(opts), wanted).empty());
}

}  // namespace
}  // namespace pgwarden::postgres

namespace pgwarden::postgres {
namespace {

TEST(PostgresqlConf, WritesCommandLineOptionsWithTheirValues) {
  std::string conf = render_postgresql_conf(nlohmann::json{{"max_connections", 10}, {"work_mem", "8MB"}},
                                            "postgresql.base.conf", "/d", {"--max_connections=60", "--port=5433"});
  EXPECT_NE(conf.find("max_connections = '60'\n"), std::string::npos) << conf;
  EXPECT_EQ(conf.find("max_connections = '10'"), std::string::npos) << conf;
  EXPECT_NE(conf.find("port = '5433'\n"), std::string::npos) << conf;
  EXPECT_NE(conf.find("work_mem = '8MB'\n"), std::string::npos) << conf;
}

}  // namespace
}  // namespace pgwarden::postgres
