// The backup API's pure part: request checks, labels, rendering, the history merged from
// `pgbackrest info --output=json`, and the routing table.
#include "pgwarden/backup/backup_api.hpp"

#include <gtest/gtest.h>

#include <set>

#include "pgwarden/backup/service.hpp"
#include "request.hpp"

namespace pgwarden::backup {
namespace {

using nlohmann::json;

constexpr double kT0 = 1567585622;  // 2019-09-04T08:27:02+00:00

// What pgBackRest 2.45 prints for a stanza with one full and one incremental backup.
const char* const kInfo = R"([{
  "archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1",
               "max": "000000010000000000000006", "min": "000000010000000000000003"}],
  "backup": [
    {"archive": {"start": "000000010000000000000003", "stop": "000000010000000000000003"},
     "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, "repo-key": 1}, "error": false,
     "info": {"delta": 25282871, "repository": {"delta": 3126024, "size": 3126024}, "size": 25282871},
     "label": "20190904-071709F", "lsn": {"start": "0/3000028", "stop": "0/3000100"},
     "prior": null, "reference": null, "timestamp": {"start": 1567581429, "stop": 1567581433}, "type": "full"},
    {"archive": {"start": "000000010000000000000005", "stop": "000000010000000000000005"},
     "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, "repo-key": 1}, "error": false,
     "info": {"delta": 8192, "repository": {"delta": 1024, "size": 3127048}, "size": 25282871},
     "label": "20190904-071709F_20190904-082702I", "lsn": {"start": "0/5000028", "stop": "0/5000100"},
     "prior": "20190904-071709F", "reference": ["20190904-071709F"],
     "timestamp": {"start": 1567585622, "stop": 1567585625}, "type": "incr"}],
  "cipher": "none",
  "db": [{"id": 1, "repo-key": 1, "system-id": 7305090123456789012, "version": "15"}],
  "name": "poddb",
  "repo": [{"cipher": "none", "key": 1, "status": {"code": 0, "message": "ok"}}],
  "status": {"code": 0, "lock": {"backup": {"held": false}}, "message": "ok"}
}])";

// ---- requests ------------------------------------------------------------------------------

struct RequestCase {
  const char* name;
  const char* body;
  int want_status;   // 0: accepted
  const char* want;  // accepted: the type; refused: a piece of the error
};
void PrintTo(const RequestCase& c, std::ostream* os) { *os << c.name; }

class BackupRequests : public ::testing::TestWithParam<RequestCase> {};

