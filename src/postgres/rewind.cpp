// pg_rewind with its preconditions: rewindable cluster, clean shutdown (single-user crash
// recovery when needed), a source that is a checkpointed primary.
#include "pgwarden/postgres/rewind.hpp"
#include "pgwarden/postgres/rewind_wal.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/postgres/recovery.hpp"
#include "pgwarden/postgres/replica.hpp"
#include "pq_connect.hpp"
#include "internal.hpp"

namespace pgwarden::postgres {
namespace fs = std::filesystem;
namespace {

constexpr auto kRewindTimeout = std::chrono::hours(24);
constexpr auto kCrashRecoveryTimeout = std::chrono::hours(24);


std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r\n"));
  s.erase(s.find_last_not_of(" \t\r\n") + 1);
  return s;
}

const config::Credentials& rewind_credentials(const config::Config& cfg) {
  const auto& pg = cfg.postgresql;
  return pg.rewind.username.empty() ? pg.superuser : pg.rewind;
}

util::Environment tool_env(const util::Environment& env) {
  util::Environment e = env;
  e["LANG"] = "C";
  e["LC_ALL"] = "C";
  return e;
}

// "--name=value" options the postmaster last ran with (postmaster.opts), as Patroni's
// read_postmaster_opts: crash recovery must use the same settings (e.g. max_connections).
std::map<std::string, std::string> postmaster_opts(const std::string& data_dir) {
  std::map<std::string, std::string> out;
  std::ifstream f(data_dir + "/postmaster.opts");
  if (!f) return out;
  std::stringstream ss;
  ss << f.rdbuf();
  std::string data = ss.str();
  size_t pos = 0;
  for (;;) {
    auto next = data.find("\" \"", pos);
    std::string opt = data.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    auto eq = opt.find('=');
    if (opt.rfind("--", 0) == 0 && eq != std::string::npos) {
      std::string val = opt.substr(eq + 1);
      while (!val.empty() && (val.back() == '\n' || val.back() == '"')) val.pop_back();
      out[opt.substr(2, eq - 2)] = val;
    }
    if (next == std::string::npos) break;
    pos = next + 3;
  }
  return out;
}

// Single-user mode replays WAL to a consistent state and exits with a shutdown checkpoint;
// stdin is /dev/null, so it ends at once. archive_command=false keeps unarchived WAL around
// (archive_mode=off would let the checkpoint recycle it).
Status ensure_clean_shutdown(const config::Config& cfg, const util::Environment& env) {
  const std::string& dd = cfg.postgresql.data_dir;
  std::string prog = util::find_program("postgres", cfg.postgresql.bin_dir, env);
  if (prog.empty()) return Status::NotFound("postgres binary not found");
  // Single-user mode refuses standby mode; the caller writes the signal again afterwards.
  if (auto s = remove_recovery_signals(dd); !s) return s;
  auto opts = postmaster_opts(dd);
  opts["archive_mode"] = "on";
  opts["archive_command"] = "false";
  std::vector<std::string> argv{prog, "--single", "-D", dd};
  for (const auto& [k, v] : opts) {
    argv.push_back("-c");
    argv.push_back(k + "=" + v);
  }
  argv.push_back("template1");
  spdlog::info("doing crash recovery in a single user mode");
  auto r = util::run({argv, tool_env(env), std::nullopt}, kCrashRecoveryTimeout);
  if (!r) return Status::Failed("crash recovery could not be started: " + r.status().message());
  if (r->exit_code != 0)
    return Status::Failed("crash recovery finished with code " + std::to_string(r->exit_code) + ": " +
                          tail(r->output, 4000));
  return Status::Ok();
}

// The source must be a primary whose pg_control already shows its new timeline, or pg_rewind
// compares against the old one and finds nothing to do.
Status check_source(const config::Config& cfg, const std::string& conn_url) {
  auto url = parse_conn_url(conn_url);
  if (!url) return Status::Invalid("cannot parse the rewind source URL " + conn_url);
  const auto& cred = rewind_credentials(cfg);
  pq::Params params{{"host", url->host},
                    {"port", std::to_string(url->port)},
                    {"user", cred.username},
                    {"dbname", "postgres"},
                    {"connect_timeout", "3"},
                    {"options", "-c statement_timeout=0"},
                    {"application_name", "pgwarden"}};
  if (!cfg.postgresql.pgpass.empty()) params.emplace_back("passfile", cfg.postgresql.pgpass);
  if (!cred.password.empty()) params.emplace_back("password", cred.password);
  for (const auto& [k, v] : cred.extra) params.emplace_back(k, v);
  auto c = pq::connect(params);
  if (!c) return Status::Unavailable("rewind source: " + c.status().message());
  auto rec = pq::exec(c->get(), "SELECT pg_catalog.pg_is_in_recovery()");
  if (!rec) return Status::Unavailable("rewind source: " + rec.status().message());
  if (PQgetvalue(rec->get(), 0, 0)[0] == 't')
    return Status::Unavailable("rewind source is still in recovery and therefore can't be used for rewind");
  if (&cred == &cfg.postgresql.superuser) {
    if (auto r = pq::exec(c->get(), "CHECKPOINT"); !r)
      return Status::Unavailable("CHECKPOINT on the rewind source failed: " + r.status().message());
    return Status::Ok();
  }
  // A dedicated rewind user may not run CHECKPOINT: check that one happened after promote.
  auto ck = pq::exec(c->get(),
                     "SELECT ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name("
                     "pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int = timeline_id "
                     "FROM pg_catalog.pg_control_checkpoint()");
  if (!ck) return Status::Unavailable("rewind source: " + ck.status().message());
  if (PQgetvalue(ck->get(), 0, 0)[0] != 't') return Status::Unavailable("rewind source has not run a checkpoint yet");
  return Status::Ok();
}

// pg_rewind copies the source's configuration files over ours; these are put back after.
std::map<std::string, std::string> save_config_files(const std::string& dir) {
  std::map<std::string, std::string> saved;
  for (const char* name : {"postgresql.conf", "postgresql.base.conf", "pg_hba.conf", "pg_ident.conf"}) {
    std::ifstream f(dir + "/" + name, std::ios::binary);
    if (!f) continue;
    std::stringstream ss;
    ss << f.rdbuf();
    saved[name] = ss.str();
  }
  return saved;
}

Status restore_config_files(const std::string& dir, const std::map<std::string, std::string>& saved) {
  for (const auto& [name, content] : saved) {
    std::string path = dir + "/" + name;
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << content;
    if (!f) return Status::Failed("cannot restore " + path + " after pg_rewind");
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  }
  return Status::Ok();
}

}  // namespace

