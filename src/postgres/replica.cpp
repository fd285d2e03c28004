// Replica creation (Patroni's Bootstrap.create_replica / basebackup): methods in order, the
// built-in pg_basebackup with two attempts, custom scripts with Patroni's arguments.
#include "pgwarden/postgres/replica.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "pgwarden/postgres/postgres.hpp"
#include "internal.hpp"

namespace pgwarden::postgres {
namespace fs = std::filesystem;
namespace {

// Cloning a large cluster takes hours; only a runaway tool should hit this.
constexpr auto kCloneTimeout = std::chrono::hours(24 * 7);
constexpr int kBasebackupAttempts = 2;
constexpr auto kBasebackupRetryDelay = std::chrono::seconds(5);

const std::vector<std::string> kBasebackupForbidden{"pgdata", "format", "wal-method", "xlog-method",
                                                    "gzip",   "version", "compress", "dbname",
                                                    "host",   "port",    "username", "password"};


bool forbidden(const std::string& key) {
  return std::find(kBasebackupForbidden.begin(), kBasebackupForbidden.end(), key) != kBasebackupForbidden.end();
}

// A config value as Python's str() would print it in "--{0}={1}".
std::string python_str(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_null()) return "None";
  return v.dump();
}

bool dir_non_empty(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && !fs::is_empty(dir, ec);
}

// Removes a failed clone we made ourselves, including the contents of an external WAL
// directory pg_wal points to (the next pg_basebackup --waldir needs it empty).
Status remove_own_partial_clone(const std::string& data_dir) {
  std::error_code ec;
  fs::path wal = fs::path(data_dir) / "pg_wal";
  if (fs::is_symlink(wal, ec)) {
    fs::path target = fs::read_symlink(wal, ec);
    if (!ec && fs::is_directory(target, ec))
      for (const auto& e : fs::directory_iterator(target, ec)) fs::remove_all(e.path(), ec);
  }
  ec.clear();
  fs::remove_all(data_dir, ec);
  if (ec) return Status::Failed("cannot remove the partial clone in " + data_dir + ": " + ec.message());
  return Status::Ok();
}

// Makes room for a method that needs an empty data directory. `ours`: the content is a failed
// clone we just made (safe to delete); anything else is moved aside, never deleted.
Status clear_data_dir(Postgres& pg, bool ours) {
  const std::string& dd = pg.config().postgresql.data_dir;
  if (!dir_non_empty(dd)) return Status::Ok();
  if (ours) return remove_own_partial_clone(dd);
  auto moved = pg.move_data_directory_aside();
  if (!moved) return moved.status();
  spdlog::warn("data directory {} was not empty: moved to {}", dd, *moved);
  return Status::Ok();
}

// One attempt loop of pg_basebackup; Ok or the last error.
Status run_basebackup(Postgres& pg, const util::Environment& env, const std::string& conninfo,
                      const std::string& slot_name) {
  std::vector<std::string> warnings;
  auto base_argv = basebackup_argv(pg.config(), conninfo, &warnings);
  for (const auto& w : warnings) spdlog::error("{}", w);
  std::vector<std::string> slot_args;
  if (!slot_name.empty()) slot_args = {"--create-slot", "--slot=" + slot_name};
  Status last = Status::Failed("not attempted");
  for (int attempt = 1; attempt <= kBasebackupAttempts; ++attempt) {
    // Before the first attempt whatever is there is not ours; after a failed one it is.
    if (auto s = clear_data_dir(pg, attempt > 1); !s) return s;
    auto argv = base_argv;
    argv.insert(argv.begin() + 1, slot_args.begin(), slot_args.end());
    auto r = util::run({argv, env, std::nullopt}, kCloneTimeout);
    bool slot_exists = false;
    if (!r) {
      last = Status::Failed("pg_basebackup could not be started: " + r.status().message());
    } else if (r->exit_code == 0) {
      return Status::Ok();
    } else {
      last = Status::Failed("pg_basebackup exited with code " + std::to_string(r->exit_code) + ": " +
                            tail(r->output));
      slot_exists = !slot_args.empty() && r->output.find("already exists") != std::string::npos;
    }
    spdlog::error("Error when fetching backup: {}", last.message());
    if (slot_exists && slot_args.size() == 2) {
      // Our slot survived from an earlier life of this member, or from the attempt before
      // (pg_basebackup keeps the slot it created when the copy fails): use it as it is. This
      // retry does not count as an attempt, so a copy that failed once still gets its second.
      slot_args = {"--slot=" + slot_name};
      --attempt;
      continue;
    }
    if (attempt < kBasebackupAttempts) {
      spdlog::warn("Trying again in 5 seconds");
      std::this_thread::sleep_for(kBasebackupRetryDelay);
    }
  }
  // pg_basebackup normally cleans up after itself; whatever is left is ours, not user data.
  if (auto c = clear_data_dir(pg, true); !c) spdlog::error("{}", c.message());
  return last;
}

Status run_custom(Postgres& pg, const util::Environment& env, const config::CustomMethod& m,
                  const std::string& conninfo) {
  auto argv = custom_method_argv(pg.config(), m, conninfo);
  if (!argv) return argv.status();
  auto r = util::run({*argv, env, std::nullopt}, kCloneTimeout);
  if (!r) return Status::Failed(m.command + " could not be started: " + r.status().message());
  if (r->exit_code != 0)
    return Status::Failed(m.command + " exited with code " + std::to_string(r->exit_code) + ": " + tail(r->output));
  return Status::Ok();
}

}  // namespace

