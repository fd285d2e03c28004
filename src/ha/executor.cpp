#include "pgwarden/ha/executor.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "pgwarden/postgres/custom_bootstrap.hpp"
#include "pgwarden/postgres/recovery.hpp"
#include "pgwarden/postgres/replica.hpp"
#include "pgwarden/postgres/rewind.hpp"
#include "pgwarden/postgres/slots.hpp"

namespace pgwarden::ha {
namespace {

double epoch_now() {
  using namespace std::chrono;
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

std::string iso_now() {
  auto t = std::chrono::system_clock::now();
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  auto ms = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() % 1000000;
  char buf[64];
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  std::snprintf(out, sizeof out, "%s.%06lld+00:00", buf, static_cast<long long>(ms));
  return out;
}

}  // namespace

std::string Executor::leader_conn_url(const Snapshot& s) const {
  if (!s.cluster->leader || s.cluster->leader->name == s.me) return "";
  const auto* leader = s.cluster->member(s.cluster->leader->name);
  return leader ? leader->conn_url() : "";
}

std::chrono::milliseconds Executor::pg_ctl_timeout() const {
  return std::chrono::seconds(std::max(10, cfg_.postgresql.pg_ctl_timeout));
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
  if (std::string url = leader_conn_url(s); !url.empty()) {
    p["primary_conninfo"] = postgres::replica_conninfo(cfg_, url);
    if (s.dyn.use_slots) p["primary_slot_name"] = postgres::slot_name_from_member_name(s.me);
  }
  return p;
}

std::vector<std::string> Executor::pg_hba(const Snapshot& s) const {
  if (!cfg_.postgresql.pg_hba.empty()) return cfg_.postgresql.pg_hba;
  return s.dyn.pg_hba;
}

Status Executor::write_config(bool as_primary, const Snapshot& s) {
  std::vector<std::string> hba = pg_hba(s);
  if (auto st = pg_.write_configuration(parameters_for(as_primary, s), hba); !st) return st;
  written_parameters_ = config::effective_parameters(cfg_, s.dyn);
  written_hba_ = std::move(hba);
  ++config_writes_;
  return Status::Ok();
}

bool Executor::config_stale(const config::DynamicConfig& dyn) const {
  return config_stale(dyn, config::effective_parameters(cfg_, dyn));
}

bool Executor::config_stale(const config::DynamicConfig& dyn, const nlohmann::json& effective) const {
  if (!written_parameters_) return true;
  const std::vector<std::string>& hba = cfg_.postgresql.pg_hba.empty() ? dyn.pg_hba : cfg_.postgresql.pg_hba;
  return *written_parameters_ != effective || written_hba_ != hba;
}

// A standby that does not hold the lock waits pg_ctl_timeout for PostgreSQL, as Patroni's
// replica start does; primary_start_timeout is for a leader's own start.
Status Executor::start(bool as_primary, const Snapshot& s) {
  const bool holds_lock = s.cluster->leader && s.cluster->leader->name == s.me;
  if (as_primary || holds_lock) return start(as_primary, s, start_timeout(s), "on_start");
  Status st = start(false, s, pg_ctl_timeout(), "on_start");
  if (st.code() != Code::kUnavailable) return st;
  // The postmaster runs but does not accept connections yet (a standby replaying or waiting
  // for WAL to reach a consistent state). That is not a failure: the loop goes on (it keeps
  // the member key, follows a new leader, shuts down on request) and reports "starting";
  // on_start fires on the first cycle that finds PostgreSQL answering.
  spdlog::info("{}: still starting up as a standby after {} s; going on with the loop", cfg_.name,
               std::chrono::duration_cast<std::chrono::seconds>(pg_ctl_timeout()).count());
  set_state("starting");
  following_ = s.cluster->leader ? s.cluster->leader->name : "";
  start_pending_ = true;
  return Status::Ok();
}

// A standby start the loop stopped waiting for ends on a later cycle: PostgreSQL answers
// (on_start fires now, as Patroni's check for the end of startup does) or its postmaster is gone.
void Executor::settle_pending_start(const Snapshot& s) {
  if (!start_pending_) return;
  if (s.pg.running && s.pg.query_ok) {
    spdlog::info("{}: PostgreSQL has started as a standby", cfg_.name);
    set_state("running");
    callbacks_.fire("on_start", "replica");
    start_pending_ = false;
  } else if (!s.pg.running) {
    spdlog::warn("{}: PostgreSQL stopped before its start as a standby completed (see {})", cfg_.name, pg_.log_file());
    set_state("start failed");
    start_pending_ = false;
  }
}

Status Executor::start(bool as_primary, const Snapshot& s, std::chrono::milliseconds timeout, const char* callback) {
  const std::string& data_dir = cfg_.postgresql.data_dir;
  if (auto st = pg_.write_pgpass(); !st) return st;
  if (auto st = write_config(as_primary, s); !st) return st;
  auto st = as_primary ? postgres::remove_recovery_signals(data_dir) : postgres::write_standby_signal(data_dir);
  if (!st) return st;
  set_state("starting");
  st = pg_.start(timeout);
  if (!st) {
    set_state("start failed");
    return st;
  }
  set_state("running");
  following_ = as_primary || !s.cluster->leader || s.cluster->leader->name == s.me ? "" : s.cluster->leader->name;
  callbacks_.fire(callback, as_primary ? "master" : "replica");
  return Status::Ok();
}

// POST /restart: a fast stop and a start in the role PostgreSQL has now, as Patroni's
// Postgresql.restart (on_restart instead of on_stop/on_start).
Status Executor::restart(const Snapshot& s, int timeout_seconds) {
  start_pending_ = false;  // PostgreSQL is stopped on purpose: that start is over
  const bool as_primary = s.pg.query_ok && !s.pg.in_recovery;
  if (pg_.is_running()) {
    set_state("restarting");
    if (auto st = pg_.stop("fast", pg_ctl_timeout()); !st) {
      set_state("restart failed (running)");
      return st;
    }
  }
  auto timeout = timeout_seconds > 0 ? std::chrono::milliseconds(std::chrono::seconds(timeout_seconds)) : start_timeout(s);
  auto st = start(as_primary, s, timeout, "on_restart");
  if (!st) set_state("restart failed (" + pg_state_hint() + ")");
  return st;
}

// POST /reinitialize: stop at once, keep the old data (moved aside), clone from the leader.
Status Executor::reinitialize(const Snapshot& s) {
  start_pending_ = false;  // PostgreSQL is stopped on purpose: that start is over
  if (pg_.is_running()) {
    set_state("stopping");
    if (auto st = pg_.stop("immediate", std::chrono::seconds(std::max(10, s.dyn.retry_timeout))); !st) return st;
    callbacks_.fire("on_stop", s.pg.in_recovery ? "replica" : "master");
  }
  following_.clear();
  if (!pg_.data_directory_empty()) {
    auto moved = pg_.move_data_directory_aside();
    if (!moved) return moved.status();
    spdlog::warn("{}: reinitialize: old data directory moved aside to {}", cfg_.name, *moved);
  }
  return create_replica(s);
}

// The configuration files follow the effective configuration; PostgreSQL reloads them.
// Parameters that need a restart show up as pending_restart.
Status Executor::reload_config(const Snapshot& s) {
  const bool as_primary = s.pg.query_ok && !s.pg.in_recovery;
  if (auto st = write_config(as_primary, s); !st) return st;
  if (auto st = pg_.reload(); !st) return st;
  spdlog::info("{}: PostgreSQL configuration reloaded", cfg_.name);
  callbacks_.fire("on_reload", as_primary ? "master" : "replica");
  return Status::Ok();
}

Status Executor::promote(const Snapshot& s) {
  set_state("promoting");
  // PostgreSQL removes standby.signal itself when the promotion completes.
  if (auto st = pg_.promote(start_timeout(s)); !st) return st;
  if (auto st = write_config(true, s); !st) return st;
  if (auto st = pg_.reload(); !st) spdlog::warn("reload after promote failed: {}", st.message());
  set_state("running");
  following_.clear();
  callbacks_.fire("on_role_change", "master");
  record_history(s);
  return Status::Ok();
}

// Appends the switch that just happened to the DCS history, as Patroni does:
// [timeline, switch_lsn, reason, timestamp, new_leader].
void Executor::record_history(const Snapshot& s) {
  auto state = pg_.query_state();
  if (!state || state->timeline <= 1) return;
  nlohmann::json from_file = postgres::read_timeline_history(cfg_.postgresql.data_dir, state->timeline);
  nlohmann::json history = s.cluster->history && s.cluster->history->is_array() ? *s.cluster->history
                                                                              : nlohmann::json::array();
  for (const auto& entry : from_file) {
    int tl = entry[0].get<int>();
    bool known = false;
    for (const auto& h : history) known = known || (h.is_array() && !h.empty() && h[0].is_number() && h[0].get<int>() == tl);
    if (known) continue;
    nlohmann::json item = entry;
    if (tl == state->timeline - 1) {
      item.push_back(iso_now());
      item.push_back(s.me);
    }
    history.push_back(item);
  }
  if (auto st = dcs_.set_history_value(history.dump()); !st) spdlog::warn("could not write history: {}", st.message());
}

// A running replica re-pointed at a new leader: primary_conninfo and primary_slot_name
// are reloadable since PostgreSQL 13, so no restart.
Status Executor::follow(const Snapshot& s) {
  if (auto st = pg_.write_pgpass(); !st) return st;
  if (auto st = write_config(false, s); !st) return st;
  if (auto st = postgres::write_standby_signal(cfg_.postgresql.data_dir); !st) return st;
  if (auto st = pg_.reload(); !st) return st;
  following_ = s.cluster->leader ? s.cluster->leader->name : "";
  callbacks_.fire("on_role_change", "replica");
  return Status::Ok();
}

Status Executor::create_replica(const Snapshot& s) {
  if (auto st = pg_.write_pgpass(); !st) return st;
  set_state("creating replica");
  std::string slot = s.dyn.use_slots ? postgres::slot_name_from_member_name(s.me) : "";
  auto method = postgres::create_replica(cfg_, pg_env_, postgres::CloneSource{leader_conn_url(s), slot});
  if (!method) {
    set_state("stopped");
    replica_retry_after_ = epoch_now() + 5.0 * std::max(1, s.dyn.loop_wait);
    return method.status();
  }
  spdlog::info("{}: replica created with method {}", cfg_.name, *method);
  set_state("stopped");
  return Status::Ok();
}

Status Executor::reclone(const Snapshot& s) {
  auto moved = pg_.move_data_directory_aside();
  if (!moved) return moved.status();
  spdlog::warn("{}: old data directory moved aside to {}", cfg_.name, *moved);
  return create_replica(s);
}

Status Executor::rewind(const Snapshot& s) {
  std::string url = leader_conn_url(s);
  if (url.empty()) return Status::Unavailable("leader has no connection URL yet");
  if (auto st = pg_.write_pgpass(); !st) return st;
  // With a restore_command (a WAL archive), pg_rewind may fetch the target's own WAL that
  // pg_wal no longer has; it reads the command from the configuration files, so these are
  // written for the standby this member becomes first (recovery settings are ignored until
  // standby.signal is back).
  const nlohmann::json params = parameters_for(false, s);
  const auto rc = params.find("restore_command");
  const bool restore_target_wal = rc != params.end() && rc->is_string() && !rc->get<std::string>().empty();
  if (restore_target_wal) {
    if (auto st = write_config(false, s); !st) return st;
  }
  set_state("rewinding");
  auto st = postgres::rewind(cfg_, pg_env_, url, restore_target_wal);
  set_state("stopped");
  if (!st) {
    // A source that cannot be reached or is not promoted yet (right after a switchover) is
    // worth another try next cycle; only a rewind that ran and failed is final.
    if (st.code() != Code::kUnavailable) rewind_failed_ = true;
    return st;
  }
  spdlog::info("{}: pg_rewind from {} done", cfg_.name, s.cluster->leader->name);
  return Status::Ok();
}

// Slots for every other member, so replicas never lose the WAL they still need.
Status Executor::sync_slots(const Snapshot& s) {
  std::vector<std::string> wanted;
  for (const auto& m : s.cluster->members)
    if (m.name != s.me) wanted.push_back(postgres::slot_name_from_member_name(m.name));
  // The list this cycle's state query took: an idle leader needs no query for its slots.
  return postgres::sync_physical_slots(pg_, wanted, s.pg.physical_slots ? &*s.pg.physical_slots : nullptr);
}

// Never leaves PostgreSQL writable: stop fast; then, with no other leader, start read-only.
// With another leader the next cycle rejoins it (rewind or clone first: our timeline may
// have diverged).
Status Executor::demote(const Snapshot& s) {
  start_pending_ = false;  // PostgreSQL is stopped on purpose: that start is over
  set_state("stopping");
  if (auto st = pg_.stop("fast", pg_ctl_timeout()); !st) {
    spdlog::error("demote: fast stop failed ({}); stopping immediately", st.message());
    if (auto st2 = pg_.stop("immediate", std::chrono::seconds(30)); !st2) return st2;
  }
  callbacks_.fire("on_role_change", "demoted");
  if (s.cluster->leader && s.cluster->leader->name != s.me) {
    set_state("stopped");
    return Status::Ok();
  }
  if (auto st = write_config(false, s); !st) return st;
  if (auto st = postgres::write_standby_signal(cfg_.postgresql.data_dir); !st) return st;
  set_state("starting");
  if (auto st = pg_.start(start_timeout(s)); !st) {
    set_state("start failed");
    return st;
  }
  set_state("running");
  following_.clear();
  callbacks_.fire("on_role_change", "replica");
  return Status::Ok();
}

// A planned switchover: a clean shutdown makes PostgreSQL send every WAL record to the
// streaming replicas before it stops; the lock is then released with the shutdown
// checkpoint's position, which the candidate must have before it takes over.
Status Executor::step_down() {
  start_pending_ = false;  // PostgreSQL is stopped on purpose: that start is over
  set_state("stopping");
  if (auto st = pg_.stop("fast", pg_ctl_timeout()); !st) {
    spdlog::error("switchover: clean stop failed ({}); keeping the lock", st.message());
    set_state("running");
    return st;
  }
  callbacks_.fire("on_role_change", "demoted");
  auto control = postgres::read_control_data(cfg_, pg_env_);
  set_state("stopped");
  following_.clear();
  if (auto st = dcs_.delete_leader(control.checkpoint_location); !st) return st;
  spdlog::info("{}: switchover: PostgreSQL stopped at {}, leader lock released", cfg_.name,
               control.checkpoint_location ? postgres::format_lsn(*control.checkpoint_location) : std::string("?"));
  return Status::Ok();
}

// bootstrap.method names a script (typically a restore from a backup): run it, start what it
// left with trust access for our users (the restored passwords are the source cluster's), and
// wait until PostgreSQL has left recovery as a primary, as Patroni's custom bootstrap.
Status Executor::custom_bootstrap(const Snapshot& s) {
  const std::string& name = cfg_.bootstrap.method;
  auto it = cfg_.bootstrap.methods.find(name);
  if (it == cfg_.bootstrap.methods.end())
    return Status::Invalid("bootstrap.method names \"" + name + "\" but there is no bootstrap." + name + " section");
  const config::CustomMethod& method = it->second;
  set_state("running custom bootstrap script");
  if (auto st = postgres::run_custom_bootstrap(cfg_, pg_env_, method); !st) {
    set_state("custom bootstrap failed");
    return st;
  }
  if (!pg_.is_initialized())
    return Status::Failed("custom bootstrap script " + name + " exited 0 but left no cluster in " +
                          cfg_.postgresql.data_dir);
  auto prepared = postgres::prepare_restored_data_dir(cfg_, method);
  if (!prepared) return prepared.status();
  if (auto st = pg_.write_pgpass(); !st) return st;
  nlohmann::json params = parameters_for(true, s);
  for (const auto& [k, v] : prepared->recovery_parameters.items()) params[k] = v;
  if (prepared->hot_standby_off) {
    params["hot_standby"] = "off";
    restart_after_bootstrap_ = true;
  }
  if (auto st = pg_.write_configuration(params, postgres::custom_bootstrap_hba(cfg_, pg_.local_host())); !st)
    return st;
  set_state("starting");
  // pg_ctl may give up waiting while a long recovery runs (kUnavailable): the wait below
  // decides when the cluster is ready.
  if (auto st = pg_.start(start_timeout(s)); !st && st.code() != Code::kUnavailable) return st;
  spdlog::info("{}: custom bootstrap {} done; {}", cfg_.name, name,
               prepared->recovery ? "waiting for the end of recovery" : "starting PostgreSQL");
  return wait_for_end_of_recovery();
}

Status Executor::wait_for_end_of_recovery() {
  using clock = std::chrono::steady_clock;
  set_state("waiting for end of recovery after bootstrap");
  auto next_log = clock::now() + std::chrono::seconds(30);
  bool promoted = false;
  for (;;) {
    if (stopping_ && stopping_()) return Status::Failed("shutdown requested while waiting for the end of recovery");
    if (!pg_.is_running())
      return Status::Failed("PostgreSQL stopped before its recovery ended (a recovery_target_action of shutdown, "
                            "or see " + pg_.log_file() + ")");
    if (auto q = pg_.query_state()) {
      if (!q->in_recovery) {
        set_state("running");
        spdlog::info("{}: recovery after bootstrap ended on timeline {}", cfg_.name, q->timeline);
        return Status::Ok();
      }
      if (q->replay_paused && !promoted) {
        // recovery_target_action pause (PostgreSQL's default): the target is reached.
        spdlog::info("{}: recovery paused at its target; promoting", cfg_.name);
        if (auto st = pg_.promote(pg_ctl_timeout()); !st) return st;
        promoted = true;
      }
    }
    if (clock::now() >= next_log) {
      spdlog::info("{}: waiting for end of recovery after bootstrap", cfg_.name);
      next_log = clock::now() + std::chrono::seconds(30);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Status Executor::bootstrap(const Snapshot& s, Outcome& out) {
  if (auto st = dcs_.initialize(true, ""); !st) {
    if (st.code() == Code::kConflict) return Status::Conflict("lost the initialize race: another member bootstraps the cluster");
    return st;
  }
  spdlog::info("{}: won the initialize race; bootstrapping a new cluster with {}", cfg_.name, cfg_.bootstrap.method);
  auto fail = [&](const Status& why, bool move_aside) {
    out.fatal = true;
    out.bootstrap_failed = true;
    set_state("initdb failed");
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
  if (cfg_.bootstrap.method != "initdb") {
    if (auto st = custom_bootstrap(s); !st) return fail(st, true);
  } else {
    set_state("initializing new cluster");
    if (auto st = pg_.initdb(); !st) return fail(st, true);
    if (auto st = pg_.write_pgpass(); !st) return fail(st, true);
    // initdb's own pg_hba (local trust) stays until the users exist.
    if (auto st = pg_.write_configuration(parameters_for(true, s), {}); !st) return fail(st, true);
    if (auto st = pg_.start(start_timeout(s)); !st) return fail(st, true);
  }
  if (auto st = pg_.create_users(); !st) return fail(st, true);
  if (auto st = pg_.run_post_init(std::chrono::seconds(600)); !st) return fail(st, true);
  if (auto st = write_config(true, s); !st) return fail(st, true);
  if (restart_after_bootstrap_) {
    // hot_standby was off for the recovery; the command line only changes with a restart.
    restart_after_bootstrap_ = false;
    if (auto st = pg_.stop("fast", start_timeout(s)); !st) return fail(st, true);
    if (auto st = pg_.start(start_timeout(s)); !st) return fail(st, true);
  } else if (auto st = pg_.reload(); !st) {
    return fail(st, true);
  }
  std::string sysid = pg_.system_identifier();
  // The lock first, then the system identifier: a member that sees the identifier also
  // sees a leader to clone from, never an initialised cluster without one.
  if (auto st = dcs_.attempt_to_acquire_leader(); !st) return fail(st, false);
  out.holds_lock = true;
  if (auto st = dcs_.initialize(false, sysid); !st) {
    dcs_.delete_leader(std::nullopt);
    out.holds_lock = false;
    return fail(st, true);
  }
  if (auto st = dcs_.set_config_value(cfg_.bootstrap.dcs.dump(), std::nullopt); !st)
    spdlog::warn("could not write the dynamic configuration: {}", st.message());
  set_state("running");
  spdlog::info("{}: initialized a new cluster (system identifier {})", cfg_.name, sysid);
  callbacks_.fire("on_start", "master");
  return Status::Ok();
}

void Executor::set_state(const std::string& state) {
  std::lock_guard<std::mutex> l(state_mu_);
  state_hint_ = state;
}

std::string Executor::pg_state_hint() const {
  std::lock_guard<std::mutex> l(state_mu_);
  return state_hint_;
}

Outcome Executor::execute(const Decision& d, const Snapshot& s) {
  settle_pending_start(s);
  Outcome out;
  out.holds_lock = s.cluster->leader && s.cluster->leader->name == s.me && s.dcs_ok;
  for (Action a : d.actions) {
    Status st;
    switch (a) {
      case Action::kBootstrap: st = bootstrap(s, out); break;
      case Action::kStartPrimary:
      case Action::kStartReplica:
        if (d.restart_request) {
          // A restart request for a stopped PostgreSQL: this start is the restart.
          auto timeout = d.restart_timeout > 0 ? std::chrono::milliseconds(std::chrono::seconds(d.restart_timeout))
                                               : start_timeout(s);
          st = start(a == Action::kStartPrimary, s, timeout, "on_restart");
          out.restart_status = st;
        } else {
          st = start(a == Action::kStartPrimary, s);
        }
        break;
      case Action::kRestart:
        st = restart(s, d.restart_timeout);
        out.restart_status = st;
        break;
      case Action::kReinitialize: st = reinitialize(s); break;
      case Action::kReloadConfig: st = reload_config(s); break;
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
      case Action::kCreateReplica: st = create_replica(s); break;
      case Action::kFollow: st = follow(s); break;
      case Action::kSyncSlots:
        // Slots help replicas; failing to manage them must not stop a promotion.
        if (auto ss = sync_slots(s); !ss) spdlog::warn("{}: replication slots: {}", cfg_.name, ss.message());
        break;
      case Action::kRewind: st = rewind(s); break;
      case Action::kReclone: st = reclone(s); break;
      case Action::kStepDown:
        st = step_down();
        if (st) out.holds_lock = false;
        break;
      case Action::kClearFailover:
        // Best effort: a request written meanwhile (index changed) is left for the next cycle.
        if (auto cs = dcs_.set_failover_value("{}", s.cluster->failover_index); !cs)
          spdlog::warn("{}: could not clear the switchover request: {}", cfg_.name, cs.message());
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
