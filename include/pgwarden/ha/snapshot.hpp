#pragma once
// Everything the HA decision looks at, as plain data: the DCS view, the local PostgreSQL,
// the dynamic configuration and the clock. Built by the loop; read by decide().
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"
#include "pgwarden/dcs/cluster.hpp"
#include "pgwarden/ha/peer_status.hpp"
#include "pgwarden/ha/requests.hpp"
#include "pgwarden/postgres/postgres.hpp"

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
  // The data directory was last a primary (pg_controldata says "in production" or
  // "shut down", not "... in recovery"): joining another leader needs a rewind or a clone.
  bool former_primary = false;
  int server_version = 0;       // server_version_num; 0 when unknown
  std::string postmaster_start_time;  // as the state query reports it; "" when unknown
  // A changed parameter waits for a restart: pg_settings says so, or an option given on the
  // postmaster command line (postmaster.opts) differs from the effective configuration.
  bool pending_restart = false;
  // Physical replication slots, as the state query listed them; nullopt when it did not answer.
  std::optional<std::vector<postgres::PhysicalSlot>> physical_slots;
};



struct Snapshot {
  std::string me;
  bool dcs_ok = false;          // the cluster below was read successfully this cycle
  dcs::SharedCluster cluster;  // shared with the DCS view: read with ->, changed through edit()
  LocalPostgres pg;
  config::DynamicConfig dyn;
  bool nofailover = false;
  bool was_leader = false;      // we held the lock at the end of the previous cycle
  bool bootstrap_allowed = true;  // false after a failed bootstrap in this process
  double now = 0;               // epoch seconds
  std::string initialize_location;  // where the DCS keeps `initialize` (for diagnoses)

  // Replication.
  std::string following;          // leader our primary_conninfo points at ("" for none)
  bool peers_fetched = false;     // `peers` holds this cycle's answers
  std::vector<PeerStatus> peers;    // other members' REST status during a leader race
  bool use_pg_rewind = false;     // effective (local overrides dynamic)
  bool remove_data_on_rewind_failure = false;
  bool rewind_failed = false;     // a rewind failed in this process; don't retry it
  bool can_clone_without_leader = false;  // a create_replica_method has no_master/no_leader
  bool replica_creation_failed = false;   // every method failed last time: back off

  // Operator requests (REST API) taken this cycle; each gets exactly one answer.
  std::vector<OperatorRequest> requests;
  std::optional<ScheduledRestart> scheduled_restart;
  // SIGHUP or POST /reload: rewrite the configuration files and reload PostgreSQL.
  bool reload_requested = false;
  // The effective parameters or pg_hba differ from those PostgreSQL's files were last
  // written with (a dynamic configuration change): rewrite and reload.
  bool config_stale = false;
};

}  // namespace pgwarden::ha
