// `pgwarden ctl` output and edit-config helpers against what Debian's patronictl 3.0.2
// (PyYAML 6, PrettyTable 3.6, difflib) prints for the same data.
#include "pgwarden/ctl/format.hpp"

#include <gtest/gtest.h>

namespace pgwarden::ctl {
namespace {

using nlohmann::json;

json sample_config() {
  return json::parse(R"({"loop_wait": 10, "ttl": 30,
    "postgresql": {"parameters": {"max_connections": 100, "wal_level": "replica"}, "use_pg_rewind": true,
                   "pg_hba": ["host all all 0.0.0.0/0 md5", "local all all trust"]},
    "pause": false, "tags": [], "x": {}, "s1": "yes", "s2": "12", "s3": "a: b", "s4": "", "s5": "2020-01-01",
    "s6": "-x", "s7": "it's", "f": 1.5, "n": null, "lst": [{"a": 1, "b": [1, 2]}, [3, 4]], "e": 1e20})");
}

const char* kSampleYaml =
    "e: 1.0e+20\nf: 1.5\nloop_wait: 10\nlst:\n- a: 1\n  b:\n  - 1\n  - 2\n- - 3\n  - 4\nn: null\npause: false\n"
    "postgresql:\n  parameters:\n    max_connections: 100\n    wal_level: replica\n  pg_hba:\n"
    "  - host all all 0.0.0.0/0 md5\n  - local all all trust\n  use_pg_rewind: true\ns1: 'yes'\ns2: '12'\n"
    "s3: 'a: b'\ns4: ''\ns5: '2020-01-01'\ns6: -x\ns7: it's\ntags: []\nttl: 30\nx: {}\n";

TEST(CtlYaml, WritesWhatPyYamlSafeDumpWrites) { EXPECT_EQ(to_yaml(sample_config()), kSampleYaml); }

TEST(CtlYaml, QuotesStringsThatWouldReadBackAsSomethingElse) {
  EXPECT_EQ(to_yaml(json{{"a", "on"}}), "a: 'on'\n");
  EXPECT_EQ(to_yaml(json{{"a", "~"}}), "a: '~'\n");
  EXPECT_EQ(to_yaml(json{{"a", "0x1F"}}), "a: '0x1F'\n");
  EXPECT_EQ(to_yaml(json{{"a", "1.5"}}), "a: '1.5'\n");
  EXPECT_EQ(to_yaml(json{{"a", "8MB"}}), "a: 8MB\n");
  EXPECT_EQ(to_yaml(json{{"a", " x"}}), "a: ' x'\n");
  EXPECT_EQ(to_yaml(json{{"a", "x #y"}}), "a: 'x #y'\n");
  EXPECT_EQ(to_yaml(json{{"a", "*"}}), "a: '*'\n");
  EXPECT_EQ(to_yaml(json{{"a", "host all all 127.0.0.1/32 md5"}}), "a: host all all 127.0.0.1/32 md5\n");
  EXPECT_EQ(to_yaml(json::object()), "{}\n");
}

TEST(CtlYaml, ReadsBackTheSameDocument) {
  auto back = parse_yaml_text(to_yaml(sample_config()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, sample_config());
}

Table sample_members() {
  Table t;
  t.columns = {"Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"};
  t.right_aligned = {"TL", "Lag in MB"};
  t.rows = {{"batman", "node1", "127.0.0.1:5432", "Leader", "running", 1, ""},
            {"batman", "node2", "127.0.0.1:5433", "Replica", "streaming", 1, 0},
            {"batman", "node3", "127.0.0.1:5434", "Sync Standby", "running", 1, "unknown"}};
  return t;
}

TEST(CtlTable, JsonSkipsEmptyCellsLikePatronictl) {
  EXPECT_EQ(render_json(sample_members(), true),
            R"([{"Cluster": "batman", "Member": "node1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 1}, )"
            R"({"Cluster": "batman", "Member": "node2", "Host": "127.0.0.1:5433", "Role": "Replica", "State": "streaming", "TL": 1, "Lag in MB": 0}, )"
            R"({"Cluster": "batman", "Member": "node3", "Host": "127.0.0.1:5434", "Role": "Sync Standby", "State": "running", "TL": 1, "Lag in MB": "unknown"}])"
            "\n");
}

TEST(CtlTable, YamlSortsKeys) {
  std::string y = render_yaml(sample_members(), true);
  EXPECT_EQ(y.substr(0, 115),
            "- Cluster: batman\n  Host: 127.0.0.1:5432\n  Member: node1\n  Role: Leader\n  State: running\n  TL: 1\n"
            "- Cluster: batman\n");
  EXPECT_NE(y.find("  Lag in MB: unknown\n"), std::string::npos);
}

TEST(CtlTable, Tsv) {
  EXPECT_EQ(render_tsv(sample_members()),
            "Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB\n"
            "batman\tnode1\t127.0.0.1:5432\tLeader\trunning\t1\t\n"
            "batman\tnode2\t127.0.0.1:5433\tReplica\tstreaming\t1\t0\n"
            "batman\tnode3\t127.0.0.1:5434\tSync Standby\trunning\t1\tunknown\n");
}