std::map<std::string, std::string> control_data_map(const config::Config& cfg, const util::Environment& env) {
  std::map<std::string, std::string> out;
  std::string prog = util::find_program("pg_controldata", cfg.postgresql.bin_dir, env);
  if (prog.empty()) return out;
  auto r = util::run({{prog, "-D", cfg.postgresql.data_dir}, tool_env(env), std::nullopt},
                     std::chrono::seconds(30));
  if (!r || r->exit_code != 0) return out;
  std::istringstream in(r->output);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    out[trim(line.substr(0, colon))] = trim(line.substr(colon + 1));
  }
  return out;
}

bool rewind_enabled(const config::Config& cfg) {
  return cfg.postgresql.use_pg_rewind.value_or(cfg.dynamic.use_pg_rewind);
}

bool can_rewind(const config::Config& cfg, const util::Environment& env) {
  if (util::find_program("pg_rewind", cfg.postgresql.bin_dir, env).empty()) return false;
  auto data = control_data_map(cfg, env);
  auto hints = data.find("wal_log_hints setting");
  auto checksums = data.find("Data page checksum version");
  return (hints != data.end() && hints->second == "on") || (checksums != data.end() && checksums->second != "0");
}

std::string rewind_source_conninfo(const config::Config& cfg, const std::string& conn_url) {
  auto url = parse_conn_url(conn_url);
  if (!url) return "";
  const auto& cred = rewind_credentials(cfg);
  std::string dsn = "host=" + dsn_escape(url->host) + " port=" + std::to_string(url->port) +
                    " user=" + dsn_escape(cred.username) + " dbname=postgres";
  for (const auto& [k, v] : cred.extra)
    if (k != "password" && k != "passfile" && k != "target_session_attrs") dsn += " " + k + "=" + dsn_escape(v);
  return dsn + " target_session_attrs=read-write";
}

