#pragma once
// Operator requests from the REST API to the HA loop (POST /restart, /reinitialize; a
// scheduled restart). The API never calls into the loop: it posts a request here and waits
// for the answer; the loop takes pending requests at the start of a cycle into its Snapshot,
// decide() turns them into actions, the Executor performs them and the loop completes each
// request with its answer. Thread-safe.
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::ha {

// Patroni's restart filters (restart_matches): all must hold for the restart to happen.
struct RestartFilters {
  std::string role;                  // "" any; "master" or "replica" ("primary" is read as master)
  std::string postgres_version;      // "" none; as given ("15.4"): restart only if running older
  int postgres_version_num = 0;      // the same as server_version_num (150004)
  bool restart_pending = false;      // restart only if PostgreSQL has a pending restart
  int timeout = 0;                   // seconds to wait for the start; 0: primary_start_timeout
};

// Why the filters refuse a restart of PostgreSQL in that state ("" when they allow it).
// `role` is "master" or "replica", `server_version` server_version_num.
std::string restart_mismatch(const RestartFilters& f, const std::string& role, int server_version,
                             bool pending_restart);

struct ScheduledRestart {
  RestartFilters filters;
  double at = 0;                     // epoch seconds
  std::string postmaster_start_time; // when it was scheduled; a restart since cancels it
};

// As Patroni publishes it in the member key ("scheduled_restart"): the filters given, the
// schedule in ISO 8601 and, unless `for_status` (/patroni leaves it out), the postmaster start
// time.
nlohmann::json scheduled_restart_json(const ScheduledRestart& r, bool for_status);

enum class RequestKind { kRestart, kReinitialize };

struct OperatorRequest {
  uint64_t id = 0;                   // set by the mailbox
  RequestKind kind = RequestKind::kRestart;
  RestartFilters restart;            // kRestart
  bool force = false;                // kReinitialize
};

struct RequestReply {
  int status = 503;
  std::string body;
};

class RequestMailbox {
 public:
  // --- API side.
  // Posts `r`, calls `wake` and waits up to `wait` for the loop's answer. A request the loop
  // has not taken by then is withdrawn (nothing happens) and answered 503.
  RequestReply submit(OperatorRequest r, std::chrono::milliseconds wait, const std::function<void()>& wake);
  // False when a restart is already scheduled.
  bool schedule_restart(const ScheduledRestart& r);
  // False when none was scheduled.
  bool cancel_scheduled_restart();

  // --- both sides.
  std::optional<ScheduledRestart> scheduled_restart() const;

  // --- loop side.
  std::vector<OperatorRequest> take();
  bool has_pending() const;
  void complete(uint64_t id, RequestReply reply);
  // Drops the scheduled restart if it is still the one due at `at` (done or abandoned).
  void clear_scheduled_restart(double at);

 private:
  mutable std::mutex mu_;
  std::condition_variable done_;
  uint64_t next_id_ = 1;
  std::vector<OperatorRequest> pending_;
  std::map<uint64_t, std::optional<RequestReply>> replies_;  // taken or pending, awaited
  std::optional<ScheduledRestart> scheduled_;
};

}  // namespace pgwarden::ha
