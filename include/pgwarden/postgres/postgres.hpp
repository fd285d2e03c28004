#pragma once
// Runs and inspects the local PostgreSQL: initdb, configuration files, pg_ctl start/stop/
// promote, state queries over libpq. Knows nothing about leaders or the DCS.
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"
#include "pgwarden/util/process.hpp"
#include "pgwarden/util/status.hpp"

struct pg_conn;  // libpq's PGconn

namespace pgwarden::postgres {

// A physical, non-temporary replication slot on the server.
struct PhysicalSlot {
  std::string name;
  bool active = false;  // a standby streams from it now
  bool operator==(const PhysicalSlot&) const = default;
};

// What one SQL round trip tells about the running server.
struct PgState {
  bool in_recovery = false;
  int server_version = 0;                 // e.g. 150004
  int timeline = 0;
  int64_t wal_position = 0;               // primary: pg_current_wal_lsn; replica: max(received, replayed)
  int64_t received_location = 0;          // replica only
  int64_t replayed_location = 0;          // replica only
  std::optional<std::string> replayed_timestamp;  // str(datetime) form or nullopt
  bool replay_paused = false;
  std::string postmaster_start_time;      // "2023-08-30 13:23:45.123456+00:00"
  // pg_stat_replication rows as the server's JSON text: only the REST API shows them, so only
  // it parses them (the HA loop reads this state every cycle).
  std::string replication_json = "[]";
  std::string system_identifier;
  bool pending_restart = false;
  // pg_stat_archiver: WAL archiving (archive_command) since the statistics were reset.
  int64_t archiver_archived_count = 0;
  int64_t archiver_failed_count = 0;
  std::string archiver_last_failed_wal;   // empty: never failed
  double archiver_last_failed_time = 0;   // epoch seconds; 0: never failed
  std::vector<PhysicalSlot> physical_slots;  // sorted by name
};

// The SQL text of query_state(): one round trip that tells everything above (exposed for
// bench/ha_bench's idle-CPU floor, which sends the same query).
const char* state_query_sql();

// "0/3000060" <-> bytes.
std::optional<int64_t> parse_lsn(const std::string& text);
std::string format_lsn(int64_t lsn);

// --- Pure rendering helpers (no I/O), exposed so they can be unit-tested.

// The options PostgreSQL gets on the postmaster command line (`--name=value`), never in
// postgresql.conf, so they beat every included file (Patroni's CMDLINE_OPTIONS).
bool is_command_line_option(const std::string& name);
// A parameter value as text: strings as is, bools on/off, numbers in decimal; nullopt for null.
std::optional<std::string> parameter_text(const nlohmann::json& value);
// PostgreSQL configuration quoting: single-quoted, ' and \ doubled (Patroni quotes every value).
std::string quote_conf_value(const std::string& value);
// postgresql.conf: header comment, `include '<include_file>'`, then `parameters` sorted by name
// minus the command-line options, then hba_file/ident_file (under config_dir) unless given.
// `command_line`: the `--name=value` options PostgreSQL is started with, written with the same
// values (as Patroni does), so the file never contradicts them.
std::string render_postgresql_conf(const nlohmann::json& parameters, const std::string& include_file,
                                   const std::string& config_dir, const std::vector<std::string>& command_line = {});
// pg_hba.conf / pg_ident.conf: header comment plus one line per entry.
std::string render_lines_file(const std::vector<std::string>& lines);
// pgpass lines `*:*:*:<user>:<password>` for superuser and replication (':' and '\' escaped);
// users without a password get no line.
std::string render_pgpass(const config::PostgresqlConfig& pg);
// `--name=value` for every command-line option: listen_addresses/port from postgresql.listen,
// cluster_name from the scope, the rest from `parameters` or Patroni's defaults.
std::vector<std::string> command_line_options(const config::Config& cfg, const nlohmann::json& parameters);
// The `--name=value` options recorded in postmaster.opts (`<program> "-D" "<dir>" "--a=b" ...`):
// what the running postmaster was started with.
std::vector<std::string> parse_postmaster_opts(const std::string& text);
// Names of the `--name=value` options whose values differ between `running` and `wanted`
// (an option present on one side only counts as changed).
std::vector<std::string> changed_command_line_options(const std::vector<std::string>& running,
                                                      const std::vector<std::string>& wanted);
// The single string given to `pg_ctl -o`; pg_ctl hands it to /bin/sh, so each option is
// single-quoted for the shell.
std::string postmaster_options_string(const std::vector<std::string>& options);
// initdb's argv (program path first) from bootstrap.initdb; Invalid on a forbidden or
// malformed option.
Result<std::vector<std::string>> initdb_argv(const config::Config& cfg, const std::string& initdb_program);
// libpq keyword/value quoting for a dsn value: ' \ and space escaped with a backslash.
std::string dsn_escape(const std::string& value);

class Postgres {
 public:
  // `env` is the environment PostgreSQL and its tools are started with (already without
  // PATRONI_* / KUBERNETES_*).
  Postgres(config::Config cfg, util::Environment env);

  const config::Config& config() const { return cfg_; }
  void set_config(config::Config cfg) {
    cfg_ = std::move(cfg);
    state_conn_ = make_state_connection();  // credentials or address may have changed
    known_postmaster_ = make_known_postmaster();  // the data directory may have changed
  }

