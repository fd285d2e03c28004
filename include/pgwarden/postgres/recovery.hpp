#pragma once
// Standby/recovery files and pg_control facts (PostgreSQL 12+ style: signal files plus
// recovery parameters in postgresql.conf).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "pgwarden/config/config.hpp"
#include "pgwarden/util/process.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::postgres {

// Creates <data_dir>/standby.signal so PostgreSQL starts read-only.
Status write_standby_signal(const std::string& data_dir);
// Removes standby.signal and recovery.signal (start read-write).
Status remove_recovery_signals(const std::string& data_dir);
bool has_standby_signal(const std::string& data_dir);

// Facts read from pg_controldata: "Latest checkpoint location" (bytes) and the cluster
// state line ("in production", "shut down", ...). nullopt/empty when unavailable.
struct ControlData {
  bool ok = false;                         // pg_controldata ran and answered
  std::optional<int64_t> checkpoint_location;
  std::string cluster_state;
  int timeline = 0;
  std::string system_identifier;
  // Last a primary: "in production" (crashed) or "shut down" (clean), as opposed to the
  // "... in recovery" states of a standby.
  bool was_primary() const { return cluster_state == "in production" || cluster_state == "shut down"; }
};
ControlData read_control_data(const config::Config& cfg, const util::Environment& env);

// Patroni's history entries for the switches recorded in <data_dir>/pg_wal/<tl>.history:
// [[timeline, switch_lsn, reason], ...] (timestamps and leader names are added by the caller
// for the newest switch only). Empty when the file is missing (timeline 1).
nlohmann::json read_timeline_history(const std::string& data_dir, int timeline);

}  // namespace pgwarden::postgres
