// Talking to the local PostgreSQL over libpq: the per-cycle state query, bootstrap SQL
// (roles), post_init, and the connection strings pgwarden hands out. The state query keeps
// one connection between cycles (a new backend every loop_wait would be most of an idle
// member's CPU), and may be sent ahead of the cycle that reads it; a connection that broke
// with a restart is replaced on the next use. Everything else opens a connection per call.
#include <libpq-fe.h>

#include <chrono>
#include <mutex>
#include <optional>

#include <algorithm>
#include <cctype>
#include <memory>
#include <sstream>

#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/postgres/slots.hpp"
#include "pq_connect.hpp"
#include "internal.hpp"

namespace pgwarden::postgres {
namespace {


std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r\n"));
  s.erase(s.find_last_not_of(" \t\r\n") + 1);
  return s;
}

using pq::ConnPtr;
using pq::ResultPtr;


// Only the primary message: the full text can quote the statement ("LINE 1: ... PASSWORD
// '...'"), which must never reach a log.
std::string result_error(PGresult* r) {
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  return primary ? primary : "query failed";
}

bool result_ok(PGresult* r) {
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

std::string cell(PGresult* r, int col) { return PQgetisnull(r, 0, col) ? "" : PQgetvalue(r, 0, col); }
bool cell_null(PGresult* r, int col) { return PQgetisnull(r, 0, col) != 0; }
int64_t cell_int(PGresult* r, int col) { return cell_null(r, col) ? 0 : std::stoll(PQgetvalue(r, 0, col)); }
bool cell_bool(PGresult* r, int col) { return !cell_null(r, col) && PQgetvalue(r, 0, col)[0] == 't'; }

// "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) -> Python's str(datetime) of an aware UTC datetime,
// which drops the fraction when it is zero.
std::string python_datetime(std::string s) {
  if (s.size() > 7 && s.compare(s.size() - 7, 7, ".000000") == 0) s.resize(s.size() - 7);
  return s + "+00:00";
}

constexpr const char* kStateQuery = R"SQL(
SELECT pg_catalog.pg_is_in_recovery(),
  pg_catalog.current_setting('server_version_num')::int,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN
    COALESCE((SELECT CASE WHEN latest_end_lsn IS NULL THEN NULL ELSE received_tli END
              FROM pg_catalog.pg_stat_get_wal_receiver()),
             (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()))
  ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int
  END,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
  ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::bigint END,
  pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), '0/0')::bigint,
  pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::bigint,
  pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,
  pg_catalog.to_char(pg_catalog.pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),
  (SELECT COALESCE(pg_catalog.json_agg(r.*), '[]'::json) FROM
    (SELECT usename, application_name, pg_catalog.host(client_addr) AS client_addr, state, sync_state, sync_priority
     FROM pg_catalog.pg_stat_replication ORDER BY application_name) r),
  (SELECT system_identifier::text FROM pg_catalog.pg_control_system()),
  EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart),
  (SELECT archived_count FROM pg_catalog.pg_stat_archiver),
  (SELECT failed_count FROM pg_catalog.pg_stat_archiver),
  (SELECT last_failed_wal FROM pg_catalog.pg_stat_archiver),
  (SELECT pg_catalog.date_part('epoch', last_failed_time) FROM pg_catalog.pg_stat_archiver),
  (SELECT COALESCE(pg_catalog.string_agg(slot_name || CASE WHEN active THEN '+' ELSE '-' END, ',' ORDER BY slot_name), '')
     FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical' AND NOT temporary)
)SQL";

std::string quote_ident(PGconn* c, const std::string& s) {
  char* q = PQescapeIdentifier(c, s.data(), s.size());
  if (!q) return "";
  std::string out = q;
  PQfreemem(q);
  return out;
}

std::string quote_literal(PGconn* c, const std::string& s) {
  char* q = PQescapeLiteral(c, s.data(), s.size());
  if (!q) return "";
  std::string out = q;
  PQfreemem(q);
  return out;
}