  // --- data directory
  bool data_directory_exists() const;
  bool data_directory_empty() const;       // missing counts as empty
  bool is_initialized() const;             // PG_VERSION present
  // Renames the data directory to <data_dir>.failed_<YYYY-mm-dd-HH-MM-SS>; never deletes.
  Result<std::string> move_data_directory_aside();
  // Database system identifier from pg_controldata; empty when unknown.
  std::string system_identifier() const;

  // --- bootstrap
  Status initdb();                         // bootstrap.initdb options, auth via temp trust
  // Writes postgresql.conf (renaming initdb's to postgresql.base.conf the first time),
  // pg_hba.conf, pg_ident.conf. `parameters` are the effective ones.
  Status write_configuration(const nlohmann::json& parameters, const std::vector<std::string>& pg_hba);
  Status write_pgpass();                   // 0600, superuser + replication entries
  // CREATE/ALTER superuser password, replication user, bootstrap users.
  Status create_users();
  // Runs bootstrap.post_init with the superuser connection string as first argument.
  Status run_post_init(std::chrono::milliseconds timeout);

  // --- process control
  // Live postmaster pid for our data directory (postmaster.pid checked against /proc).
  std::optional<int> postmaster_pid() const;
  bool is_running() const { return postmaster_pid().has_value(); }
  // pg_ctl start -w; refuses (kConflict) when a live postmaster already owns the directory.
  // The postmaster logs to "<data_dir>.log" (next to, not inside, PGDATA so base backups stay
  // clean). kUnavailable when pg_ctl gave up waiting but the postmaster is still starting.
  Status start(std::chrono::milliseconds timeout);
  Status stop(const std::string& mode, std::chrono::milliseconds timeout);  // smart|fast|immediate
  Status reload();
  Status promote(std::chrono::milliseconds timeout);

  // --- inspection (libpq, over the unix socket when use_unix_socket, else TCP)
  // With `accept_sent_within`, the answer to a query send_state_query() sent at most that
  // long ago stands for a fresh one (no round trip now); otherwise such an answer is dropped
  // and the server asked again.
  Result<PgState> query_state(std::optional<std::chrono::milliseconds> accept_sent_within = std::nullopt) const;
  // Sends the state query on the kept connection without waiting for its answer, which the
  // next query_state() (or any other use of that connection) takes. For the HA loop to send
  // it just before its sleep: the server answers meanwhile, and the next cycle finds the
  // answer waiting instead of waking a second time for it. Nothing is sent when the kept
  // connection is not open (the next query_state() connects) or a query is already out.
  void send_state_query() const;
  // Runs `fn` on the connection query_state() keeps (connecting when there is none; once more
  // on a fresh one when the kept one turns out broken, e.g. after a restart). For the leader's
  // per-cycle slot work: an idle leader must not start a backend every loop_wait.
  Status with_kept_connection(const std::function<Status(pg_conn*)>& fn) const;
  bool is_ready() const;                   // accepts connections
  Status execute(const std::string& sql) const;  // as superuser, for bootstrap and tests

  // libpq keyword/value connection string for the superuser (post_init's first argument).
  std::string superuser_dsn() const;
  // postgres://host:port/postgres, advertised in the member key.
  std::string connection_url() const;

  // The parameters of the last write_configuration() (start() takes the command-line
  // options from them); until then the configured dynamic + local parameters.
  nlohmann::json current_parameters() const;
  // Command-line options that would change were PostgreSQL started with `parameters` now
  // (compared with postmaster.opts); such changes need a restart. Empty when unknown.
  std::vector<std::string> command_line_changes(const nlohmann::json& parameters) const;
  // Where libpq connects for local work: socket directory or address, and port.
  std::string local_host() const;
  int local_port() const;
  std::string pgpass_path() const;
  std::string log_file() const { return cfg_.postgresql.data_dir + ".log"; }

 private:
  std::string program(const std::string& name) const;  // in bin_dir or on PATH; "" if missing
  // The checks that `pid` (from postmaster.pid) is a live postmaster of our data directory.
  std::optional<int> proved_postmaster(int pid, const std::string& dir_line, const std::string& start_line) const;
  // postmaster.opts (the running postmaster's command line), read once per postmaster.
  std::optional<std::string> postmaster_opts_text() const;
  Result<util::CommandResult> pg_ctl(std::vector<std::string> args, std::chrono::milliseconds timeout) const;

  config::Config cfg_;
  util::Environment env_;
  std::optional<nlohmann::json> parameters_;  // last given to write_configuration
  // query_state() keeps its connection between calls: a new backend (and authentication)
  // every loop_wait is most of an idle member's CPU. Shared by copies; guarded inside.
  struct StateConnection;
  std::shared_ptr<StateConnection> state_conn_;
  static std::shared_ptr<StateConnection> make_state_connection();
  // The postmaster postmaster_pid() last proved ours, held by a pidfd: while postmaster.pid
  // still names it and the pidfd says that very process lives, the proof (/proc, its command
  // line and working directory) stands, and its postmaster.opts cannot have changed. Shared
  // by copies; guarded inside.
  struct KnownPostmaster;
  std::shared_ptr<KnownPostmaster> known_postmaster_;
  // The pid of the postmaster proved last (by postmaster_pid()), 0 when none; no system call.
  int known_postmaster_pid() const;
  static std::shared_ptr<KnownPostmaster> make_known_postmaster();
};

}  // namespace pgwarden::postgres