TEST_P(BackupRequests, ParsedAsThePythonTool) {
  const auto& tc = GetParam();
  BackupRequest r = parse_backup_request(tc.body);
  EXPECT_EQ(r.status, tc.want_status) << r.error;
  if (tc.want_status == 0) {
    EXPECT_EQ(r.type, tc.want);
    EXPECT_EQ(r.error, "");
  } else {
    EXPECT_NE(r.error.find(tc.want), std::string::npos) << r.error;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, BackupRequests,
    ::testing::Values(
        RequestCase{"Empty", "", 0, "full"}, RequestCase{"Blank", " \n", 0, "full"},
        RequestCase{"EmptyObject", "{}", 0, "full"}, RequestCase{"Full", R"({"type": "full"})", 0, "full"},
        RequestCase{"Incr", R"({"type": "incr"})", 0, "incr"}, RequestCase{"Diff", R"({"type": "diff"})", 0, "diff"},
        RequestCase{"CommandBackup", R"({"command": "backup"})", 0, "full"},
        RequestCase{"CommandAndType", R"({"command": "backup", "type": "diff"})", 0, "diff"},
        RequestCase{"InvalidJson", R"({"type": )", 400, "not valid JSON"},
        RequestCase{"Array", R"(["full"])", 400, "must be a JSON object"},
        RequestCase{"String", R"("full")", 400, "must be a JSON object"},
        RequestCase{"UnknownType", R"({"type": "weekly"})", 400, "unsupported backup type \"weekly\""},
        RequestCase{"TypeNotString", R"({"type": 1})", 400, "unsupported backup type 1"},
        RequestCase{"TypeCase", R"({"type": "FULL"})", 400, "unsupported backup type"},
        RequestCase{"OtherCommand", R"({"command": "restore"})", 400, "unsupported command \"restore\""},
        RequestCase{"CommandNull", R"({"command": null})", 400, "unsupported command null"},
        RequestCase{"GoodCommandBadType", R"({"command": "backup", "type": "x"})", 400, "unsupported backup type"}));

// ---- labels and times ----------------------------------------------------------------------

TEST(BackupLabels, StartTimeInUtc) {
  EXPECT_EQ(make_label(kT0, {}), "20190904082702");
  EXPECT_EQ(make_label(kT0 + 0.999, {}), "20190904082702");
  EXPECT_EQ(iso8601(kT0), "2019-09-04T08:27:02+00:00");
  EXPECT_EQ(iso8601(0), "1970-01-01T00:00:00+00:00");
}

TEST(BackupLabels, SameSecondNeverCollides) {
  std::set<std::string> taken;
  for (int i = 0; i < 4; ++i) taken.insert(make_label(kT0 + i * 0.1, taken));
  EXPECT_EQ(taken,
            (std::set<std::string>{"20190904082702", "20190904082702-1", "20190904082702-2", "20190904082702-3"}));
}

// ---- rendering -----------------------------------------------------------------------------

BackupRecord running(const std::string& label, double started) {
  BackupRecord b;
  b.label = label;
  b.type = "full";
  b.status = BackupStatus::kRunning;
  b.started = started;
  b.pid = 4242;
  b.ours = true;
  return b;
}

BackupRecord done(const std::string& label, double started, double finished, int code) {
  BackupRecord b = running(label, started);
  b.finished = finished;
  b.returncode = code;
  b.status = code == 0 ? BackupStatus::kFinished : BackupStatus::kFailed;
  return b;
}

std::set<std::string> keys(const json& o) {
  std::set<std::string> out;
  for (const auto& [k, _] : o.items()) out.insert(k);
  return out;
}

TEST(BackupRendering, RunningDetails) {
  json d = render_details(running("20190904082702", kT0), kT0 + 12.5);
  EXPECT_EQ(keys(d), (std::set<std::string>{"age", "duration", "finished", "label", "pgbackrest", "pid", "returncode",
                                            "started", "status", "type", "stderr"}));
  EXPECT_DOUBLE_EQ(d["age"].get<double>(), 12.5);
  EXPECT_DOUBLE_EQ(d["duration"].get<double>(), 12.5);  // to now while running
  EXPECT_TRUE(d["finished"].is_null());
  EXPECT_TRUE(d["returncode"].is_null());
  EXPECT_EQ(d["label"], "20190904082702");
  EXPECT_EQ(d["started"], "2019-09-04T08:27:02+00:00");
  EXPECT_EQ(d["status"], "RUNNING");
  EXPECT_EQ(d["pid"], 4242);
  EXPECT_EQ(d["pgbackrest"], json::object());
  EXPECT_EQ(d["type"], "full");
}

TEST(BackupRendering, FailedDetailsKeepStderrAndReturnCode) {
  BackupRecord b = done("20190904082702", kT0, kT0 + 3, 3);
  b.stderr_tail = "ERROR: [056]: unable to find primary cluster\n";
  json d = render_details(b, kT0 + 60);
  EXPECT_EQ(d["status"], "FAILED");
  EXPECT_EQ(d["returncode"], 3);
  EXPECT_EQ(d["finished"], "2019-09-04T08:27:05+00:00");
  EXPECT_DOUBLE_EQ(d["duration"].get<double>(), 3);
  EXPECT_DOUBLE_EQ(d["age"].get<double>(), 60);
  EXPECT_EQ(d["stderr"], "ERROR: [056]: unable to find primary cluster\n");
}

TEST(BackupRendering, SummaryNamesThePgBackRestLabel) {
  BackupRecord b = done("20190904082702", kT0, kT0 + 3, 0);
  EXPECT_EQ(render_summary(b), json::parse(R"({"label": "20190904082702", "status": "FINISHED",
      "started": "2019-09-04T08:27:02+00:00", "finished": "2019-09-04T08:27:05+00:00",
      "pgbackrest": {"label": null}})"));
  b.pgbackrest = {{"label", "20190904-082702F"}, {"type", "full"}};
  EXPECT_EQ(render_summary(b)["pgbackrest"], json::parse(R"({"label": "20190904-082702F"})"));
}

TEST(BackupRendering, PrettyJsonLikePython) {
  EXPECT_EQ(dump_pretty(json::parse(R"({"b": [1, {}], "a": null, "c": "\u00e9"})")),
            "{\n    \"a\": null,\n    \"b\": [\n        1,\n        {}\n    ],\n    \"c\": \"\\u00e9\"\n}\n");
}

// ---- history -------------------------------------------------------------------------------

TEST(BackupHistory, ForeignBackupsAreFinishedWithRepositoryTimes) {
  std::vector<BackupRecord> history;
  ASSERT_TRUE(merge_info(history, json::parse(kInfo), "poddb"));
  ASSERT_EQ(history.size(), 2u);
  const BackupRecord* full = find_backup(history, "20190904-071709F");
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(full->label, "20190904071709");
  EXPECT_EQ(full->status, BackupStatus::kFinished);
  EXPECT_EQ(full->type, "full");
  EXPECT_DOUBLE_EQ(full->started, 1567581429);
  EXPECT_EQ(full->finished, 1567581433);
  EXPECT_FALSE(full->ours);
  EXPECT_EQ(full->pgbackrest["lsn"]["start"], "0/3000028");
  const BackupRecord* latest = find_backup(history, "latest");
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->pgbackrest["label"], "20190904-071709F_20190904-082702I");
  EXPECT_EQ(latest->type, "incr");
}

