// The pgBackRest backup API (the timescaledb-single chart's backup CronJobs) against real
// members: PostgreSQL 15 with WAL archiving into a pgBackRest repository, on etcd and on the
// Kubernetes API emulator; a failing pgbackrest; archive_command failures in /metrics; and
// `pgwarden backup-server` as a sidecar process.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster_fixture.hpp"
#include "pgbackrest_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Archiving into the repository as local parameters (the chart sets them the same way).
std::string archive_parameters(const PgBackRestRepo& repo) {
  return "    archive_mode: 'on'\n    archive_command: '" + repo.archive_push_script() + " %p'\n";
}

// A member with the repository's environment, archiving on, and the backup API on `port`.
MemberOptions backup_member(const PgBackRestRepo& repo, int index, int port) {
  MemberOptions o;
  o.scope = "bk";
  o.index = index;
  o.name = "node" + std::to_string(index);
  PgBackRestUse use;
  use.archive = false;  // set below as local parameters
  use.replica_method = false;
  use.restore_command = false;
  repo.configure(o, use);
  o.parameters_yaml += archive_parameters(repo);
  o.extra_yaml += "backup_api:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n";
  return o;
}

HttpReply post_backup(int port, const std::string& body) {
  return http_request("POST", "127.0.0.1", port, "/backups/", body, 15s);
}

json get_json(int port, const std::string& path) {
  auto r = http_request("GET", "127.0.0.1", port, path, "", 70s);
  if (r.status != 200) return json();
  return json::parse(r.body, nullptr, false);
}

std::string logs(const std::vector<PgwardenMember*>& members) {
  std::string all;
  for (auto* m : members) all += "----- " + m->options().name + "\n" + m->log();
  return all;
}

// POSTs a backup of `type` and waits for it to finish with its pgBackRest entry; returns the
// final details (null on failure, with the reason in the test output).
json run_backup(int port, const std::string& type, const std::string& log_hint) {
  auto r = post_backup(port, json{{"type", type}}.dump());
  EXPECT_TRUE(r.status == 202 || r.status == 200) << r.status << " " << r.body << "\n" << log_hint;
  if (r.status != 202 && r.status != 200) return json();
  json started = json::parse(r.body, nullptr, false);
  EXPECT_EQ(started.value("type", ""), type);
  if (r.status == 202) {
    EXPECT_EQ(r.headers["location"], "/backups/backup/" + started.value("label", "?"));
  }
  json details;
  bool done = wait_until(
      [&] {
        details = get_json(port, "/backups/backup/latest");
        if (!details.is_object() || details.value("label", "") != started.value("label", "")) return false;
        if (details["status"] == "FAILED") return true;
        return details["status"] == "FINISHED" && details["pgbackrest"].contains("label");
      },
      150s);
  EXPECT_TRUE(done) << details.dump(2) << "\n" << log_hint;
  EXPECT_EQ(details.value("status", ""), "FINISHED") << details.dump(2) << "\n" << log_hint;
  EXPECT_EQ(details.value("returncode", -1), 0);
  return details;
}

int metric_value(const std::string& text, const std::string& name) {
  auto pos = text.find("\n" + name + "{");
  if (pos == std::string::npos) return -1;
  auto end = text.find('\n', pos + 1);
  std::string line = text.substr(pos + 1, end - pos - 1);
  return std::stoi(line.substr(line.rfind(' ') + 1));
}

void full_then_incr(int port, const PgBackRestRepo& repo, const std::string& log_hint) {
  json full = run_backup(port, "full", log_hint);
  ASSERT_TRUE(full.is_object());
  std::string full_label = full["pgbackrest"].value("label", "");
  EXPECT_EQ(full_label.back(), 'F') << full.dump(2);
  EXPECT_EQ(full["pgbackrest"].value("type", ""), "full");
  EXPECT_TRUE(full["finished"].is_string());
  EXPECT_GT(full["duration"].get<double>(), 0);

  json incr = run_backup(port, "incr", log_hint);
  ASSERT_TRUE(incr.is_object());
  EXPECT_EQ(incr["pgbackrest"].value("type", ""), "incr") << incr.dump(2);
  EXPECT_NE(incr["label"], full["label"]);

  // The repository has exactly these two.
  json info = repo.info_json();
  ASSERT_TRUE(info.is_array() && !info.empty()) << info.dump();
  std::vector<std::string> types;
  for (const auto& b : info[0]["backup"]) types.push_back(b.value("type", ""));
  EXPECT_EQ(types, (std::vector<std::string>{"full", "incr"})) << info.dump(2);

  // The list shows both, sorted by label, with their pgBackRest labels; a pgBackRest label
  // finds the same backup.
  json list = get_json(port, "/backups/");
  ASSERT_TRUE(list.is_array()) << list.dump();
  ASSERT_EQ(list.size(), 2u) << list.dump(2);
  EXPECT_EQ(list[0]["label"], full["label"]);
  EXPECT_EQ(list[0]["pgbackrest"]["label"], full_label);
  EXPECT_EQ(get_json(port, "/backups/backup/" + full_label)["label"], full["label"]);
  EXPECT_EQ(get_json(port, "/backups?status=finished").size(), 2u);
}

