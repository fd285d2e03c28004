#pragma once
// Performs a Decision's actions against the DCS and PostgreSQL, in order, stopping at the
// first failure. The only HA code that does I/O besides the loop that feeds it.
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"
#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/ha/decision.hpp"
#include "pgwarden/ha/snapshot.hpp"
#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/callbacks.hpp"

namespace pgwarden::ha {

struct Outcome {
  Status status;               // first failure, or Ok
  bool holds_lock = false;     // we own the leader key after these actions
  bool fatal = false;          // the daemon must exit (failed bootstrap), as Patroni does
  bool bootstrap_failed = false;
  // How the restart (kRestart, or the start a restart request rides on) went; unset when it
  // did not run.
  std::optional<Status> restart_status;
};

class Executor {
 public:
  Executor(const config::Config& cfg, const util::Environment& pg_env, dcs::Dcs& dcs, postgres::Postgres& pg,
           util::CallbackExecutor& callbacks)
      : cfg_(cfg), pg_env_(pg_env), dcs_(dcs), pg_(pg), callbacks_(callbacks) {}

  Outcome execute(const Decision& d, const Snapshot& s);

  // Asked during long waits (the end of a restored cluster's recovery): true once the daemon
  // is shutting down, so the wait gives up instead of holding the shutdown.
  void set_stop_check(std::function<bool()> stopping) { stopping_ = std::move(stopping); }

  // Current Patroni-style postgres state string (running, starting, initializing new
  // cluster, ...), updated while actions run; safe to read from another thread.
  std::string pg_state_hint() const;

  // Feedback for the next snapshot.
  const std::string& following() const { return following_; }
  bool rewind_failed() const { return rewind_failed_; }
  // Epoch seconds before which replica creation is not retried after every method failed.
  double replica_retry_after() const { return replica_retry_after_; }
  // The effective parameters or pg_hba differ from those the configuration files were last
  // written with (always true before the first write).
  bool config_stale(const config::DynamicConfig& dyn) const;
  // The same, given effective_parameters(cfg, dyn) already computed.
  bool config_stale(const config::DynamicConfig& dyn, const nlohmann::json& effective) const;
  // Moves whenever the configuration files are written (config_stale's answer may change).
  uint64_t config_writes() const { return config_writes_; }

 private:
  Status bootstrap(const Snapshot& s, Outcome& out);
  Status custom_bootstrap(const Snapshot& s);
  Status wait_for_end_of_recovery();
  Status start(bool as_primary, const Snapshot& s);
  Status start(bool as_primary, const Snapshot& s, std::chrono::milliseconds timeout, const char* callback);
  void settle_pending_start(const Snapshot& s);
  Status write_config(bool as_primary, const Snapshot& s);
  Status restart(const Snapshot& s, int timeout_seconds);
  Status reinitialize(const Snapshot& s);
  Status reload_config(const Snapshot& s);
  Status promote(const Snapshot& s);
  Status demote(const Snapshot& s);
  Status step_down();
  Status follow(const Snapshot& s);
  Status create_replica(const Snapshot& s);
  Status reclone(const Snapshot& s);
  Status rewind(const Snapshot& s);
  Status sync_slots(const Snapshot& s);
  void record_history(const Snapshot& s);
  std::string leader_conn_url(const Snapshot& s) const;
  nlohmann::json parameters_for(bool as_primary, const Snapshot& s) const;
  std::vector<std::string> pg_hba(const Snapshot& s) const;
  std::chrono::milliseconds start_timeout(const Snapshot& s) const;
  std::chrono::milliseconds pg_ctl_timeout() const;  // stop/promote: pg_ctl_timeout, at least 10 s

  const config::Config& cfg_;
  const util::Environment& pg_env_;
  dcs::Dcs& dcs_;
  postgres::Postgres& pg_;
  util::CallbackExecutor& callbacks_;
  void set_state(const std::string& state);
  mutable std::mutex state_mu_;
  std::string state_hint_;
  std::function<bool()> stopping_;
  // A custom bootstrap started PostgreSQL with hot_standby off for its recovery.
  bool restart_after_bootstrap_ = false;
  std::string following_;
  // A standby start was still under way when its wait ended: on_start is still due.
  bool start_pending_ = false;
  bool rewind_failed_ = false;
  double replica_retry_after_ = 0;
  // What the configuration files were last written from.
  std::optional<nlohmann::json> written_parameters_;
  std::vector<std::string> written_hba_;
  uint64_t config_writes_ = 0;
};

}  // namespace pgwarden::ha
