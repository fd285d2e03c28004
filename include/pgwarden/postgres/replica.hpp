#pragma once
// Creating a replica's data directory: the configured create_replica_methods tried in order
// (built-in pg_basebackup or custom scripts), as Patroni's Bootstrap.create_replica.
// Starting the result as a standby (configuration, standby.signal) is the caller's job.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"
#include "pgwarden/util/process.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::postgres {

struct CloneSource {
  std::string conn_url;  // postgres://host:port/db of the member to clone from; empty when no leader
  // When set, pg_basebackup creates this physical slot on the source before copying (or
  // uses it if it exists), so the new replica streams through its slot the moment it starts
  // instead of waiting for the leader's next cycle to create it.
  std::string slot_name;
};

// A member's conn_url taken apart. IPv6 hosts lose their brackets; the port defaults to 5432,
// the database to "postgres". nullopt when it is not a postgres:// or postgresql:// URL.
struct ConnUrl {
  std::string host;
  int port = 5432;
  std::string dbname = "postgres";
};
std::optional<ConnUrl> parse_conn_url(const std::string& conn_url);

// libpq keyword/value string to reach `conn_url` as the replication user:
// "host=H port=P user=<repl> dbname=<db> application_name=<name> sslmode=prefer
// [passfile=<pgpass>]" plus postgresql.authentication.replication's extra keywords (which
// may override sslmode). Never contains a password. Empty when conn_url does not parse.
// Used for pg_basebackup's --dbname, custom methods' --connstring and primary_conninfo.
std::string replica_conninfo(const config::Config& cfg, const std::string& conn_url);

// postgresql.basebackup as pg_basebackup options: "opt" -> --opt, {k: v} -> --k=v (list of
// single-key maps or one map). The options pgwarden sets itself (pgdata, format, wal-method,
// ...) and malformed entries are skipped, each with a line in `warnings` (may be null).
std::vector<std::string> basebackup_options(const nlohmann::json& options, std::vector<std::string>* warnings);

// pg_basebackup's full argv (program first, from bin_dir or PATH): --pgdata, -X stream,
// --checkpoint=fast (a spread checkpoint can delay the clone by checkpoint_timeout), --dbname,
// then the user's options (later options win, so a user's --checkpoint=spread still works).
std::vector<std::string> basebackup_argv(const config::Config& cfg, const std::string& conninfo,
                                         std::vector<std::string>* warnings = nullptr);

// A custom method's argv: its command shell-split; then every extra key as --key=value; then,
// unless no_params, --scope --role=replica --datadir --connstring. Invalid when the command
// does not split (unterminated quote) or is empty.
Result<std::vector<std::string>> custom_method_argv(const config::Config& cfg, const config::CustomMethod& method,
                                                    const std::string& conninfo);

// Tries cfg.postgresql.create_replica_methods in order and returns the name of the one that
// worked. Without a source (empty conn_url) only methods flagged no_master/no_leader are
// tried, never basebackup. pg_basebackup gets two attempts.
//
// The pgpass file (cfg.postgresql.pgpass) is written here before anything runs, so the
// tools find the replication password through PGPASSFILE; callers need not do it.
//
// Data directory rule (never delete what we did not create): content that was there before a
// method ran is moved aside (<data_dir>.failed_<time>) unless the method is keep_data; partial
// content left by a failed method that started from an empty directory is ours and removed.
// Failed lists every method's error.
Result<std::string> create_replica(const config::Config& cfg, const util::Environment& env, const CloneSource& src);

}  // namespace pgwarden::postgres