TEST(BackupApi, ThreeMembersBackUpOnTheLeaderOnly) {
  EtcdServer etcd;
  PgBackRestRepo repo;
  std::vector<int> ports{free_port(), free_port(), free_port()};
  std::vector<std::unique_ptr<PgwardenMember>> members;
  std::vector<PgwardenMember*> all;
  for (int i = 1; i <= 3; ++i) {
    members.push_back(std::make_unique<PgwardenMember>(etcd, backup_member(repo, i, ports[i - 1])));
    all.push_back(members.back().get());
  }
  members[0]->start();
  ASSERT_TRUE(wait_until([&] { return members[0]->get("/leader").status == 200; }, 90s)) << logs(all);
  members[1]->start();
  members[2]->start();
  ASSERT_TRUE(wait_until(
      [&] { return members[1]->get("/replica").status == 200 && members[2]->get("/replica").status == 200; }, 120s))
      << logs(all);

  full_then_incr(ports[0], repo, logs(all));

  // A replica refuses and starts nothing; its GETs work.
  auto refused = post_backup(ports[1], R"({"type": "full"})");
  EXPECT_EQ(refused.status, 503) << refused.body;
  json err = json::parse(refused.body, nullptr, false);
  EXPECT_EQ(err.value("error", ""), "this member is a replica; backups run on the primary (node1)") << refused.body;
  json replica_list = get_json(ports[1], "/backups");
  ASSERT_TRUE(replica_list.is_array());
  for (const auto& b : replica_list) EXPECT_NE(b["status"], "RUNNING") << replica_list.dump(2);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(repo.backup_count(), 2u);

  // A bad request is refused before anything starts.
  auto bad = post_backup(ports[0], R"({"type": "weekly"})");
  EXPECT_EQ(bad.status, 400) << bad.body;

  // WAL went to the repository: the archiver's counter shows it. (Segments completed before
  // the first backup's stanza-create could not be pushed, so failures may be counted too.)
  auto metrics = members[0]->get("/metrics");
  EXPECT_GT(metric_value(metrics.body, "pgwarden_postgres_archiver_archived_count"), 0) << metrics.body;
  EXPECT_GE(metric_value(metrics.body, "pgwarden_postgres_archiver_failed_count"), 0) << metrics.body;
}

TEST(BackupApi, KubernetesMemberBacksUp) {
  K8sTestDcs dcs(true, "bk");
  PgBackRestRepo repo;
  int port = free_port();
  PgwardenMember m(dcs, backup_member(repo, 1, port));
  m.start();
  ASSERT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 90s)) << m.log();
  full_then_incr(port, repo, m.log());
}

TEST(BackupApi, FailingBackupIsReportedAndTheMemberStaysHealthy) {
  EtcdServer etcd;
  TempDir scripts("pgwarden-fake-pgbackrest");
  const std::string failing = scripts.file("failing-pgbackrest");
  write_file(failing, "#!/bin/sh\necho \"ERROR: [099]: simulated failure of $*\" >&2\nexit 3\n", 0755);
  MemberOptions o;
  o.scope = "bkfail";
  int port = free_port();
  o.extra_yaml =
      "backup_api:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n  stanza: poddb\n  command: " + failing + "\n";
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 90s)) << m.log();

  auto r = post_backup(port, R"({"type": "full"})");
  ASSERT_EQ(r.status, 500) << r.body << "\n" << m.log();  // failed within the first second
  json d = json::parse(r.body);
  EXPECT_EQ(d["status"], "FAILED");
  EXPECT_EQ(d["returncode"], 3);
  EXPECT_NE(d["stderr"].get<std::string>().find("ERROR: [099]: simulated failure of --stanza=poddb"), std::string::npos)
      << d.dump(2);
  json latest = get_json(port, "/backups/backup/latest");
  EXPECT_EQ(latest["status"], "FAILED");
  EXPECT_EQ(latest["label"], d["label"]);
  EXPECT_EQ(get_json(port, "/backups?status=FAILED").size(), 1u);
  // The next one may start (nothing is left running), and the member is healthy throughout.
  EXPECT_EQ(post_backup(port, "").status, 500);
  EXPECT_EQ(m.get("/health").status, 200);
  EXPECT_EQ(m.get("/leader").status, 200);
  EXPECT_TRUE(m.alive());
}

