// pgwarden's own `backup_api` section: absent means not served, values are checked with the
// key path, and PGWARDEN_BACKUP_API_* override the file.
#include <gtest/gtest.h>

#include "config_test_util.hpp"

namespace pgwarden::config {
namespace {

using nlohmann::json;
using testing::joined;
using testing::load_patched;

TEST(ConfigBackupApi, AbsentSectionIsNotServed) {
  auto res = load_patched(json::object());
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_FALSE(res.config->backup_api.enabled);
  EXPECT_FALSE(testing::has_line(res.warnings, "backup_api"));
}

TEST(ConfigBackupApi, SectionIsReadAndKnown) {
  auto res = load_patched(json::parse(
      R"({"backup_api": {"listen": "0.0.0.0:8081", "stanza": "poddb", "command": "/usr/bin/pgbackrest"}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  const auto& b = res.config->backup_api;
  EXPECT_TRUE(b.enabled);
  EXPECT_EQ(b.listen.host, "0.0.0.0");
  EXPECT_EQ(b.listen.port, 8081);
  EXPECT_EQ(b.stanza, "poddb");
  EXPECT_EQ(b.command, "/usr/bin/pgbackrest");
  EXPECT_FALSE(testing::has_line(res.warnings, "unknown configuration key: backup_api")) << joined(res.warnings);
}

TEST(ConfigBackupApi, DefaultsLeaveStanzaToTheEnvironment) {
  auto res = load_patched(json::parse(R"({"backup_api": {"listen": "127.0.0.1:9000"}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_TRUE(res.config->backup_api.enabled);
  EXPECT_EQ(res.config->backup_api.stanza, "");
  EXPECT_EQ(res.config->backup_api.command, "pgbackrest");
}

TEST(ConfigBackupApi, UnknownKeyInSectionWarns) {
  auto res = load_patched(json::parse(R"({"backup_api": {"listen": "127.0.0.1:9000", "lsten": 1}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_TRUE(testing::has_line(res.warnings, "unknown configuration key: backup_api.lsten")) << joined(res.warnings);
}

TEST(ConfigBackupApi, SectionWithoutListenWarnsAndIsNotServed) {
  auto res = load_patched(json::parse(R"({"backup_api": {"stanza": "poddb"}})"));
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_FALSE(res.config->backup_api.enabled);
  EXPECT_TRUE(testing::has_line(res.warnings, "backup_api: no listen address")) << joined(res.warnings);
}

struct BadValue {
  const char* name;
  const char* patch;
  const char* want_error;
};
void PrintTo(const BadValue& c, std::ostream* os) { *os << c.name; }

class ConfigBackupApiErrors : public ::testing::TestWithParam<BadValue> {};

TEST_P(ConfigBackupApiErrors, ReportsKeyPath) {
  const auto& tc = GetParam();
  auto res = load_patched(json::parse(tc.patch));
  EXPECT_FALSE(res.config);
  EXPECT_TRUE(testing::has_line(res.errors, tc.want_error)) << "want: " << tc.want_error << "\ngot:\n"
                                                            << joined(res.errors);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ConfigBackupApiErrors,
    ::testing::Values(
        BadValue{"NotAMapping", R"({"backup_api": "yes"})", "backup_api: expected a mapping, got string \"yes\""},
        BadValue{"ListenNoPort", R"({"backup_api": {"listen": "0.0.0.0"}})",
                 "backup_api.listen: expected host:port with a port between 1 and 65535, got string \"0.0.0.0\""},
        BadValue{"ListenInteger", R"({"backup_api": {"listen": 8081}})",
                 "backup_api.listen: expected host:port with a port between 1 and 65535, got integer 8081"},
        BadValue{"StanzaList", R"({"backup_api": {"listen": "0.0.0.0:8081", "stanza": ["a"]}})",
                 "backup_api.stanza: expected a non-empty string, got a list"},
        BadValue{"StanzaNumber", R"({"backup_api": {"listen": "0.0.0.0:8081", "stanza": 5}})",
                 "backup_api.stanza: expected a non-empty string, got integer 5"},
        BadValue{"CommandEmpty", R"({"backup_api": {"listen": "0.0.0.0:8081", "command": ""}})",
                 "backup_api.command: expected a non-empty string, got string \"\""}));

TEST(ConfigBackupApi, EnvironmentOverridesTheFile) {
  auto res = load_patched(
      json::parse(R"({"backup_api": {"listen": "0.0.0.0:8081", "stanza": "file"}})"),
      {{"HOME", "/home/pg"}, {"PGWARDEN_BACKUP_API_LISTEN", "127.0.0.1:9999"}, {"PGWARDEN_BACKUP_API_STANZA", "env"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_EQ(res.config->backup_api.listen.port, 9999);
  EXPECT_EQ(res.config->backup_api.listen.host, "127.0.0.1");
  EXPECT_EQ(res.config->backup_api.stanza, "env");
}

TEST(ConfigBackupApi, EnvironmentListenAloneEnablesIt) {
  auto res = load_patched(json::object(), {{"HOME", "/home/pg"}, {"PGWARDEN_BACKUP_API_LISTEN", "0.0.0.0:8081"}});
  ASSERT_TRUE(res.config) << joined(res.errors);
  EXPECT_TRUE(res.config->backup_api.enabled);
  EXPECT_EQ(res.config->backup_api.listen.port, 8081);
}

TEST(ConfigBackupApi, BadEnvironmentListenIsAnError) {
  auto res = load_patched(json::object(), {{"HOME", "/home/pg"}, {"PGWARDEN_BACKUP_API_LISTEN", "nowhere"}});
  EXPECT_FALSE(res.config);
  EXPECT_TRUE(testing::has_line(res.errors, "backup_api.listen: expected host:port")) << joined(res.errors);
}

}  // namespace
}  // namespace pgwarden::config