TEST(BackupHistory, OurBackupGetsItsRepositoryEntry) {
  std::vector<BackupRecord> history{done("20190904082702", kT0, kT0 + 4, 0)};
  history[0].type = "incr";
  ASSERT_TRUE(merge_info(history, json::parse(kInfo), "poddb"));
  ASSERT_EQ(history.size(), 2u);  // the full one is foreign, the incr is ours
  EXPECT_EQ(history[0].label, "20190904082702");
  EXPECT_EQ(history[0].pgbackrest["label"], "20190904-071709F_20190904-082702I");
  EXPECT_EQ(find_backup(history, "20190904-071709F_20190904-082702I"), &history[0]);
}

TEST(BackupHistory, MergeIsIdempotentAndDropsExpiredForeignBackups) {
  std::vector<BackupRecord> history{done("20190904082702", kT0, kT0 + 4, 0)};
  history[0].type = "incr";
  json info = json::parse(kInfo);
  ASSERT_TRUE(merge_info(history, info, "poddb"));
  ASSERT_TRUE(merge_info(history, info, "poddb"));
  EXPECT_EQ(history.size(), 2u);
  // Expire everything: our own record stays, the foreign one goes.
  info[0]["backup"] = json::array();
  ASSERT_TRUE(merge_info(history, info, "poddb"));
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].label, "20190904082702");
}

TEST(BackupHistory, UnusableInfoLeavesTheHistory) {
  std::vector<BackupRecord> history{done("20190904082702", kT0, kT0 + 4, 0)};
  EXPECT_FALSE(merge_info(history, json::parse(kInfo), "other"));
  EXPECT_FALSE(merge_info(history, json::parse(R"({"name": "poddb"})"), "poddb"));
  EXPECT_FALSE(merge_info(history, json(), "poddb"));
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].pgbackrest, json::object());
  // A fresh stanza: no backup array at all.
  EXPECT_TRUE(merge_info(history, json::parse(R"([{"name": "poddb", "status": {"code": 1}}])"), "poddb"));
  EXPECT_EQ(history.size(), 1u);
}

TEST(BackupHistory, ForeignLabelAvoidsOurs) {
  // Our failed backup started in the same second as a foreign one of another type.
  std::vector<BackupRecord> history{done("20190904071709", 1567581429, 1567581430, 1)};
  history[0].type = "diff";
  ASSERT_TRUE(merge_info(history, json::parse(kInfo), "poddb"));
  EXPECT_NE(find_backup(history, "20190904071709-1"), nullptr);
  EXPECT_EQ(find_backup(history, "20190904071709-1")->pgbackrest["label"], "20190904-071709F");
}

// ---- routing -------------------------------------------------------------------------------

using test_support::request;

RoleProbe primary() { return RoleProbe{RoleProbe::Role::kPrimary, "node1", ""}; }

ApiSnapshot snapshot(std::vector<BackupRecord> backups, RoleProbe role = primary()) {
  ApiSnapshot s;
  s.backups = std::move(backups);
  s.role = role;
  s.now = kT0 + 100;
  return s;
}

// Two finished backups (one failed) and one foreign, as the history of a busy day.
std::vector<BackupRecord> busy_day() {
  std::vector<BackupRecord> h{done("20190904090000", kT0 + 1000, kT0 + 1010, 0),
                              done("20190904080000", kT0 - 1000, kT0 - 990, 2)};
  EXPECT_TRUE(merge_info(h, json::parse(kInfo), "poddb"));
  return h;
}

