#pragma once
// Standby/recovery files and pg_control facts (PostgreSQL 12+ style: signal files plus
// recovery parameters in postgresql.conf).
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
  std::optional<int64_t> checkpoint_location;
  std::string cluster_state;
  int timeline = 0;
};
ControlData read_control_data(const config::Config& cfg, const util::Environment& env);

}  // namespace pgwarden::postgres