TEST(BackupApi, ShutdownStopsARunningBackup) {
  EtcdServer etcd;
  TempDir scripts("pgwarden-fake-pgbackrest");
  const std::string slow = scripts.file("slow-pgbackrest");
  // stanza-create succeeds; the backup records its pid and sleeps far longer than the test.
  write_file(
      slow,
      "#!/bin/sh\ncase \"$*\" in *backup*) echo $$ > " + scripts.file("pid") + "; exec sleep 600;; esac\nexit 0\n",
      0755);
  MemberOptions o;
  o.scope = "bkstop";
  int port = free_port();
  o.extra_yaml = "backup_api:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n  command: " + slow + "\n";
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 90s)) << m.log();
  auto r = post_backup(port, "");
  ASSERT_EQ(r.status, 202) << r.body << "\n" << m.log();
  ASSERT_TRUE(wait_until([&] { return file_exists(scripts.file("pid")); }, 10s));
  const int pid = std::stoi(read_file(scripts.file("pid")));
  ASSERT_EQ(kill(pid, 0), 0);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(m.stop(SIGTERM, 60s), 0) << m.log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  EXPECT_TRUE(wait_until([&] { return kill(pid, 0) != 0; }, 5s)) << "pgbackrest outlived the daemon";
  EXPECT_NE(m.log().find("stopping pgbackrest"), std::string::npos) << m.log();
}

TEST(BackupApi, ArchiveCommandFailuresShowInMetrics) {
  EtcdServer etcd;
  MemberOptions o;
  o.scope = "bkarch";
  o.parameters_yaml = "    archive_mode: 'on'\n    archive_command: /bin/false\n";
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 90s)) << m.log();
  m.sql("CREATE TABLE archived(x int)");
  m.sql("INSERT INTO archived SELECT generate_series(1, 1000)");
  m.sql("SELECT pg_switch_wal()");
  std::string metrics;
  ASSERT_TRUE(wait_until(
      [&] {
        metrics = m.get("/metrics").body;
        return metric_value(metrics, "pgwarden_postgres_archiver_failed_count") > 0;
      },
      30s))
      << metrics;
  EXPECT_EQ(metric_value(metrics, "pgwarden_postgres_archiver_archived_count"), 0);
  EXPECT_GT(metric_value(metrics, "pgwarden_postgres_archiver_last_failed_time"), 1600000000) << metrics;
  EXPECT_NE(metrics.find("pgwarden_postgres_archiver_failed_count{scope=\"bkarch\",name=\"node1\"}"),
            std::string::npos);
}

TEST(BackupApi, SidecarServesTheSameApi) {
  EtcdServer etcd;
  PgBackRestRepo repo;
  MemberOptions o = backup_member(repo, 1, 0);
  o.extra_yaml.clear();  // no backup API in the daemon: the sidecar serves it
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 90s)) << m.log();

  int port = free_port();
  std::map<std::string, std::string> env;
  for (const auto& [k, v] : repo.member_env()) env[k] = m.expand(v);
  TempDir dir("pgwarden-sidecar");
  Child sidecar({PGWARDEN_BINARY, "backup-server", "--listen", "127.0.0.1:" + std::to_string(port), "--api-url",
                 "http://127.0.0.1:" + std::to_string(m.api_port()), "--loglevel", "debug"},
                env_with(env), dir.file("sidecar.log"), true);
  ASSERT_TRUE(wait_until([&] { return http_request("GET", "127.0.0.1", port, "/backups").status == 200; }, 30s))
      << sidecar.log();

  json full = run_backup(port, "full", sidecar.log() + "\n" + m.log());
  ASSERT_TRUE(full.is_object());
  EXPECT_EQ(full["pgbackrest"].value("type", ""), "full");
  EXPECT_EQ(repo.backup_count(), 1u);
  json list = get_json(port, "/backups/");
  ASSERT_EQ(list.size(), 1u) << list.dump(2);
  EXPECT_EQ(list[0]["status"], "FINISHED");

  // SIGTERM ends it cleanly.
  sidecar.signal(SIGTERM);
  EXPECT_EQ(sidecar.wait(15s), 0) << sidecar.log();
}

TEST(BackupApi, SidecarRefusesWhenTheMemberIsNotReachable) {
  int port = free_port();
  int nobody = free_port();
  TempDir dir("pgwarden-sidecar");
  Child sidecar({PGWARDEN_BINARY, "backup-server", "--listen", "127.0.0.1:" + std::to_string(port), "--api-url",
                 "http://127.0.0.1:" + std::to_string(nobody), "--stanza", "poddb", "--command", "/bin/false"},
                env_with({}), dir.file("sidecar.log"), true);
  ASSERT_TRUE(wait_until([&] { return http_request("GET", "127.0.0.1", port, "/backups").status == 200; }, 30s))
      << sidecar.log();
  auto r = post_backup(port, "{}");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("cannot be determined"), std::string::npos) << r.body;
  sidecar.signal(SIGTERM);
  EXPECT_EQ(sidecar.wait(15s), 0) << sidecar.log();
}

}  // namespace
}  // namespace pgwarden::test
