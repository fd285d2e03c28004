#pragma once
// The pgBackRest backup API of the timescaledb-single chart (the semantics of
// timescaledb-docker-ha's pgbackrest-rest.py), as pure functions: request checks, labels, the
// JSON of a backup, the history merged from `pgbackrest info --output=json`, and the routing
// of one request against a snapshot of the state. Nothing here starts a process or reads a
// clock; service.hpp does that.
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pgwarden/api/router.hpp"

namespace pgwarden::backup {

enum class BackupStatus { kRunning, kFinished, kFailed };
std::string status_name(BackupStatus s);  // RUNNING, FINISHED, FAILED

// One backup this process started, or one found in the pgBackRest repository.
struct BackupRecord {
  std::string label;  // %Y%m%d%H%M%S of the start in UTC, "-N" appended on a collision
  std::string type;   // full | incr | diff
  BackupStatus status = BackupStatus::kRunning;
  double started = 0;                                    // epoch seconds
  std::optional<double> finished;                        // epoch seconds
  std::optional<int> pid;                                // of pgbackrest (ours only)
  std::optional<int> returncode;                         // unset while running
  std::string stderr_tail;                               // last lines pgbackrest wrote (ours only)
  nlohmann::json pgbackrest = nlohmann::json::object();  // the `info` entry of this backup
  bool ours = false;                                     // started by this process
};

// A POST /backups body checked: `status` 0 means start a backup of `type`, else the answer is
// `status` (400) with `error`.
struct BackupRequest {
  int status = 0;
  std::string error;
  std::string type = "full";
};
// Empty or whitespace body: a full backup. Otherwise a JSON object with optional "type"
// (full, incr, diff) and optional "command" (only "backup").
BackupRequest parse_backup_request(const std::string& body);

// "%Y%m%d%H%M%S" of `epoch` in UTC; when taken, "-1", "-2", ... appended until it is free.
std::string make_label(double epoch, const std::set<std::string>& taken);

// "2019-09-04T08:27:02+00:00" (Python's isoformat of an aware datetime, seconds precision).
std::string iso8601(double epoch);

// GET /backups/backup/<label>: age, duration, finished, label, pgbackrest, pid, returncode,
// started, status, type, stderr. `now` in epoch seconds.
nlohmann::json render_details(const BackupRecord& b, double now);
// One item of GET /backups: label, status, started, finished, pgbackrest: {label}.
nlohmann::json render_summary(const BackupRecord& b);
// JSON as Python's json.dumps(obj, indent=4, sort_keys=True) + "\n".
std::string dump_pretty(const nlohmann::json& doc);

// Merges `pgbackrest info --output=json` (an array of stanzas) into `history`: each record
// of ours gets its repository entry (matched by pgBackRest label, or by type and a start time
// within its run), and a backup nobody here started is added as FINISHED with started and
// finished from its timestamps (label from its start). Returns false when `info` has no
// usable stanza `stanza`; `history` is then unchanged.
bool merge_info(std::vector<BackupRecord>& history, const nlohmann::json& info, const std::string& stanza);

// Who may run a backup: only the primary.
struct RoleProbe {
  enum class Role { kPrimary, kReplica, kUnknown };
  Role role = Role::kUnknown;
  std::string leader;  // the leader's name when known
  std::string detail;  // why the role is unknown
};

// What the router sees: the history (any order) and this member's role.
struct ApiSnapshot {
  std::vector<BackupRecord> backups;
  RoleProbe role;
  double now = 0;
};

// The answer to one request. `start_type` set: a POST was accepted and the caller must start
// a backup of that type and answer with started_response() (or conflict_response()).
struct Routed {
  api::HttpResponse response;
  std::optional<std::string> start_type;
};
Routed route(const api::HttpRequest& req, const ApiSnapshot& snapshot);

// After a start: 200 (finished, returncode 0) or 500 (failed) with the details when it ended
// within the wait, else 202 with Location: /backups/backup/<label>.
api::HttpResponse started_response(const BackupRecord& b, double now);
// 409 {"error": "backup in progress"} with the Location of the running one.
api::HttpResponse conflict_response(const BackupRecord& running);
// {"error": message} with `status`.
api::HttpResponse error_response(int status, const std::string& message);

// The record GET /backups/backup/<key> means: "latest" (the most recent start), a label of
// ours, or a pgBackRest label. Null when none.
const BackupRecord* find_backup(const std::vector<BackupRecord>& backups, const std::string& key);

}  // namespace pgwarden::backup
