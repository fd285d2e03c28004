// The backup runner against a fake pgbackrest (a shell script that logs its arguments):
// the order of the steps, 200/202/500 answers, unique labels, 409, the history from `info`,
// and shutdown ending a running backup.
#include "pgwarden/backup/service.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "support/harness.hpp"
#include "request.hpp"

namespace pgwarden::backup {
namespace {

using nlohmann::json;
using test::read_file;
using test::TempDir;
using test::write_file;

// A fake pgbackrest: appends its arguments to calls.log; `backup` sleeps $FAKE_SLEEP then
// exits $FAKE_EXIT after a line on stderr; `info` prints info.json (exit 1 without it).
std::string fake_pgbackrest(const TempDir& dir) {
  std::string path = dir.file("pgbackrest");
  write_file(path, R"(#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/calls.log"
for a in "$@"; do
  case "$a" in
    info) [ -f "$d/info.json" ] || { echo "ERROR: [055]: no info" >&2; exit 1; }; cat "$d/info.json"; exit 0;;
    stanza-create) [ -n "$FAKE_STANZA_EXIT" ] && { echo "ERROR: stanza" >&2; exit "$FAKE_STANZA_EXIT"; }; exit 0;;
    backup)
      sleep "${FAKE_SLEEP:-0}"
      i=0; while [ $i -lt 25 ]; do echo "WARN: line $i" >&2; i=$((i+1)); done
      echo "ERROR: [056]: last words" >&2
      exit "${FAKE_EXIT:-0}";;
  esac
done
exit 0
)",
             0755);
  return path;
}

using test_support::request;

ServiceOptions options(const TempDir& dir, util::Environment extra, RoleProbe::Role role = RoleProbe::Role::kPrimary) {
  ServiceOptions o;
  o.stanza = "poddb";
  o.command = fake_pgbackrest(dir);
  o.env = util::current_environment();
  for (auto& [k, v] : extra) o.env[k] = v;
  o.probe_role = [role] { return RoleProbe{role, "node1", ""}; };
  return o;
}

std::string header(const api::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

TEST(BackupService, QuickBackupAnswers200AfterStanzaCreate) {
  TempDir dir("pgwarden-backup");
  BackupService svc(options(dir, {}));
  auto r = svc.handle(request("POST", "/backups/", R"({"type": "diff"})"));
  ASSERT_EQ(r.status, 200) << r.body;
  json d = json::parse(r.body);
  EXPECT_EQ(d["status"], "FINISHED");
  EXPECT_EQ(d["returncode"], 0);
  EXPECT_EQ(d["type"], "diff");
  EXPECT_TRUE(d["pid"].is_number());
  std::string calls = read_file(dir.file("calls.log"));
  auto create = calls.find("--stanza=poddb --log-level-console=off --log-level-stderr=warn stanza-create");
  auto backup = calls.find("--stanza=poddb --log-level-console=off --log-level-stderr=warn backup --type=diff");
  ASSERT_NE(create, std::string::npos) << calls;
  ASSERT_NE(backup, std::string::npos) << calls;
  EXPECT_LT(create, backup);
}

TEST(BackupService, FailureIs500WithReturnCodeAndStderrTail) {
  TempDir dir("pgwarden-backup");
  BackupService svc(options(dir, {{"FAKE_EXIT", "3"}}));
  auto r = svc.handle(request("POST", "/backups"));
  ASSERT_EQ(r.status, 500) << r.body;
  json d = json::parse(r.body);
  EXPECT_EQ(d["status"], "FAILED");
  EXPECT_EQ(d["returncode"], 3);
  std::string err = d["stderr"];
  EXPECT_NE(err.find("ERROR: [056]: last words"), std::string::npos) << err;
  EXPECT_EQ(err.find("WARN: line 0\n"), std::string::npos) << "only the tail is kept";
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 20);
}

TEST(BackupService, FailingStanzaCreateFailsTheBackup) {
  TempDir dir("pgwarden-backup");
  BackupService svc(options(dir, {{"FAKE_STANZA_EXIT", "28"}}));
  auto r = svc.handle(request("POST", "/backups"));
  ASSERT_EQ(r.status, 500) << r.body;
  EXPECT_EQ(json::parse(r.body)["returncode"], 28);
  EXPECT_EQ(read_file(dir.file("calls.log")).find(" backup "), std::string::npos);
}