std::optional<ConnUrl> parse_conn_url(const std::string& conn_url) {
  std::string rest;
  for (const char* scheme : {"postgres://", "postgresql://"})
    if (conn_url.rfind(scheme, 0) == 0) rest = conn_url.substr(std::string(scheme).size());
  if (rest.empty()) return std::nullopt;
  ConnUrl out;
  auto slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos && rest[slash] == '/') {
    std::string db = rest.substr(slash + 1);
    db = db.substr(0, db.find('?'));
    if (!db.empty()) out.dbname = db;
  }
  if (auto at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    out.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return std::nullopt;
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    out.port = std::stoi(port);
    if (out.port <= 0 || out.port > 65535) return std::nullopt;
  }
  return out;
}

std::string replica_conninfo(const config::Config& cfg, const std::string& conn_url) {
  auto url = parse_conn_url(conn_url);
  if (!url) return "";
  const auto& repl = cfg.postgresql.replication;
  std::string dsn = "host=" + dsn_escape(url->host) + " port=" + std::to_string(url->port) +
                    " user=" + dsn_escape(repl.username) + " dbname=" + dsn_escape(url->dbname) +
                    " application_name=" + dsn_escape(cfg.name);
  auto ssl = repl.extra.find("sslmode");
  dsn += " sslmode=" + dsn_escape(ssl == repl.extra.end() ? "prefer" : ssl->second);
  for (const auto& [k, v] : repl.extra)
    if (k != "sslmode" && k != "password" && k != "passfile") dsn += " " + k + "=" + dsn_escape(v);
  if (!cfg.postgresql.pgpass.empty()) dsn += " passfile=" + dsn_escape(cfg.postgresql.pgpass);
  return dsn;
}

std::vector<std::string> basebackup_options(const nlohmann::json& options, std::vector<std::string>* warnings) {
  std::vector<std::string> out;
  auto warn = [&](const std::string& w) {
    if (warnings) warnings->push_back(w);
  };
  auto add_pair = [&](const std::string& k, const nlohmann::json& v) {
    if (forbidden(k)) return warn(k + " option for pg_basebackup is not allowed");
    if (k.empty() || v.is_null() || (v.is_string() && v.get<std::string>().empty()))
      return warn("pg_basebackup option " + k + " has no value");
    out.push_back("--" + k + "=" + python_str(v));
  };
  if (options.is_null()) return out;
  if (options.is_object()) {
    for (const auto& [k, v] : options.items()) add_pair(k, v);
  } else if (options.is_array()) {
    for (const auto& opt : options) {
      if (opt.is_string()) {
        auto name = opt.get<std::string>();
        if (forbidden(name)) warn(name + " option for pg_basebackup is not allowed");
        else out.push_back("--" + name);
      } else if (opt.is_object() && opt.size() == 1) {
        add_pair(opt.begin().key(), opt.begin().value());
      } else {
        warn("Error when parsing pg_basebackup option " + opt.dump() +
             ": value should be string value or a single key-value pair");
      }
    }
  } else {
    warn("pg_basebackup options must be list or dict");
  }
  return out;
}

