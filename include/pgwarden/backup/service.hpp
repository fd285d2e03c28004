#pragma once
// The backup API's I/O: runs pgbackrest (stanza-create, then backup) on a thread of its own,
// keeps the history (refreshed from `pgbackrest info`), and answers requests through the pure
// router of backup_api.hpp. A failing pgbackrest is a FAILED backup, never an error of the
// caller; a failing `info` is logged.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pgwarden/backup/backup_api.hpp"
#include "pgwarden/ha/node_view.hpp"
#include "pgwarden/util/process.hpp"

namespace pgwarden::backup {

struct ServiceOptions {
  std::string stanza = "poddb";
  std::string command = "pgbackrest";  // program (PATH lookup without '/')
  util::Environment env;               // pgbackrest's complete environment
  // Asked on every POST; only kPrimary may start a backup.
  std::function<RoleProbe()> probe_role;
  std::chrono::milliseconds start_wait{1000};  // how long a POST waits for a quick backup
  std::chrono::seconds info_max_age{60};       // a GET re-reads `info` when it is older
  std::chrono::milliseconds info_timeout{60000};
};

class BackupService {
 public:
  explicit BackupService(ServiceOptions options);
  // Ends a running backup as shutdown() does, with a 10 s grace.
  ~BackupService();
  BackupService(const BackupService&) = delete;
  BackupService& operator=(const BackupService&) = delete;

  // Answers one request (any thread). POST may block up to start_wait.
  api::HttpResponse handle(const api::HttpRequest& req);
  // Re-reads `pgbackrest info --output=json` into the history. A failure is logged and leaves
  // the history as it was; returns whether it worked.
  bool refresh_history();
  // Refuses new backups; a running pgbackrest gets SIGTERM (its process group), SIGKILL
  // after `grace`; returns when its thread has ended.
  void shutdown(std::chrono::milliseconds grace);

  // For tests and logs: a copy of the history.
  std::vector<BackupRecord> history() const;

 private:
  void run_backup(std::string label, std::string type);
  // Runs one pgbackrest step to its end (or until shutdown); returns its exit code (127 when
  // it cannot start) and appends its output to `output`.
  int run_step(const std::string& label, const std::vector<std::string>& args, std::string& output);
  void finish(const std::string& label, int code, const std::string& output);
  BackupRecord* find_locked(const std::string& label);

  ServiceOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<BackupRecord> history_;
  bool stopping_ = false;
  std::chrono::milliseconds shutdown_grace_{10000};
  std::thread runner_;
  std::chrono::steady_clock::time_point info_read_at_{};
  bool info_read_ = false;
  std::mutex refresh_mu_;  // one `pgbackrest info` at a time
};

// The stanza to use: the configured one, else $PGBACKREST_STANZA, else "poddb".
std::string resolve_stanza(const std::string& configured, const util::Environment& env);

// The role as the daemon's HA loop last published it: master/primary may back up.
RoleProbe role_from_view(const ha::NodeView& view);
// The role from a Patroni status document (GET /patroni): its `role` field.
RoleProbe role_from_status(const std::string& body);
// Sidecar mode: GET <api_url>/patroni of the local pgwarden or Patroni (and, on a replica,
// /cluster for the leader's name). Unknown when it cannot be reached within `timeout`.
RoleProbe probe_role_over_http(const std::string& api_url, std::chrono::milliseconds timeout);

}  // namespace pgwarden::backup
