#pragma once
// Everything the HA decision looks at, as plain data: the DCS view, the local PostgreSQL,
// the dynamic configuration and the clock. Built by the loop; read by decide().
#include <cstdint>
#include <string>

#include "pgwarden/config/config.hpp"
#include "pgwarden/dcs/cluster.hpp"

namespace pgwarden::ha {

struct LocalPostgres {
  bool data_dir_empty = true;   // missing counts as empty
  bool initialized = false;     // PG_VERSION present
  bool running = false;         // a live postmaster owns the data directory
  bool query_ok = false;        // the state query answered
  bool in_recovery = false;
  int64_t wal_position = 0;
  int timeline = 0;
  std::string sysid;            // from pg_controldata; empty when unknown
};

struct Snapshot {
  std::string me;
  bool dcs_ok = false;          // the cluster below was read successfully this cycle
  dcs::Cluster cluster;
  LocalPostgres pg;
  config::DynamicConfig dyn;
  bool nofailover = false;
  bool was_leader = false;      // we held the lock at the end of the previous cycle
  bool bootstrap_allowed = true;  // false after a failed bootstrap in this process
  double now = 0;               // epoch seconds
};

}  // namespace pgwarden::ha