std::string header(const api::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

struct RouteCase {
  const char* name;
  const char* method;
  const char* target;
  const char* body;
  int want_status;
  bool want_start;
  const char* want_body;  // a piece of the body
};
void PrintTo(const RouteCase& c, std::ostream* os) { *os << c.name; }

class BackupRoutes : public ::testing::TestWithParam<RouteCase> {};

TEST_P(BackupRoutes, Table) {
  const auto& tc = GetParam();
  Routed r = route(request(tc.method, tc.target, tc.body), snapshot(busy_day()));
  EXPECT_EQ(r.start_type.has_value(), tc.want_start);
  if (!tc.want_start) {
    EXPECT_EQ(r.response.status, tc.want_status) << r.response.body;
    EXPECT_EQ(r.response.content_type, "application/json");
    EXPECT_NE(r.response.body.find(tc.want_body), std::string::npos) << r.response.body;
    EXPECT_FALSE(json::parse(r.response.body, nullptr, false).is_discarded());
  } else {
    EXPECT_EQ(*r.start_type, tc.want_body);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, BackupRoutes,
    ::testing::Values(
        RouteCase{"PostBackups", "POST", "/backups", R"({"type": "full"})", 0, true, "full"},
        RouteCase{"PostBackupsSlash", "POST", "/backups/", R"({"type": "incr"})", 0, true, "incr"},
        RouteCase{"PostNoBody", "POST", "/backups/", "", 0, true, "full"},
        RouteCase{"PostBadJson", "POST", "/backups/", "{", 400, false, "\"error\": \"the body is not valid JSON\""},
        RouteCase{"PostBadType", "POST", "/backups/", R"({"type": "snapshot"})", 400, false, "unsupported backup type"},
        RouteCase{"PostBadCommand", "POST", "/backups", R"({"command": "expire"})", 400, false, "unsupported command"},
        RouteCase{"PostElsewhere", "POST", "/backups/backup/latest", "", 405, false, "not allowed"},
        RouteCase{"PostUnknownPath", "POST", "/restore", "", 404, false, "not found"},
        RouteCase{"GetUnknownPath", "GET", "/", "", 404, false, "not found"},
        RouteCase{"GetUnknownLabel", "GET", "/backups/backup/20000101000000", "", 404, false,
                  "no backup 20000101000000"},
        RouteCase{"GetByLabel", "GET", "/backups/backup/20190904080000", "", 200, false, "\"returncode\": 2"},
        RouteCase{"GetByLabelSlash", "GET", "/backups/backup/20190904080000/", "", 200, false,
                  "\"status\": \"FAILED\""},
        RouteCase{"GetLatest", "GET", "/backups/backup/latest", "", 200, false, "\"label\": \"20190904090000\""},
        RouteCase{"GetByPgBackRestLabel", "GET", "/backups/backup/20190904-071709F", "", 200, false,
                  "\"label\": \"20190904071709\""},
        RouteCase{"Delete", "DELETE", "/backups/", "", 405, false, "method DELETE not allowed"}));

TEST(BackupRoutes, ListIsSortedByLabel) {
  Routed r = route(request("GET", "/backups"), snapshot(busy_day()));
  ASSERT_EQ(r.response.status, 200);
  json list = json::parse(r.response.body);
  ASSERT_EQ(list.size(), 4u);
  std::vector<std::string> labels;
  for (const auto& item : list) labels.push_back(item["label"]);
  EXPECT_EQ(labels, (std::vector<std::string>{"20190904071709", "20190904080000", "20190904082702", "20190904090000"}));
  EXPECT_EQ(keys(list[0]), (std::set<std::string>{"label", "status", "started", "finished", "pgbackrest"}));
  EXPECT_EQ(list[0]["pgbackrest"]["label"], "20190904-071709F");
  EXPECT_TRUE(list[1]["pgbackrest"]["label"].is_null());
  // The same with the trailing slash.
  EXPECT_EQ(route(request("GET", "/backups/"), snapshot(busy_day())).response.body, r.response.body);
}

TEST(BackupRoutes, StatusFilterIgnoresCase) {
  for (const char* value : {"failed", "FAILED", "Failed"}) {
    json list =
        json::parse(route(request("GET", std::string("/backups?status=") + value), snapshot(busy_day())).response.body);
    ASSERT_EQ(list.size(), 1u) << value;
    EXPECT_EQ(list[0]["label"], "20190904080000");
  }
  json finished = json::parse(route(request("GET", "/backups/?status=finished"), snapshot(busy_day())).response.body);
  EXPECT_EQ(finished.size(), 3u);
  json none = json::parse(route(request("GET", "/backups/?status=running"), snapshot(busy_day())).response.body);
  EXPECT_EQ(none, json::array());
}

TEST(BackupRoutes, ConflictWhileRunning) {
  auto h = busy_day();
  h.push_back(running("20190904091000", kT0 + 2000));
  Routed r = route(request("POST", "/backups/", R"({"type": "incr"})"), snapshot(h));
  EXPECT_FALSE(r.start_type);
  EXPECT_EQ(r.response.status, 409);
  EXPECT_EQ(json::parse(r.response.body), json::parse(R"({"error": "backup in progress"})"));
  EXPECT_EQ(header(r.response, "Location"), "/backups/backup/20190904091000");
  // GET latest shows the running one.
  Routed latest = route(request("GET", "/backups/backup/latest"), snapshot(h));
  EXPECT_EQ(json::parse(latest.response.body)["status"], "RUNNING");
}

TEST(BackupRoutes, OnlyThePrimaryStartsBackups) {
  Routed replica = route(request("POST", "/backups/", R"({"type": "full"})"),
                         snapshot({}, RoleProbe{RoleProbe::Role::kReplica, "node1", ""}));
  EXPECT_FALSE(replica.start_type);
  EXPECT_EQ(replica.response.status, 503);
  EXPECT_EQ(json::parse(replica.response.body)["error"],
            "this member is a replica; backups run on the primary (node1)");

  Routed unknown = route(request("POST", "/backups/"), snapshot({}, RoleProbe{RoleProbe::Role::kUnknown, "", "x"}));
  EXPECT_FALSE(unknown.start_type);
  EXPECT_EQ(unknown.response.status, 503);
  EXPECT_NE(json::parse(unknown.response.body)["error"].get<std::string>().find("cannot be determined (x)"),
            std::string::npos);

  // GETs work on any member.
  Routed get = route(request("GET", "/backups/backup/latest"),
                     snapshot(busy_day(), RoleProbe{RoleProbe::Role::kReplica, "node1", ""}));
  EXPECT_EQ(get.response.status, 200);
}

TEST(BackupResponses, StartedAnswersByOutcome) {
  auto quick_ok = started_response(done("20190904082702", kT0, kT0 + 0.5, 0), kT0 + 1);
  EXPECT_EQ(quick_ok.status, 200);
  EXPECT_EQ(json::parse(quick_ok.body)["returncode"], 0);
  auto quick_fail = started_response(done("20190904082702", kT0, kT0 + 0.5, 3), kT0 + 1);
  EXPECT_EQ(quick_fail.status, 500);
  EXPECT_EQ(json::parse(quick_fail.body)["status"], "FAILED");
  auto slow = started_response(running("20190904082702", kT0), kT0 + 1);
  EXPECT_EQ(slow.status, 202);
  EXPECT_EQ(header(slow, "Location"), "/backups/backup/20190904082702");
  EXPECT_EQ(json::parse(slow.body)["status"], "RUNNING");
}

// ---- role ----------------------------------------------------------------------------------

TEST(BackupRole, FromTheNodeView) {
  ha::NodeView v;
  v.role = "master";
  v.is_leader = true;
  EXPECT_EQ(role_from_view(v).role, RoleProbe::Role::kPrimary);
  v.is_leader = false;
  EXPECT_EQ(role_from_view(v).role, RoleProbe::Role::kUnknown);
  v.role = "replica";
  dcs::Cluster c;
  c.leader = dcs::Leader{};
  c.leader->name = "node2";
  v.cluster = std::make_shared<const dcs::Cluster>(c);
  RoleProbe p = role_from_view(v);
  EXPECT_EQ(p.role, RoleProbe::Role::kReplica);
  EXPECT_EQ(p.leader, "node2");
  v.role = "uninitialized";
  EXPECT_EQ(role_from_view(v).role, RoleProbe::Role::kUnknown);
}

TEST(BackupRole, FromTheStatusDocument) {
  EXPECT_EQ(role_from_status(R"({"state": "running", "role": "master"})").role, RoleProbe::Role::kPrimary);
  EXPECT_EQ(role_from_status(R"({"role": "primary"})").role, RoleProbe::Role::kPrimary);
  EXPECT_EQ(role_from_status(R"({"role": "replica"})").role, RoleProbe::Role::kReplica);
  EXPECT_EQ(role_from_status(R"({"state": "stopped"})").role, RoleProbe::Role::kUnknown);
  EXPECT_EQ(role_from_status("not json").role, RoleProbe::Role::kUnknown);
}

TEST(BackupStanza, ConfiguredThenEnvironmentThenDefault) {
  EXPECT_EQ(resolve_stanza("mine", {{"PGBACKREST_STANZA", "env"}}), "mine");
  EXPECT_EQ(resolve_stanza("", {{"PGBACKREST_STANZA", "env"}}), "env");
  EXPECT_EQ(resolve_stanza("", {}), "poddb");
}

}  // namespace
}  // namespace pgwarden::backup
