#pragma once
// A new cluster made by a user's script instead of initdb (`bootstrap.method: <name>` with
// `bootstrap.<name>.command`), as Patroni's Bootstrap._custom_bootstrap: typically a restore
// from a pgBackRest backup (the timescaledb-single chart's restore_or_initdb). Running the
// script and preparing what it left for the first start live here; starting PostgreSQL,
// waiting for the end of recovery and the DCS are the executor's job.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"
#include "pgwarden/util/process.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::postgres {

// The script's argv: its command shell-split, then `--scope=<scope> --datadir=<data_dir>`
// unless no_params. Unlike replica methods, the section's other keys are not passed (Patroni
// does not either). Invalid when the command does not split or is empty.
Result<std::vector<std::string>> custom_bootstrap_argv(const config::Config& cfg, const config::CustomMethod& method);

// Runs the script to completion with `env`; Failed with its exit code and output tail when it
// does not exit 0. Its output is logged line by line afterwards.
Status run_custom_bootstrap(const config::Config& cfg, const util::Environment& env,
                            const config::CustomMethod& method);

// The parameter names that configure recovery (PostgreSQL 12+ takes them from the
// configuration files); Patroni strips them from postgresql.auto.conf after a restore.
bool is_recovery_parameter(const std::string& name);

// postgresql.auto.conf without its recovery settings (restore_command, recovery_target_*,
// primary_conninfo, ...); comments and every other line kept as they were.
std::string strip_recovery_settings(const std::string& auto_conf);

// How the data directory the script left is brought up.
struct RestoredStart {
  bool recovery = false;  // recovery.signal present: PostgreSQL replays WAL first, then promotes
  // Recovery parameters to write into postgresql.conf (the method's recovery_conf).
  nlohmann::json recovery_parameters = nlohmann::json::object();
  // Start with hot_standby off, as Patroni does when pgBackRest's own settings are kept or
  // the target action is promote: a point-in-time restore must not fail on parameters
  // (max_connections, ...) set lower than on the source; costs a restart after promotion.
  bool hot_standby_off = false;
};

// After the script succeeded: removes a `promote` trigger file (PostgreSQL would promote at
// once); with the method's `recovery_conf` creates recovery.signal and returns those
// parameters; otherwise, unless keep_existing_recovery_conf, removes the signal files and the
// recovery settings in postgresql.auto.conf; a kept standby.signal becomes recovery.signal so
// that recovery ends (a bootstrapped cluster must become a primary). Invalid when
// recovery_conf is not a mapping.
Result<RestoredStart> prepare_restored_data_dir(const config::Config& cfg, const config::CustomMethod& method);

// The pg_hba.conf used until the users exist: trust for the superuser and the replication
// user over the unix socket and from `local_host` (an IP address; Patroni opens the same),
// because the restored cluster's passwords are the source's, not ours.
std::vector<std::string> custom_bootstrap_hba(const config::Config& cfg, const std::string& local_host);

}  // namespace pgwarden::postgres