// createrole -> CREATEROLE; anything that is not a plain keyword (e.g. "VALID UNTIL '...'")
// is passed through as written.
std::string role_option(const std::string& opt) {
  std::string out;
  for (char c : opt) {
    if (!(std::isalpha(static_cast<unsigned char>(c)) || c == '_')) return opt;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

Status create_or_alter_role(PGconn* c, const std::string& name, const std::string& password,
                            const std::vector<std::string>& options) {
  const char* values[1] = {name.c_str()};
  ResultPtr exists(
      PQexecParams(c, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", 1, nullptr, values, nullptr, nullptr, 0));
  if (!result_ok(exists.get())) return Status::Failed("looking up role " + name + ": " + result_error(exists.get()));
  bool found = PQntuples(exists.get()) > 0;
  std::string ident = quote_ident(c, name);
  if (ident.empty()) return Status::Invalid("cannot quote role name " + name);
  std::string sql = std::string(found ? "ALTER" : "CREATE") + " ROLE " + ident + " WITH";
  for (const auto& o : options) sql += " " + role_option(o);
  if (!password.empty()) {
    std::string lit = quote_literal(c, password);
    if (lit.empty()) return Status::Invalid("cannot quote the password of role " + name);
    sql += " PASSWORD " + lit;
  }
  if (options.empty() && password.empty()) return Status::Ok();  // nothing to change
  ResultPtr r(PQexec(c, sql.c_str()));
  if (!result_ok(r.get()))
    return Status::Failed(std::string(found ? "altering" : "creating") + " role " + name + ": " + result_error(r.get()));
  return Status::Ok();
}

}  // namespace

const char* state_query_sql() { return kStateQuery; }

// --- addresses

std::string Postgres::local_host() const {
  const auto& pg = cfg_.postgresql;
  if (pg.use_unix_socket) {
    for (const nlohmann::json& params : {current_parameters(), pg.parameters, cfg_.dynamic.postgresql_parameters}) {
      if (!params.is_object()) continue;
      auto it = params.find("unix_socket_directories");
      if (it == params.end() || !it->is_string()) continue;
      std::stringstream ss(it->get<std::string>());
      std::string dir;
      // Patroni takes the first absolute directory ('@' abstract sockets are not usable here).
      while (std::getline(ss, dir, ','))
        if (auto d = trim(dir); !d.empty() && d[0] == '/') return d;
    }
    return "";  // libpq's compiled-in default socket directory
  }
  std::string host = pg.listen_addresses.empty() ? pg.listen.host : pg.listen_addresses.front();
  host = trim(host);
  if (host.empty() || host == "*" || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

int Postgres::local_port() const {
  if (cfg_.postgresql.listen.port > 0) return cfg_.postgresql.listen.port;
  auto params = current_parameters();
  if (auto it = params.find("port"); it != params.end()) {
    if (it->is_number_integer()) return it->get<int>();
    if (it->is_string()) {
      try {
        return std::stoi(it->get<std::string>());
      } catch (...) {
      }
    }
  }
  return 5432;
}

std::string Postgres::superuser_dsn() const {
  std::string dsn = "dbname=postgres user=" + dsn_escape(cfg_.postgresql.superuser.username);
  if (auto h = local_host(); !h.empty()) dsn += " host=" + dsn_escape(h);
  dsn += " port=" + std::to_string(local_port());
  return dsn;
}

std::string Postgres::connection_url() const {
  const auto& pg = cfg_.postgresql;
  std::string addr = pg.connect_address.empty() ? pg.listen.to_string() : pg.connect_address;
  return "postgres://" + addr + "/postgres";
}

// --- libpq

namespace {

Result<ConnPtr> connect_superuser(const Postgres& p) { return pq::connect(pq::local_superuser_params(p)); }

}  // namespace

struct Postgres::StateConnection {
  std::mutex mu;
  ConnPtr conn;
  // When send_state_query() sent a query whose answer nobody has taken yet, and to which
  // postmaster's backend (the one proved then).
  std::optional<std::chrono::steady_clock::time_point> sent_at;
  int sent_to_postmaster = 0;

  // The answer to the query sent ahead (nullptr when none is out or it failed); the
  // connection is free for the next command afterwards. Caller holds mu.
  ResultPtr take_sent_answer() {
    if (!sent_at) return nullptr;
    sent_at.reset();
    ResultPtr first;
    // What has arrived is read without a poll(2) first (PQgetResult would poll even with the
    // answer waiting); then every result up to the null that ends the command (PQgetResult
    // waits for what has not arrived: the query went out a loop ago, so normally nothing).
    PQconsumeInput(conn.get());
    while (PGresult* r = PQgetResult(conn.get())) {
      if (!first) first.reset(r);
      else PQclear(r);
    }
    return first;
  }
};

std::shared_ptr<Postgres::StateConnection> Postgres::make_state_connection() {
  return std::make_shared<StateConnection>();
}

Status Postgres::with_kept_connection(const std::function<Status(PGconn*)>& fn) const {
  std::lock_guard<std::mutex> lock(state_conn_->mu);
  state_conn_->take_sent_answer();  // a query sent ahead and not taken: its answer is stale
  Status st;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!state_conn_->conn || PQstatus(state_conn_->conn.get()) != CONNECTION_OK) {
      auto c = connect_superuser(*this);
      if (!c) return c.status();
      state_conn_->conn = std::move(*c);
    }
    st = fn(state_conn_->conn.get());
    if (st || PQstatus(state_conn_->conn.get()) == CONNECTION_OK) return st;  // done, or a real error
    state_conn_->conn.reset();
  }
  return st;
}

void Postgres::send_state_query() const {
  const int postmaster = known_postmaster_pid();
  std::lock_guard<std::mutex> lock(state_conn_->mu);
  auto& sc = *state_conn_;
  if (postmaster == 0 || sc.sent_at || !sc.conn || PQstatus(sc.conn.get()) != CONNECTION_OK) return;
  if (PQsendQuery(sc.conn.get(), kStateQuery) != 1) return;
  sc.sent_at = std::chrono::steady_clock::now();
  sc.sent_to_postmaster = postmaster;
}

Result<PgState> Postgres::query_state(std::optional<std::chrono::milliseconds> accept_sent_within) const {
  ResultPtr r;
  // The postmaster as last proved (the HA loop's is_running() just before): an answer from
  // before a restart, already in the socket, says nothing about the new server.
  const int postmaster = known_postmaster_pid();
  {
    std::lock_guard<std::mutex> lock(state_conn_->mu);
    auto& sc = *state_conn_;
    const bool recent = sc.sent_at && accept_sent_within && sc.sent_to_postmaster == postmaster &&
                        std::chrono::steady_clock::now() - *sc.sent_at <= *accept_sent_within;
    ResultPtr sent = sc.take_sent_answer();
    if (recent && result_ok(sent.get()) && PQntuples(sent.get()) == 1) r = std::move(sent);
  }
  // None sent ahead, too old, or it failed (a restarted server): ask now.
  if (!r) {
    auto queried = with_kept_connection([&](PGconn* c) {
      r.reset(PQexec(c, kStateQuery));
      if (result_ok(r.get()) && PQntuples(r.get()) == 1) return Status::Ok();
      return Status::Failed("state query: " + result_error(r.get()));
    });
    if (!queried) return queried;
  }
  PgState st;
  try {
    PGresult* res = r.get();
    st.in_recovery = cell_bool(res, 0);
    st.server_version = static_cast<int>(cell_int(res, 1));
    st.timeline = static_cast<int>(cell_int(res, 2));
    if (st.in_recovery) {
      st.received_location = cell_int(res, 4);
      st.replayed_location = cell_int(res, 5);
      st.wal_position = std::max(st.received_location, st.replayed_location);
    } else {
      st.wal_position = cell_int(res, 3);
    }
    if (!cell_null(res, 6)) st.replayed_timestamp = python_datetime(cell(res, 6));
    st.replay_paused = cell_bool(res, 7);
    if (!cell_null(res, 8)) st.postmaster_start_time = python_datetime(cell(res, 8));
    st.replication_json = cell(res, 9);
    st.system_identifier = cell(res, 10);
    st.pending_restart = cell_bool(res, 11);
    if (!cell_null(res, 12)) st.archiver_archived_count = cell_int(res, 12);
    if (!cell_null(res, 13)) st.archiver_failed_count = cell_int(res, 13);
    if (!cell_null(res, 14)) st.archiver_last_failed_wal = cell(res, 14);
    if (!cell_null(res, 15)) st.archiver_last_failed_time = std::stod(cell(res, 15));
    st.physical_slots = parse_slot_list(cell(res, 16));
  } catch (const std::exception& e) {
    return Status::Failed(std::string("state query: unexpected value: ") + e.what());
  }
  return st;
}

bool Postgres::is_ready() const {
  std::string port = std::to_string(local_port());
  std::string host = local_host();
  const std::string& user = cfg_.postgresql.superuser.username;
  std::vector<const char*> keys{"dbname", "user", "port", "connect_timeout"};
  std::vector<const char*> values{"postgres", user.c_str(), port.c_str(), "3"};
  if (!host.empty()) {
    keys.push_back("host");
    values.push_back(host.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  return PQpingParams(keys.data(), values.data(), 0) == PQPING_OK;
}

Status Postgres::execute(const std::string& sql) const {
  auto c = connect_superuser(*this);
  if (!c) return c.status();
  ResultPtr r(PQexec(c->get(), sql.c_str()));
  if (!result_ok(r.get())) return Status::Failed(result_error(r.get()));
  return Status::Ok();
}

Status Postgres::create_users() {
  auto c = connect_superuser(*this);
  if (!c) return c.status();
  // Keep passwords out of the server log and pg_stat_statements, as Patroni does.
  ResultPtr quiet(PQexec(c->get(),
                         "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; "
                         "SET log_min_error_statement TO 'log'; SET pg_stat_statements.track_utility TO off"));
  if (!result_ok(quiet.get())) return Status::Failed("preparing session: " + result_error(quiet.get()));

  const auto& pg = cfg_.postgresql;
  if (!pg.superuser.password.empty())
    if (auto s = create_or_alter_role(c->get(), pg.superuser.username, pg.superuser.password, {}); !s) return s;
  if (!pg.replication.username.empty() && pg.replication.username != pg.superuser.username)
    if (auto s = create_or_alter_role(c->get(), pg.replication.username, pg.replication.password,
                                      {"REPLICATION", "LOGIN"});
        !s)
      return s;
  for (const auto& u : cfg_.bootstrap.users) {
    std::vector<std::string> opts{"LOGIN"};
    opts.insert(opts.end(), u.options.begin(), u.options.end());
    if (auto s = create_or_alter_role(c->get(), u.name, u.password, opts); !s) return s;
  }
  return Status::Ok();
}

Status Postgres::run_post_init(std::chrono::milliseconds timeout) {
  const std::string& cmdline = cfg_.bootstrap.post_init;
  if (trim(cmdline).empty()) return Status::Ok();
  auto argv = util::shell_split(cmdline);
  if (!argv) return argv.status();
  if (argv->empty()) return Status::Ok();
  argv->push_back(superuser_dsn());
  util::Environment env = env_;
  env["PGPASSFILE"] = pgpass_path();
  // The cluster has no standbys yet: a synchronous_commit waiting for one would hang post_init.
  env["PGOPTIONS"] = "-c synchronous_commit=local";
  auto r = util::run({*argv, env, std::nullopt}, timeout);
  if (!r) return Status::Failed("post_init " + cmdline + " could not be started: " + r.status().message());
  if (r->timed_out) return Status::Failed("post_init " + cmdline + " timed out: " + tail(r->output));
  if (r->exit_code != 0)
    return Status::Failed("post_init " + cmdline + " exited with code " + std::to_string(r->exit_code) + ": " +
                          tail(r->output));
  return Status::Ok();
}

}  // namespace pgwarden::postgres