json sample_cluster() {
  return json::parse(R"({"members": [
    {"name": "node1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni",
     "host": "127.0.0.1", "port": 5432, "timeline": 1},
    {"name": "node2", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.1:8009/patroni",
     "host": "127.0.0.1", "port": 5433, "timeline": 1, "lag": 0},
    {"name": "node3", "role": "sync_standby", "state": "running", "api_url": "http://127.0.0.1:8010/patroni",
     "host": "127.0.0.1", "port": 5434, "timeline": 1, "lag": "unknown"}]})");
}

TEST(CtlList, PrettyTableWithTheClusterTitle) {
  ListOptions o;
  o.cluster_name = "batman";
  o.sysid = "7231";
  EXPECT_EQ(render_member_list(sample_cluster(), o),
            "+ Cluster: batman (7231) -+--------------+-----------+----+-----------+\n"
            "| Member | Host           | Role         | State     | TL | Lag in MB |\n"
            "+--------+----------------+--------------+-----------+----+-----------+\n"
            "| node1  | 127.0.0.1:5432 | Leader       | running   |  1 |           |\n"
            "| node2  | 127.0.0.1:5433 | Replica      | streaming |  1 |         0 |\n"
            "| node3  | 127.0.0.1:5434 | Sync Standby | running   |  1 |   unknown |\n"
            "+--------+----------------+--------------+-----------+----+-----------+\n");
}

TEST(CtlList, HostWithoutPortWhenEveryMemberHasItsOwnHostOnTheDefaultPort) {
  json c = sample_cluster();
  for (int i = 0; i < 3; ++i) {
    c["members"][i]["host"] = "10.0.0." + std::to_string(i + 1);
    c["members"][i]["port"] = 5432;
  }
  ListOptions o;
  o.cluster_name = "batman";
  o.sysid = "1";
  Table t = member_table(c, o);
  EXPECT_EQ(t.rows[0][2], "10.0.0.1");
  o.sysid = std::nullopt;
  EXPECT_EQ(cluster_title("batman", std::nullopt), " Cluster: batman (uninitialized) ");
  EXPECT_EQ(cluster_title("batman", ""), " Cluster: batman (initializing) ");
}

TEST(CtlList, TagsPendingRestartAndMaintenanceMode) {
  json c = sample_cluster();
  c["members"][0]["tags"] = {{"nofailover", true}, {"zone", "a b"}};
  c["members"][1]["pending_restart"] = true;
  c["pause"] = true;
  c["scheduled_switchover"] = {{"at", "2024-01-01T10:00:00+00:00"}, {"from", "node1"}, {"to", "node2"}};
  ListOptions o;
  o.cluster_name = "batman";
  o.sysid = "7231";
  std::string out = render_member_list(c, o);
  EXPECT_NE(out.find("| Pending restart | Tags             |"), std::string::npos) << out;
  EXPECT_NE(out.find("| nofailover: true |\n|        |"), std::string::npos) << out;
  EXPECT_NE(out.find("|                 | zone: a b        |\n+--"), std::string::npos) << out;
  EXPECT_NE(out.find("| *               |"), std::string::npos) << out;
  EXPECT_NE(out.find("\n Maintenance mode: on\n Switchover scheduled at: 2024-01-01T10:00:00+00:00\n"
                     "                    from: node1\n                      to: node2\n"),
            std::string::npos)
      << out;
  o.fmt = "tsv";
  EXPECT_NE(render_member_list(c, o).find("\t{nofailover: true, zone: a b}\n"), std::string::npos);
  o.fmt = "json";
  EXPECT_EQ(render_member_list(c, o).find("Maintenance"), std::string::npos);
}

TEST(CtlList, ExtendedShowsTheOptionalColumnsAlways) {
  ListOptions o;
  o.cluster_name = "batman";
  o.extended = true;
  Table t = member_table(sample_cluster(), o);
  ASSERT_EQ(t.columns.size(), 10u);
  EXPECT_EQ(t.columns[7], "Pending restart");
  EXPECT_EQ(t.columns[8], "Scheduled restart");
  EXPECT_EQ(t.columns[9], "Tags");
}

TEST(CtlList, TopologyPutsCascadingReplicasUnderTheirUpstream) {
  json c = sample_cluster();
  c["members"][2]["tags"] = {{"replicatefrom", "node2"}};
  ListOptions o;
  o.cluster_name = "batman";
  o.fmt = "topology";
  Table t = member_table(c, o);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][1], "node1");
  EXPECT_EQ(t.rows[1][1], "+ node2");
  EXPECT_EQ(t.rows[2][1], "  + node3");
}

