// merge_dynamic and effective_parameters.
#include <gtest/gtest.h>

#include "config_test_util.hpp"

namespace pgwarden::config {
namespace {

using nlohmann::json;
using testing::joined;

TEST(MergeDynamic, TakesTheDynamicKeys) {
  std::vector<std::string> errors;
  auto d = merge_dynamic(DynamicConfig{}, json::parse(R"({
      "ttl": 60, "loop_wait": "5", "retry_timeout": 20, "maximum_lag_on_failover": 5000000000,
      "primary_start_timeout": 10, "primary_stop_timeout": 7, "synchronous_mode": "on",
      "synchronous_mode_strict": "true", "check_timeline": true, "pause": "off",
      "postgresql": {"use_pg_rewind": true, "use_slots": false, "parameters": {"work_mem": "4MB", "x": null},
                     "pg_hba": ["host all all all md5"], "recovery_conf": {"restore_command": "r"}},
      "unrelated": {"ignored": 1}})"), &errors);
  EXPECT_TRUE(errors.empty()) << joined(errors);
  EXPECT_EQ(d.ttl, 60);
  EXPECT_EQ(d.loop_wait, 5);
  EXPECT_EQ(d.retry_timeout, 20);
  EXPECT_EQ(d.maximum_lag_on_failover, 5000000000LL);
  EXPECT_EQ(d.primary_start_timeout, 10);
  EXPECT_EQ(d.primary_stop_timeout, 7);
  EXPECT_TRUE(d.synchronous_mode);
  EXPECT_TRUE(d.synchronous_mode_strict);
  EXPECT_TRUE(d.check_timeline);
  EXPECT_FALSE(d.pause);
  EXPECT_TRUE(d.use_pg_rewind);
  EXPECT_FALSE(d.use_slots);
  EXPECT_EQ(d.postgresql_parameters, json({{"work_mem", "4MB"}}));
  EXPECT_EQ(d.pg_hba, std::vector<std::string>{"host all all all md5"});
  EXPECT_EQ(d.recovery_conf["restore_command"], "r");
}

TEST(MergeDynamic, MasterSpellingsOnlyWhenPrimaryAbsent) {
  auto d = merge_dynamic(DynamicConfig{}, {{"master_start_timeout", 11}, {"master_stop_timeout", 12}});
  EXPECT_EQ(d.primary_start_timeout, 11);
  EXPECT_EQ(d.primary_stop_timeout, 12);
  d = merge_dynamic(DynamicConfig{}, {{"master_start_timeout", 11}, {"primary_start_timeout", 22}});
  EXPECT_EQ(d.primary_start_timeout, 22);
}

TEST(MergeDynamic, TopLevelRewindAndSlots) {
  auto d = merge_dynamic(DynamicConfig{}, {{"use_pg_rewind", true}, {"use_slots", "off"}});
  EXPECT_TRUE(d.use_pg_rewind);
  EXPECT_FALSE(d.use_slots);
  // postgresql.* wins over the top-level spelling.
  d = merge_dynamic(DynamicConfig{}, {{"use_slots", false}, {"postgresql", {{"use_slots", true}}}});
  EXPECT_TRUE(d.use_slots);
}

TEST(MergeDynamic, BadValuesAreReportedAndIgnored) {
  DynamicConfig base;
  base.ttl = 45;
  base.pause = true;
  std::vector<std::string> errors;
  auto d = merge_dynamic(base, json::parse(R"({"ttl": "soon", "pause": "perhaps", "loop_wait": 3,
      "postgresql": {"parameters": {"ok": 1, "bad": [1]}, "pg_hba": "x"}})"), &errors);
  EXPECT_EQ(d.ttl, 45);
  EXPECT_TRUE(d.pause);
  EXPECT_EQ(d.loop_wait, 3);
  EXPECT_EQ(d.postgresql_parameters, json({{"ok", 1}}));
  EXPECT_TRUE(testing::has_line(errors, "ttl: expected an integer, got string \"soon\"")) << joined(errors);
  EXPECT_TRUE(testing::has_line(errors, "pause: expected a boolean, got string \"perhaps\"")) << joined(errors);
  EXPECT_TRUE(testing::has_line(errors, "postgresql.parameters.bad: expected a scalar, got a list")) << joined(errors);
  EXPECT_TRUE(testing::has_line(errors, "postgresql.pg_hba: expected a list of strings")) << joined(errors);
  EXPECT_EQ(errors.size(), 4u) << joined(errors);
}

TEST(MergeDynamic, NonObjectAndNullErrorsPointerAreSafe) {
  auto d = merge_dynamic(DynamicConfig{}, json::array(), nullptr);
  EXPECT_EQ(d.ttl, 30);
  std::vector<std::string> errors;
  merge_dynamic(DynamicConfig{}, json("x"), &errors);
  EXPECT_EQ(errors, std::vector<std::string>{"config: expected a mapping, got string \"x\""});
  errors.clear();
  merge_dynamic(DynamicConfig{}, json(nullptr), &errors);
  EXPECT_TRUE(errors.empty());
}

Config base_config() {
  auto res = testing::load_patched(json::parse(R"({"scope": "clu", "postgresql": {"listen": "10.0.0.1,127.0.0.1:5444",
      "parameters": {"work_mem": "8MB", "Shared_Buffers": "2GB", "max_connections": 500, "wal_level": "logical",
                     "port": 1, "hot_standby": "off", "wal_keep_segments": 100}}})"));
  EXPECT_TRUE(res.config) << joined(res.errors);
  return res.config.value_or(Config{});
}

TEST(EffectiveParameters, DefaultsForCommandLineOptions) {
  auto cfg = base_config();
  auto p = effective_parameters(cfg, DynamicConfig{});
  EXPECT_EQ(p["listen_addresses"], "10.0.0.1,127.0.0.1");
  EXPECT_EQ(p["port"], "5444");
  EXPECT_EQ(p["cluster_name"], "clu");
  EXPECT_EQ(p["wal_level"], "replica");
  EXPECT_EQ(p["hot_standby"], "on");
  EXPECT_EQ(p["max_connections"], 100);  // local value ignored: command-line options are DCS-only
  EXPECT_EQ(p["max_wal_senders"], 10);
  EXPECT_EQ(p["max_prepared_transactions"], 0);
  EXPECT_EQ(p["max_locks_per_transaction"], 64);
  EXPECT_EQ(p["track_commit_timestamp"], "off");
  EXPECT_EQ(p["max_replication_slots"], 10);
  EXPECT_EQ(p["max_worker_processes"], 8);
  EXPECT_EQ(p["wal_log_hints"], "on");
  EXPECT_FALSE(p.contains("wal_keep_segments"));
  EXPECT_EQ(p["work_mem"], "8MB");
  EXPECT_EQ(p["Shared_Buffers"], "2GB");
}

TEST(EffectiveParameters, DynamicValuesWithMinimumsAndLocalOverrides) {
  auto cfg = base_config();
  DynamicConfig dyn;
  dyn.postgresql_parameters = json::parse(R"({
      "max_connections": "200", "max_wal_senders": 2, "max_locks_per_transaction": 128,
      "max_replication_slots": 3, "max_worker_processes": "16", "wal_level": "logical",
      "track_commit_timestamp": "on", "hot_standby": "off", "wal_log_hints": "off", "port": 9999,
      "listen_addresses": "*", "cluster_name": "other", "max_prepared_transactions": 150,
      "shared_buffers": "128MB", "work_mem": "1MB", "archive_mode": "on", "wal_keep_size": "1GB"})");
  auto p = effective_parameters(cfg, dyn);
  EXPECT_EQ(p["max_connections"], "200");
  EXPECT_EQ(p["max_wal_senders"], 10);        // below the minimum of 3
  EXPECT_EQ(p["max_locks_per_transaction"], 128);
  EXPECT_EQ(p["max_replication_slots"], 10);  // below the minimum of 4
  EXPECT_EQ(p["max_worker_processes"], "16");
  EXPECT_EQ(p["wal_level"], "logical");
  EXPECT_EQ(p["track_commit_timestamp"], "on");
  EXPECT_EQ(p["hot_standby"], "on");
  EXPECT_EQ(p["wal_log_hints"], "on");
  EXPECT_EQ(p["port"], "5444");
  EXPECT_EQ(p["listen_addresses"], "10.0.0.1,127.0.0.1");
  EXPECT_EQ(p["cluster_name"], "clu");
  EXPECT_EQ(p["max_prepared_transactions"], 150);
  EXPECT_EQ(p["wal_keep_size"], "1GB");
  EXPECT_EQ(p["archive_mode"], "on");
  EXPECT_EQ(p["work_mem"], "8MB");  // local wins
  // Case-insensitive: the local spelling replaces the dynamic one.
  EXPECT_EQ(p["Shared_Buffers"], "2GB");
  EXPECT_FALSE(p.contains("shared_buffers"));
}

TEST(EffectiveParameters, InvalidWalLevelFallsBackToDefault) {
  auto cfg = base_config();
  DynamicConfig dyn;
  dyn.postgresql_parameters = {{"wal_level", "minimal"}, {"max_connections", "lots"}};
  auto p = effective_parameters(cfg, dyn);
  EXPECT_EQ(p["wal_level"], "replica");
  EXPECT_EQ(p["max_connections"], 100);
}

}  // namespace
}  // namespace pgwarden::config
