#include "pgwarden/ha/executor.hpp"

#include <spdlog/spdlog.h>

#include <thread>

#include "pgwarden/postgres/recovery.hpp"

namespace pgwarden::ha {
namespace {

// Parses "postgres://host:port/db" into host and port.
std::pair<std::string, std::string> host_port_of(const std::string& url) {
  std::string rest = url;
  auto scheme = rest.find("://");
  if (scheme != std::string::npos) rest = rest.substr(scheme + 3);
  auto at = rest.rfind('@');
  if (at != std::string::npos) rest = rest.substr(at + 1);
  auto slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "5432"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

}  // namespace

std::string primary_conninfo(const config::Config& cfg, const std::string& leader_conn_url) {
  auto [host, port] = host_port_of(leader_conn_url);
  std::string s = "host=" + host + " port=" + port + " user=" + cfg.postgresql.replication.username;
  if (!cfg.postgresql.pgpass.empty()) s += " passfile=" + cfg.postgresql.pgpass;
  s += " application_name=" + cfg.name + " sslmode=prefer";
  return s;
}

std::chrono::milliseconds Executor::start_timeout(const Snapshot& s) const {
  return std::chrono::seconds(std::max(10, s.dyn.primary_start_timeout));
}

nlohmann::json Executor::parameters_for(bool as_primary, const Snapshot& s) const {
  nlohmann::json p = config::effective_parameters(cfg_, s.dyn);
  if (as_primary) return p;
  for (auto& [k, v] : s.dyn.recovery_conf.items()) p[k] = v;
  for (auto& [k, v] : cfg_.postgresql.recovery_conf.items()) p[k] = v;
  p["recovery_target_timeline"] = "latest";
  if (s.cluster.leader && s.cluster.leader->name != s.me) {
    if (const auto* leader = s.cluster.member(s.cluster.leader->name))
      p["primary_conninfo"] = primary_conninfo(cfg_, leader->conn_url());
  }
  return p;
}

std::vector<std::string> Executor::pg_hba(const Snapshot& s) const {
  if (!cfg_.postgresql.pg_hba.empty()) return cfg_.postgresql.pg_hba;
  return s.dyn.pg_hba;
}

Status Executor::start(bool as_primary, const Snapshot& s) {
  const std::string& data_dir = cfg_.postgresql.data_dir;
  if (auto st = pg_.write_pgpass(); !st) return st;
  if (auto st = pg_.write_configuration(parameters_for(as_primary, s), pg_hba(s)); !st) return st;
  auto st = as_primary ? postgres::remove_recovery_signals(data_dir) : postgres::write_standby_signal(data_dir);
  if (!st) return st;
  state_hint_ = "starting";
  st = pg_.start(start_timeout(s));
  if (!st) {
    state_hint_ = "start failed";
    return st;
  }
  state_hint_ = "running";
  callbacks_.fire("on_start", as_primary ? "master" : "replica");
  return Status::Ok();
}

Status Executor::promote(const Snapshot& s) {
  state_hint_ = "promoting";
  if (auto st = postgres::remove_recovery_signals(cfg_.postgresql.data_dir); !st) return st;
  if (auto st = pg_.promote(start_timeout(s)); !st) return st;
  if (auto st = pg_.write_configuration(parameters_for(true, s), pg_hba(s)); !st) return st;
  if (auto st = pg_.reload(); !st) spdlog::warn("reload after promote failed: {}", st.message());
  state_hint_ = "running";
  callbacks_.fire("on_role_change", "master");
  return Status::Ok();
}

// Never leaves PostgreSQL writable: stop fast, then start read-only following the leader
// if one is known.
Status Executor::demote(const Snapshot& s) {
  state_hint_ = "stopping";
  if (auto st = pg_.stop("fast", std::chrono::seconds(std::max(10, cfg_.postgresql.pg_ctl_timeout))); !st) {
    spdlog::error("demote: fast stop failed ({}); stopping immediately", st.message());
    if (auto st2 = pg_.stop("immediate", std::chrono::seconds(30)); !st2) return st2;
  }
  if (auto st = pg_.write_configuration(parameters_for(false, s), pg_hba(s)); !st) return st;
  if (auto st = postgres::write_standby_signal(cfg_.postgresql.data_dir); !st) return st;
  state_hint_ = "starting";
  if (auto st = pg_.start(start_timeout(s)); !st) {
    state_hint_ = "start failed";
    return st;
  }
  state_hint_ = "running";
  callbacks_.fire("on_role_change", "replica");
  return Status::Ok();
}

Status Executor::bootstrap(const Snapshot& s, Outcome& out) {
  if (auto st = dcs_.initialize(true, ""); !st) return st;  // lost the race: someone else bootstraps
  spdlog::info("{}: won the initialize race; bootstrapping a new cluster with {}", cfg_.name, cfg_.bootstrap.method);
  auto fail = [&](const Status& why, bool move_aside) {
    out.fatal = true;
    out.bootstrap_failed = true;
    state_hint_ = "initdb failed";
    if (pg_.is_running()) pg_.stop("immediate", std::chrono::seconds(30));
    if (move_aside && pg_.data_directory_exists()) {
      auto moved = pg_.move_data_directory_aside();
      if (moved) spdlog::error("bootstrap failed: data directory moved aside to {}", *moved);
      else spdlog::error("bootstrap failed: could not move data directory aside: {}", moved.status().message());
    }
    if (auto st = dcs_.cancel_initialization(); !st)
      spdlog::error("could not release the initialize key: {}", st.message());
    return Status::Failed("bootstrap failed: " + why.message());
  };
  if (cfg_.bootstrap.method != "initdb")
    return fail(Status::Invalid("bootstrap method '" + cfg_.bootstrap.method +
                                "' (custom bootstrap) is handled from the backup issue on; use initdb"),
                false);
  state_hint_ = "initializing new cluster";
  if (auto st = pg_.initdb(); !st) return fail(st, true);
  if (auto st = pg_.write_pgpass(); !st) return fail(st, true);
  // initdb's own pg_hba (local trust) stays until the users exist.
  if (auto st = pg_.write_configuration(parameters_for(true, s), {}); !st) return fail(st, true);
  if (auto st = pg_.start(start_timeout(s)); !st) return fail(st, true);
  if (auto st = pg_.create_users(); !st) return fail(st, true);
  if (auto st = pg_.run_post_init(std::chrono::seconds(600)); !st) return fail(st, true);
  if (auto st = pg_.write_configuration(parameters_for(true, s), pg_hba(s)); !st) return fail(st, true);
  if (auto st = pg_.reload(); !st) return fail(st, true);
  std::string sysid = pg_.system_identifier();
  if (auto st = dcs_.initialize(false, sysid); !st) return fail(st, true);
  if (auto st = dcs_.set_config_value(cfg_.bootstrap.dcs.dump(), std::nullopt); !st)
    spdlog::warn("could not write the dynamic configuration: {}", st.message());
  if (auto st = dcs_.attempt_to_acquire_leader(); !st) return fail(st, false);
  out.holds_lock = true;
  state_hint_ = "running";
  spdlog::info("{}: initialized a new cluster (system identifier {})", cfg_.name, sysid);
  callbacks_.fire("on_start", "master");
  return Status::Ok();
}

Outcome Executor::execute(const Decision& d, const Snapshot& s) {
  Outcome out;
  out.holds_lock = s.cluster.leader && s.cluster.leader->name == s.me && s.dcs_ok;
  for (Action a : d.actions) {
    Status st;
    switch (a) {
      case Action::kBootstrap: st = bootstrap(s, out); break;
      case Action::kStartPrimary: st = start(true, s); break;
      case Action::kStartReplica: st = start(false, s); break;
      case Action::kAcquireLock:
        st = dcs_.attempt_to_acquire_leader();
        if (st) out.holds_lock = true;
        break;
      case Action::kRenewLock:
        st = dcs_.update_leader(s.pg.query_ok && !s.pg.in_recovery ? std::optional<int64_t>(s.pg.wal_position)
                                                                      : std::nullopt);
        out.holds_lock = st.ok();
        if (!st && !s.pg.in_recovery && s.pg.running) {
          // Could not keep the lock: never stay writable without it.
          spdlog::error("{}: failed to renew the leader lock ({}): demoting", cfg_.name, st.message());
          if (auto ds = demote(s); !ds) spdlog::error("demote failed: {}", ds.message());
          out.status = st;
          return out;
        }
        break;
      case Action::kWriteInitialize: {
        std::string sysid = pg_.system_identifier();
        st = sysid.empty() ? Status::Unavailable("system identifier unknown") : dcs_.initialize(false, sysid);
        break;
      }
      case Action::kPromote: st = promote(s); break;
      case Action::kDemote:
        st = demote(s);
        out.holds_lock = false;
        break;
      case Action::kReleaseLock:
        st = dcs_.delete_leader(std::nullopt);
        out.holds_lock = false;
        break;
    }
    if (!st) {
      spdlog::warn("{}: {} failed: {}", cfg_.name, to_string(a), st.message());
      out.status = st;
      return out;
    }
  }
  return out;
}

}  // namespace pgwarden::ha