TEST(CtlList, LagInWholeMegabytesRoundedLikePython) {
  EXPECT_EQ(lag_in_mb(0), 0);
  EXPECT_EQ(lag_in_mb(524288), 0);      // 0.5 -> 0 (half to even)
  EXPECT_EQ(lag_in_mb(1572864), 2);     // 1.5 -> 2
  EXPECT_EQ(lag_in_mb(2621440), 2);     // 2.5 -> 2
  EXPECT_EQ(lag_in_mb(1048575), 1);
  EXPECT_EQ(lag_in_mb(5 * 1048576 + 1), 5);
  EXPECT_EQ(lag_in_mb("unknown"), "unknown");
}

TEST(CtlEditConfig, SetAndPgPairsFollowPatronictl) {
  auto r = apply_set_pairs(sample_config(),
                           {"loop_wait=3", "postgresql.use_pg_rewind=", "new.deep.key=[1, 2]", "x.y="},
                           {"work_mem=8MB", " pg_stat_statements.track=all"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  json expected = sample_config();
  expected["loop_wait"] = 3;
  expected["postgresql"].erase("use_pg_rewind");
  expected["postgresql"]["parameters"]["work_mem"] = "8MB";
  expected["postgresql"]["parameters"]["pg_stat_statements.track"] = "all";
  expected["new"] = {{"deep", {{"key", {1, 2}}}}};
  expected.erase("x");
  EXPECT_EQ(*r, expected);
}

TEST(CtlEditConfig, ValuesAreYaml) {
  auto r = apply_set_pairs(json::object(), {"pause=true", "ttl=30", "a.b=yes", "s='10'", "m={x: 1}"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, json::parse(R"({"pause": true, "ttl": 30, "a": {"b": true}, "s": "10", "m": {"x": 1}})"));
}

TEST(CtlEditConfig, PairWithoutEqualsIsRefused) {
  auto r = apply_set_pairs(json::object(), {"loop_wait"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "Invalid parameter setting loop_wait");
}

TEST(CtlEditConfig, UnifiedDiffLikeDifflib) {
  auto after = apply_set_pairs(sample_config(),
                               {"loop_wait=3", "postgresql.parameters.work_mem=8MB",
                                "postgresql.parameters.pg_stat_statements.track=all", "postgresql.use_pg_rewind=",
                                "new.deep.key=[1, 2]", "x.y="});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(unified_diff(to_yaml(sample_config()), to_yaml(*after)),
            "--- \n+++ \n@@ -1,6 +1,6 @@\n e: 1.0e+20\n f: 1.5\n-loop_wait: 10\n+loop_wait: 3\n lst:\n - a: 1\n   b:\n"
            "@@ -9,15 +9,21 @@\n - - 3\n   - 4\n n: null\n+new:\n+  deep:\n+    key:\n+    - 1\n+    - 2\n pause: false\n"
            " postgresql:\n   parameters:\n     max_connections: 100\n+    pg_stat_statements.track: all\n"
            "     wal_level: replica\n+    work_mem: 8MB\n   pg_hba:\n   - host all all 0.0.0.0/0 md5\n"
            "   - local all all trust\n-  use_pg_rewind: true\n s1: 'yes'\n s2: '12'\n s3: 'a: b'\n"
            "@@ -27,4 +33,3 @@\n s7: it's\n tags: []\n ttl: 30\n-x: {}\n");
  EXPECT_EQ(unified_diff("a: 1\n", "a: 1\n"), "");
  EXPECT_EQ(unified_diff("a: 1\n", "a: 2\n"), "--- \n+++ \n@@ -1 +1 @@\n-a: 1\n+a: 2\n");
}

TEST(CtlHistory, TableAndJson) {
  json h = json::parse(R"([[1, 25165984, "no recovery target specified", "2023-08-30T13:23:45.123456+00:00", "node2"],
                           [2, 33554592, "no recovery target specified"]])");
  Table t = history_table(h);
  EXPECT_EQ(render_pretty(t),
            "+----+----------+------------------------------+----------------------------------+------------+\n"
            "| TL |      LSN | Reason                       | Timestamp                        | New Leader |\n"
            "+----+----------+------------------------------+----------------------------------+------------+\n"
            "|  1 | 25165984 | no recovery target specified | 2023-08-30T13:23:45.123456+00:00 | node2      |\n"
            "|  2 | 33554592 | no recovery target specified |                                  |            |\n"
            "+----+----------+------------------------------+----------------------------------+------------+\n");
  EXPECT_EQ(render_json(t, false).substr(0, 60), R"([{"TL": 1, "LSN": 25165984, "Reason": "no recovery target sp)");
  EXPECT_NE(render_json(t, false).find(R"("Timestamp": "", "New Leader": ""})"), std::string::npos);
}

TEST(CtlJson, PythonSeparatorsAndEscapes) {
  nlohmann::ordered_json v = {{"b", 1}, {"a", "é"}, {"f", 1.0}, {"n", nullptr}, {"l", {true, 2.5}}};
  EXPECT_EQ(python_json(v), R"({"b": 1, "a": "\u00e9", "f": 1.0, "n": null, "l": [true, 2.5]})");
}

}  // namespace
}  // namespace pgwarden::ctl