TEST(BackupService, SlowBackupIs202Then409ThenFinished) {
  TempDir dir("pgwarden-backup");
  auto o = options(dir, {{"FAKE_SLEEP", "2"}});
  o.start_wait = std::chrono::milliseconds(200);
  BackupService svc(o);
  auto r = svc.handle(request("POST", "/backups/", R"({"type": "full"})"));
  ASSERT_EQ(r.status, 202) << r.body;
  json d = json::parse(r.body);
  EXPECT_EQ(d["status"], "RUNNING");
  EXPECT_TRUE(d["returncode"].is_null());
  const std::string location = header(r, "Location");
  EXPECT_EQ(location, "/backups/backup/" + d["label"].get<std::string>());

  auto again = svc.handle(request("POST", "/backups/", R"({"type": "incr"})"));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(header(again, "Location"), location);

  ASSERT_TRUE(
      test::wait_until([&] { return json::parse(svc.handle(request("GET", location)).body)["status"] == "FINISHED"; },
                       std::chrono::seconds(10)));
}

TEST(BackupService, BackupsInTheSameSecondGetDistinctLabels) {
  TempDir dir("pgwarden-backup");
  BackupService svc(options(dir, {}));
  std::set<std::string> labels;
  for (int i = 0; i < 3; ++i) {
    auto r = svc.handle(request("POST", "/backups/"));
    ASSERT_EQ(r.status, 200) << r.body;
    labels.insert(json::parse(r.body)["label"].get<std::string>());
  }
  EXPECT_EQ(labels.size(), 3u);
  EXPECT_EQ(svc.history().size(), 3u);
}

TEST(BackupService, ReplicaStartsNothing) {
  TempDir dir("pgwarden-backup");
  BackupService svc(options(dir, {}, RoleProbe::Role::kReplica));
  auto r = svc.handle(request("POST", "/backups/", R"({"type": "full"})"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["error"], "this member is a replica; backups run on the primary (node1)");
  EXPECT_FALSE(test::file_exists(dir.file("calls.log")) &&
               read_file(dir.file("calls.log")).find("backup --type") != std::string::npos);
  EXPECT_TRUE(svc.history().empty());
}

TEST(BackupService, HistoryFromInfoAndFailingInfoIsHarmless) {
  TempDir dir("pgwarden-backup");
  BackupService svc(options(dir, {}));
  EXPECT_FALSE(svc.refresh_history());  // no info.json: exit 1, logged
  EXPECT_EQ(svc.handle(request("GET", "/backups")).body, "[]\n");
  write_file(dir.file("info.json"), R"([{"name": "poddb", "backup": [
      {"label": "20190904-071709F", "type": "full", "timestamp": {"start": 1567581429, "stop": 1567581433}}]}])");
  EXPECT_TRUE(svc.refresh_history());
  auto r = svc.handle(request("GET", "/backups/backup/20190904-071709F"));
  ASSERT_EQ(r.status, 200) << r.body;
  json d = json::parse(r.body);
  EXPECT_EQ(d["label"], "20190904071709");
  EXPECT_EQ(d["status"], "FINISHED");
  EXPECT_EQ(d["started"], "2019-09-04T07:17:09+00:00");
  EXPECT_EQ(d["finished"], "2019-09-04T07:17:13+00:00");
}

TEST(BackupService, ShutdownEndsARunningBackup) {
  TempDir dir("pgwarden-backup");
  auto o = options(dir, {{"FAKE_SLEEP", "30"}});
  o.start_wait = std::chrono::milliseconds(100);
  BackupService svc(o);
  auto r = svc.handle(request("POST", "/backups/"));
  ASSERT_EQ(r.status, 202) << r.body;
  // Wait until the backup step (not stanza-create) runs.
  ASSERT_TRUE(
      test::wait_until([&] { return read_file(dir.file("calls.log")).find("backup --type=full") != std::string::npos; },
                       std::chrono::seconds(5)));
  auto t0 = std::chrono::steady_clock::now();
  svc.shutdown(std::chrono::seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(6));
  auto h = svc.history();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].status, BackupStatus::kFailed);
  EXPECT_TRUE(h[0].returncode.has_value());
  EXPECT_EQ(svc.handle(request("POST", "/backups/")).status, 503);
}

}  // namespace
}  // namespace pgwarden::backup