Status rewind(const config::Config& cfg, const util::Environment& env, const std::string& source_conn_url,
              bool restore_target_wal) {
  Postgres pg(cfg, env);
  const std::string& dd = cfg.postgresql.data_dir;
  if (pg.is_running()) return Status::Conflict("cannot run pg_rewind: PostgreSQL is running in " + dd);
  std::string prog = util::find_program("pg_rewind", cfg.postgresql.bin_dir, env);
  if (prog.empty()) return Status::NotFound("pg_rewind not found");
  if (!can_rewind(cfg, env))
    return Status::Invalid("cannot rewind " + dd + ": neither data checksums nor wal_log_hints are on");
  std::string dsn = rewind_source_conninfo(cfg, source_conn_url);
  if (dsn.empty()) return Status::Invalid("cannot parse the rewind source URL " + source_conn_url);

  auto control = control_data_map(cfg, env);
  std::string state = control["Database cluster state"];
  if (state != "shut down" && state != "shut down in recovery") {
    spdlog::info("cluster state is \"{}\": crash recovery first", state);
    if (auto s = ensure_clean_shutdown(cfg, env); !s) return s;
    state = control_data_map(cfg, env)["Database cluster state"];
    if (state != "shut down") return Status::Failed("crash recovery left the cluster in state \"" + state + "\"");
  }

  if (auto s = check_source(cfg, source_conn_url); !s) return s;

  if (auto s = pg.write_pgpass(); !s) return s;
  util::Environment e = tool_env(env);
  e["PGPASSFILE"] = pg.pgpass_path();
  e["PGOPTIONS"] = "-c statement_timeout=0";
  // pgpass holds the superuser and replication users only; a dedicated rewind user's password
  // comes through the environment (never argv, which other users can see).
  if (const auto& cred = rewind_credentials(cfg); !cred.password.empty()) e["PGPASSWORD"] = cred.password;

  std::string config_dir = cfg.postgresql.config_dir.empty() ? dd : cfg.postgresql.config_dir;
  auto saved = config_dir == dd ? save_config_files(dd) : std::map<std::string, std::string>{};

  RewindWalStash wal_stash(dd);  // see rewind_wal.hpp
  spdlog::info("running pg_rewind from {}{}", dsn, restore_target_wal ? " with --restore-target-wal" : "");
  std::vector<std::string> argv{prog, "--target-pgdata=" + dd, "--source-server=" + dsn};
  if (restore_target_wal) {
    argv.push_back("--restore-target-wal");
    if (config_dir != dd) argv.push_back("--config-file=" + config_dir + "/postgresql.conf");
  }
  auto r = util::run({argv, e, std::nullopt}, kRewindTimeout);
  auto restored = restore_config_files(dd, saved);
  if (!r) return Status::Failed("pg_rewind could not be started: " + r.status().message());
  if (r->exit_code != 0)
    return Status::Failed("pg_rewind exited with code " + std::to_string(r->exit_code) + ": " + tail(r->output, 4000));
  if (!restored) return restored;
  spdlog::info("pg_rewind succeeded: {}", trim(tail(r->output, 500)));
  uint64_t segment_size = 0;
  try {
    segment_size = std::stoull(control["Bytes per WAL segment"]);  // fixed at initdb
  } catch (const std::exception&) {
  }
  if (auto back = wal_stash.put_back(segment_size); !back.empty()) {
    std::string names;
    for (const auto& n : back) names += (names.empty() ? "" : ", ") + n;
    spdlog::warn("pg_rewind removed WAL from the redo point on that the source no longer has; put back: {}", names);
  }
  return Status::Ok();
}

}  // namespace pgwarden::postgres