std::vector<std::string> basebackup_argv(const config::Config& cfg, const std::string& conninfo,
                                         std::vector<std::string>* warnings) {
  const auto& pg = cfg.postgresql;
  std::string prog = pg.bin_dir.empty() ? "pg_basebackup" : (fs::path(pg.bin_dir) / "pg_basebackup").string();
  std::vector<std::string> argv{prog, "--pgdata=" + pg.data_dir, "-X", "stream", "--checkpoint=fast",
                                "--dbname=" + conninfo};
  auto user = basebackup_options(pg.basebackup, warnings);
  argv.insert(argv.end(), user.begin(), user.end());
  return argv;
}

Result<std::vector<std::string>> custom_method_argv(const config::Config& cfg, const config::CustomMethod& method,
                                                    const std::string& conninfo) {
  auto argv = util::shell_split(method.command.empty() ? method.name : method.command);
  if (!argv) return Status::Invalid("replica method " + method.name + ": " + argv.status().message());
  if (argv->empty()) return Status::Invalid("replica method " + method.name + " has an empty command");
  if (method.extra.is_object())
    for (const auto& [k, v] : method.extra.items()) argv->push_back("--" + k + "=" + python_str(v));
  if (!method.no_params) {
    argv->push_back("--scope=" + cfg.scope);
    argv->push_back("--role=replica");
    argv->push_back("--datadir=" + cfg.postgresql.data_dir);
    argv->push_back("--connstring=" + conninfo);
  }
  return *argv;
}

Result<std::string> create_replica(const config::Config& cfg, const util::Environment& env, const CloneSource& src) {
  Postgres pg(cfg, env);
  const auto& pgc = cfg.postgresql;
  if (pgc.data_dir.empty()) return Status::Invalid("postgresql.data_dir is not set");

  std::string conninfo;
  util::Environment run_env = env;
  if (!src.conn_url.empty()) {
    conninfo = replica_conninfo(cfg, src.conn_url);
    if (conninfo.empty()) return Status::Invalid("cannot parse the clone source URL " + src.conn_url);
    if (auto s = pg.write_pgpass(); !s) return s;
  }
  run_env["PGPASSFILE"] = pg.pgpass_path();

  std::vector<std::string> methods = pgc.create_replica_methods;
  if (methods.empty()) methods = {"basebackup"};
  std::vector<std::string> errors;
  bool tried = false;
  for (const auto& name : methods) {
    const config::CustomMethod* custom = nullptr;
    if (name != "basebackup") {
      auto it = pgc.replica_methods.find(name);
      if (it == pgc.replica_methods.end()) {
        errors.push_back(name + ": no postgresql." + name + " section");
        continue;
      }
      custom = &it->second;
    }
    // Without a source only methods that restore from elsewhere (backups) can work.
    if (conninfo.empty() && !(custom && custom->no_master)) continue;
    tried = true;
    spdlog::info("trying to create the replica using {}", name);

    Status st;
    if (!custom) {
      st = run_basebackup(pg, run_env, conninfo, src.slot_name);
    } else {
      bool ours = false;
      if (custom->keep_data) {
        spdlog::info("Leaving data directory uncleaned");
      } else {
        st = clear_data_dir(pg, false);
        ours = true;
      }
      if (st) st = run_custom(pg, run_env, *custom, conninfo);
      // A failed restore into a directory it found empty left only its own partial files.
      if (!st && ours) {
        if (auto c = clear_data_dir(pg, true); !c) spdlog::error("{}", c.message());
      }
    }
    if (st) {
      spdlog::info("replica has been created using {}", name);
      return name;
    }
    spdlog::error("Error creating replica using method {}: {}", name, st.message());
    // What a failed keep_data method leaves is user data: the next method that needs an
    // empty directory moves it aside (clear_data_dir with ours=false), never deletes it.
    errors.push_back(name + ": " + st.message());
  }
  if (!tried && errors.empty())
    return Status::Failed(conninfo.empty() ? "no replica method works without a leader (none is no_master/no_leader)"
                                           : "no replica method configured");
  std::string msg = "failed to create the replica: ";
  for (size_t i = 0; i < errors.size(); ++i) msg += (i ? "; " : "") + errors[i];
  return Status::Failed(msg);
}

}  // namespace pgwarden::postgres
