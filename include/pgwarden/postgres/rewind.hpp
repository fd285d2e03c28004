#pragma once
// pg_rewind of a former primary onto the new primary's timeline, with the crash recovery
// pg_rewind needs first (Patroni's Rewind.ensure_clean_shutdown + Rewind.execute). Deciding
// *whether* to rewind (timeline/LSN comparison) and what to do when it fails
// (remove_data_directory_on_rewind_failure) belongs to the HA loop.
#include <map>
#include <string>

#include "pgwarden/config/config.hpp"
#include "pgwarden/util/process.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::postgres {

// pg_controldata of cfg.postgresql.data_dir as label -> value ("Database cluster state" ->
// "shut down"), C locale. Empty when it cannot run.
std::map<std::string, std::string> control_data_map(const config::Config& cfg, const util::Environment& env);

// Effective use_pg_rewind: the local postgresql.use_pg_rewind wins over the dynamic one.
bool rewind_enabled(const config::Config& cfg);

// pg_rewind exists and the cluster keeps hint-bit WAL (data checksums or wal_log_hints=on),
// without which pg_rewind refuses. Does not look at use_pg_rewind (see rewind_enabled).
bool can_rewind(const config::Config& cfg, const util::Environment& env);

// libpq string for pg_rewind's --source-server: host/port from conn_url, the rewind user when
// configured (else the superuser), dbname=postgres, its extra keywords,
// target_session_attrs=read-write. No password (PGPASSFILE / PGPASSWORD carry it).
std::string rewind_source_conninfo(const config::Config& cfg, const std::string& conn_url);

// Rewinds the stopped local data directory from the primary at `source_conn_url`:
//  * Conflict when PostgreSQL is running, Invalid when can_rewind() is false;
//  * a cluster not shut down cleanly ("in production", ...) first gets crash recovery in
//    single-user mode (archive_command=false so no WAL is lost, signals removed);
//  * the source must be out of recovery; when connecting as the superuser a CHECKPOINT is
//    run there first so its pg_control shows the new timeline (Unavailable otherwise);
//  * pg_rewind runs; its output is in the Status on failure.
// pg_rewind copies the source's configuration files: postgresql.conf, postgresql.base.conf,
// pg_hba.conf and pg_ident.conf of the target are put back afterwards. The caller then writes
// standby.signal and the recovery parameters and starts it as a standby.
// `restore_target_wal`: the target's configuration files carry a restore_command (the caller
// wrote them); pg_rewind then fetches target WAL that pg_wal no longer has with it
// (--restore-target-wal, and --config-file when the configuration lives outside the data
// directory), as Patroni does when a restore_command is configured.
Status rewind(const config::Config& cfg, const util::Environment& env, const std::string& source_conn_url,
              bool restore_target_wal = false);

}  // namespace pgwarden::postgres
