// HA rules. Each branch returns one Decision with a reason a human can follow in the log.
// Safety rule above all: a writable PostgreSQL without a renewed leader lock is demoted.
#include "pgwarden/ha/decide.hpp"

#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/iso_time.hpp"

#include <optional>
#include <string>

namespace pgwarden::ha {

const char* to_string(Action a) {
  switch (a) {
    case Action::kBootstrap: return "bootstrap";
    case Action::kStartPrimary: return "start_primary";
    case Action::kStartReplica: return "start_replica";
    case Action::kAcquireLock: return "acquire_lock";
    case Action::kRenewLock: return "renew_lock";
    case Action::kWriteInitialize: return "write_initialize";
    case Action::kPromote: return "promote";
    case Action::kDemote: return "demote";
    case Action::kReleaseLock: return "release_lock";
    case Action::kCreateReplica: return "create_replica";
    case Action::kFollow: return "follow";
    case Action::kSyncSlots: return "sync_slots";
    case Action::kRewind: return "rewind";
    case Action::kReclone: return "reclone";
    case Action::kStepDown: return "step_down";
    case Action::kClearFailover: return "clear_failover";
    case Action::kRestart: return "restart";
    case Action::kReinitialize: return "reinitialize";
    case Action::kReloadConfig: return "reload_config";
  }
  return "unknown";
}

bool leaves_postgres_alone(Action a) {
  switch (a) {
    case Action::kAcquireLock: case Action::kRenewLock: case Action::kWriteInitialize:
    case Action::kReleaseLock: case Action::kSyncSlots: case Action::kClearFailover:
      return true;
    case Action::kBootstrap: case Action::kStartPrimary: case Action::kStartReplica: case Action::kPromote:
    case Action::kDemote: case Action::kCreateReplica: case Action::kFollow: case Action::kRewind:
    case Action::kReclone: case Action::kStepDown: case Action::kRestart: case Action::kReinitialize:
    case Action::kReloadConfig:
      return false;
  }
  return false;
}

bool routine_upkeep(Action a) { return a == Action::kRenewLock || a == Action::kSyncSlots; }

namespace {

Decision make(std::vector<Action> actions, std::string role, std::string reason) {
  Decision d;
  d.actions = std::move(actions);
  d.reason = std::move(reason);
  d.role = std::move(role);
  return d;
}

bool leader_is_me(const Snapshot& s) { return s.cluster->leader && s.cluster->leader->name == s.me; }

// A manual switchover / failover request (the failover key): {leader, member, scheduled_at}.
struct FailoverRequest {
  std::string leader;     // who must step down ("" : whoever leads)
  std::string candidate;  // who should take over ("" : the healthiest)
  double scheduled_at = 0;  // epoch seconds, 0: now
};

std::optional<FailoverRequest> failover_request(const Snapshot& s) {
  const auto& f = s.cluster->failover;
  if (!f || !f->is_object()) return std::nullopt;
  FailoverRequest r;
  auto str = [&](const char* k) {
    auto it = f->find(k);
    return it != f->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  r.leader = str("leader");
  r.candidate = str("member");
  if (r.candidate.empty()) r.candidate = str("candidate");
  if (r.leader.empty() && r.candidate.empty()) return std::nullopt;  // a cleared key
  if (auto at = str("scheduled_at"); !at.empty()) r.scheduled_at = util::parse_iso8601(at).value_or(0);
  return r;
}

// Whether a peer may take over from a leader at `leader_wal`: it answers, is a replica,
// is not tagged nofailover and is within maximum_lag_on_failover.
std::string why_not_eligible(const Snapshot& s, const PeerStatus& p, int64_t leader_wal) {
  if (!p.reachable) return p.name + " does not answer";
  if (!p.in_recovery) return p.name + " is not a replica";
  if (p.nofailover) return p.name + " is tagged nofailover";
  if (leader_wal - p.wal_position > s.dyn.maximum_lag_on_failover)
    return p.name + " lags " + std::to_string(leader_wal - p.wal_position) + " bytes";
  return "";
}


// May I take the lock when the cluster has none? Not if my lag behind the last known
// leader position exceeds maximum_lag_on_failover, nor if a peer that may fail over is a
// primary, is on a newer timeline or is ahead of me. Peers come from their REST APIs
// when fetched this cycle, else from the positions they published in the DCS.
// Returns an empty string when I am the healthiest, else why not.
std::string why_not_healthiest(const Snapshot& s) {
  if (s.peers_fetched) {
    auto v = is_healthiest(s.me, s.pg.wal_position, s.pg.timeline, s.nofailover, s.cluster->last_lsn,
                           s.dyn.maximum_lag_on_failover, s.peers);
    return v.healthiest ? "" : v.reason;
  }
  const int64_t lag = s.cluster->last_lsn - s.pg.wal_position;
  if (s.cluster->last_lsn > 0 && lag > s.dyn.maximum_lag_on_failover)
    return "my lag " + std::to_string(lag) + " exceeds maximum_lag_on_failover " +
           std::to_string(s.dyn.maximum_lag_on_failover);
  for (const auto& m : s.cluster->members) {
    if (m.name == s.me || m.nofailover()) continue;
    auto it = m.data.find("xlog_location");
    if (it != m.data.end() && it->is_number_integer() && it->get<int64_t>() > s.pg.wal_position &&
        m.state() == "running")
      return m.name + " has published a newer position";
  }
  return "";
}

// Cluster has no initialize key yet.
Decision decide_uninitialized(const Snapshot& s) {
  const auto& c = *s.cluster;
  if (!s.pg.initialized) {
    if (c.leader) return make({}, "uninitialized", "waiting for leader " + c.leader->name + " to bootstrap");
    if (!s.bootstrap_allowed) return make({}, "uninitialized", "bootstrap failed earlier; not retrying in this process");
    if (s.nofailover) return make({}, "uninitialized", "tagged nofailover: waiting for another member to bootstrap");
    return make({Action::kBootstrap}, "master", "cluster is not initialized: trying to bootstrap it");
  }
  // Existing data but no initialize key (e.g. the DCS was wiped): the member with data
  // takes the lock and records its system identifier.
  if (c.leader && !leader_is_me(s))
    return make({}, "uninitialized", "existing data, cluster not initialized, leader is " + c.leader->name);
  if (!s.pg.running)
    return make({Action::kAcquireLock, Action::kStartPrimary, Action::kWriteInitialize}, "master",
                "existing data and no initialize key: taking the lock and starting as primary");
  if (leader_is_me(s))
    return make({Action::kRenewLock, Action::kWriteInitialize}, "master",
                "recording system identifier of existing data as the cluster's");
  return make({Action::kAcquireLock, Action::kWriteInitialize}, "master",
              "existing data and no initialize key: taking the lock");
}

// The data directory was a primary and another member now leads: rewind it from the
// leader, or clone afresh; never start it as it is (its timeline may have diverged).
Decision decide_rejoin(const Snapshot& s) {
  const std::string& leader = s.cluster->leader->name;
  if (s.use_pg_rewind && !s.rewind_failed)
    return make({Action::kRewind, Action::kStartReplica}, "replica",
                "former primary joining leader " + leader + ": rewinding with pg_rewind first");
  if (s.use_pg_rewind && !s.remove_data_on_rewind_failure)
    return make({}, "replica",
                "former primary: pg_rewind failed and remove_data_directory_on_rewind_failure is off; waiting");
  if (s.replica_creation_failed) return make({}, "replica", "former primary: re-cloning failed earlier; waiting");
  return make({Action::kReclone, Action::kStartReplica}, "replica",
              "former primary joining leader " + leader + ": moving the data directory aside and cloning afresh");
}

Decision decide_not_running(const Snapshot& s) {
  const auto& c = *s.cluster;
  if (s.dyn.pause) return make({}, "replica", "PostgreSQL is not running and the cluster is paused: no action");
  if (leader_is_me(s)) {
    // Only data that was a primary may come back as one directly; a replica's data must be
    // promoted, so that it switches to a new timeline.
    if (s.pg.former_primary)
      return make({Action::kRenewLock, Action::kStartPrimary}, "master",
                  "PostgreSQL is not running: starting it as primary, I hold the leader lock");
    return make({Action::kRenewLock, Action::kStartReplica}, "master",
                "PostgreSQL is not running: starting read-only, then promoting (I hold the leader lock)");
  }
  if (!c.leader)
    return make({Action::kStartReplica}, "replica",
                "PostgreSQL is not running and the cluster has no leader: starting read-only first");
  if (s.pg.former_primary) return decide_rejoin(s);
  return make({Action::kStartReplica}, "replica", "PostgreSQL is not running: starting as a replica of " + c.leader->name);
}

// The leader and a switchover request: step down for a healthy candidate when the time has
// come; clear requests that are done, stale or impossible. nullopt: no request to act on.
std::optional<Decision> leader_handles_failover(const Snapshot& s, const std::vector<Action>& keep) {
  auto req = failover_request(s);
  if (!req) return std::nullopt;
  auto with = [&](Action a) {
    std::vector<Action> v = keep;
    v.push_back(a);
    return v;
  };
  if (!req->leader.empty() && req->leader != s.me)
    return make(with(Action::kClearFailover), "master",
                "clearing the switchover request: it names " + req->leader + " as leader, I am the leader");
  if (req->candidate == s.me)
    return make(with(Action::kClearFailover), "master", "switchover to me is complete: clearing the request");
  if (req->scheduled_at > s.now)
    return make(keep, "master", "switchover" + (req->candidate.empty() ? std::string() : " to " + req->candidate) +
                                     " scheduled: waiting");
  if (s.dyn.pause && req->candidate.empty())
    return make(with(Action::kClearFailover), "master", "switchover refused: paused and no candidate named");
  std::string refusal;
  bool any = false;
  for (const auto& p : s.peers) {
    if (!req->candidate.empty() && p.name != req->candidate) continue;
    std::string why = why_not_eligible(s, p, s.pg.wal_position);
    if (why.empty()) any = true;
    else refusal += (refusal.empty() ? "" : "; ") + why;
  }
  if (!req->candidate.empty() && !s.cluster->member(req->candidate)) refusal = req->candidate + " is not a member";
  if (!any)
    return make(with(Action::kClearFailover), "master",
                "switchover refused: " + (refusal.empty() ? std::string("no eligible candidate") : refusal));
  return make({Action::kStepDown}, "replica",
              "switching over" + (req->candidate.empty() ? std::string() : " to " + req->candidate) +
                  ": stopping PostgreSQL cleanly and releasing the lock");
}

Decision decide_leader(const Snapshot& s) {
  std::vector<Action> keep{Action::kRenewLock};
  if (s.dyn.use_slots) keep.push_back(Action::kSyncSlots);
  if (!s.pg.query_ok) return make({Action::kRenewLock}, "master", "I hold the leader lock; PostgreSQL does not answer yet");
  if (!s.pg.in_recovery) {
    if (auto d = leader_handles_failover(s, keep)) return *d;
  }
  if (s.pg.in_recovery) {
    std::vector<Action> a{Action::kRenewLock};
    if (s.dyn.use_slots) a.push_back(Action::kSyncSlots);
    a.push_back(Action::kPromote);
    return make(a, "master", "promoting: I hold the leader lock but PostgreSQL is a replica");
  }
  return make(keep, "master", "no action: I am the leader with the lock");
}

Decision decide_running(const Snapshot& s) {
  const auto& c = *s.cluster;
  const bool primary = s.pg.query_ok && !s.pg.in_recovery;
  if (leader_is_me(s)) return decide_leader(s);
  if (s.dyn.pause) return make({}, primary ? "master" : "replica", "cluster is paused: no action");
  if (!c.leader) {
    if (s.nofailover)
      return primary ? make({Action::kDemote}, "replica", "demoting: tagged nofailover, cannot hold the lock")
                     : make({}, "replica", "cluster has no leader; tagged nofailover, not taking part");
    if (!s.pg.query_ok) return make({}, "replica", "cluster has no leader; PostgreSQL does not answer yet");
    // A switchover in progress: its candidate takes the lock; the others leave it the time
    // to, as long as it is healthy.
    auto req = failover_request(s);
    if (req && !req->candidate.empty() && req->candidate != s.me) {
      for (const auto& p : s.peers)
        if (p.name == req->candidate && p.reachable && !p.nofailover)
          return primary ? make({Action::kDemote}, "replica", "demoting: switchover to " + p.name + " in progress")
                         : make({}, "replica", "switchover to " + p.name + " in progress: leaving it the lock");
    }
    std::string why_not;
    if (req && req->candidate == s.me) {
      // The named candidate does not defer to peers; it only must have what the old leader
      // wrote (within maximum_lag_on_failover).
      const int64_t lag = c.last_lsn - s.pg.wal_position;
      if (c.last_lsn > 0 && lag > s.dyn.maximum_lag_on_failover)
        why_not = "switchover candidate, but my lag " + std::to_string(lag) + " exceeds maximum_lag_on_failover";
    } else {
      why_not = why_not_healthiest(s);
    }
    if (why_not.empty()) {
      // Slots first (physical slots can be created on a standby): replicas that follow us
      // the moment the lock changes find theirs instead of retrying 5 s later.
      std::vector<Action> a{Action::kAcquireLock};
      if (s.dyn.use_slots) a.push_back(Action::kSyncSlots);
      if (!primary) a.push_back(Action::kPromote);
      return make(a, "master",
                  primary ? "acquiring the leader lock: cluster has no leader and I am primary"
                          : "cluster has no leader and I am the healthiest (" + postgres::format_lsn(s.pg.wal_position) +
                                "): acquiring the lock and promoting");
    }
    return primary ? make({Action::kDemote}, "replica", "demoting: cluster has no leader and " + why_not)
                   : make({}, "replica", "cluster has no leader; not the healthiest: " + why_not);
  }
  if (primary) return make({Action::kDemote}, "replica", "demoting: " + c.leader->name + " holds the leader lock");
  if (s.following != c.leader->name)
    return make({Action::kFollow}, "replica", "following new leader " + c.leader->name);
  if (!s.pg.query_ok)
    return make({}, "replica", "PostgreSQL is still starting up as a standby; following leader " + c.leader->name);
  return make({}, "replica", "no action: following leader " + c.leader->name);
}

// Initialized cluster, empty data directory: clone from the leader (or, without one, with a
// method that needs none).
Decision decide_empty_data(const Snapshot& s) {
  const auto& c = *s.cluster;
  if (c.initialize->empty() && !c.leader)
    return make({}, "uninitialized", "another member is bootstrapping the cluster: waiting");
  if (s.replica_creation_failed)
    return make({}, "uninitialized", "creating a replica failed; retrying on a later cycle");
  if (c.leader) {
    if (leader_is_me(s)) return make({}, "uninitialized", "I hold the leader lock but have no data: waiting for it to expire");
    return make({Action::kCreateReplica, Action::kStartReplica}, "replica",
                "creating a replica of leader " + c.leader->name);
  }
  if (s.can_clone_without_leader)
    return make({Action::kCreateReplica, Action::kStartReplica}, "replica",
                "cluster has no leader: creating a replica with a method that needs none");
  bool anyone_has_data = false;
  for (const auto& m : c.members)
    anyone_has_data = anyone_has_data || (m.name != s.me && (m.state() == "running" || m.state() == "starting"));
  Decision d = make({}, "uninitialized", "cluster has no leader and no replica method works without one: waiting");
  if (!anyone_has_data) {
    // The leftover state of a reinstall over old objects: nobody will ever lead.
    d.problem = "the DCS says the cluster was initialised (system identifier " +
                (c.initialize->empty() ? std::string("unknown") : *c.initialize) +
                ") but there is no leader, no member has data and no replica method works without a leader; "
                "if this is a new cluster, delete " +
                (s.initialize_location.empty() ? std::string("the initialize key") : s.initialize_location) +
                " to bootstrap it again";
    d.reason = "bootstrap impossible: " + d.problem;
  }
  return d;
}

Decision decide_core(const Snapshot& s) {
  if (!s.dcs_ok) {
    if (s.dyn.pause) return make({}, s.pg.in_recovery ? "replica" : "master", "DCS is not accessible; paused: no action");
    if (s.pg.running && s.pg.query_ok && !s.pg.in_recovery)
      return make({Action::kDemote}, "replica", "demoting: DCS is not accessible, the leader lock cannot be renewed");
    if (s.pg.running && !s.pg.query_ok && s.was_leader)
      return make({Action::kDemote}, "replica", "demoting: DCS is not accessible and I was the leader");
    return make({}, s.pg.running ? "replica" : "uninitialized", "DCS is not accessible: no action");
  }
  const auto& c = *s.cluster;
  if (!c.initialize) return decide_uninitialized(s);
  if (!c.initialize->empty() && !s.pg.sysid.empty() && *c.initialize != s.pg.sysid)
    return make(s.pg.running && !s.pg.in_recovery ? std::vector<Action>{Action::kDemote} : std::vector<Action>{},
                "uninitialized",
                "system identifier mismatch: cluster is " + *c.initialize + ", my data is " + s.pg.sysid);
  if (!s.pg.initialized) return decide_empty_data(s);
  Decision d = s.pg.running ? decide_running(s) : decide_not_running(s);
  if (c.initialize->empty() && leader_is_me(s) && !s.pg.sysid.empty()) d.actions.push_back(Action::kWriteInitialize);
  return d;
}

bool has(const Decision& d, Action a) {
  for (Action x : d.actions)
    if (x == a) return true;
  return false;
}

// Only bookkeeping around a running PostgreSQL: a restart may follow.
bool steady(const Decision& d) {
  for (Action a : d.actions)
    if (a != Action::kRenewLock && a != Action::kSyncSlots && a != Action::kClearFailover &&
        a != Action::kWriteInitialize && a != Action::kFollow)
      return false;
  return true;
}

bool starts_postgres(const Decision& d) { return has(d, Action::kStartPrimary) || has(d, Action::kStartReplica); }

std::string pg_role(const Snapshot& s) {
  if (!s.pg.running || !s.pg.query_ok) return "";
  return s.pg.in_recovery ? "replica" : "master";
}

// Adds a restart of the running PostgreSQL to a steady decision; a leader renews the lock
// before (the steady decision starts with it) and after.
void add_restart(const Snapshot& s, Decision& d, const std::string& why) {
  d.actions.push_back(Action::kRestart);
  if (leader_is_me(s)) d.actions.push_back(Action::kRenewLock);
  d.reason += "; " + why;
}

// POST /restart (now) and a scheduled restart that is due.
void decide_restart(const Snapshot& s, Decision& d) {
  bool restarting = false;
  for (const auto& r : s.requests) {
    if (r.kind != RequestKind::kRestart) continue;
    if (restarting) {
      d.replies.emplace_back(r.id, RequestReply{503, "restart already in progress"});
      continue;
    }
    if (!s.pg.initialized) {
      d.replies.emplace_back(r.id, RequestReply{503, "restart failed: PostgreSQL has no data directory"});
      continue;
    }
    if (!s.pg.running) {
      // Nothing to stop: the restart is the start the loop is about to do, if it does one.
      if (!starts_postgres(d)) {
        d.replies.emplace_back(r.id, RequestReply{503, "restart failed: PostgreSQL is not running and is not being started: " + d.reason});
        continue;
      }
      restarting = true;
      d.restart_request = r.id;
      d.restart_timeout = r.restart.timeout;
      continue;
    }
    if (std::string why = restart_mismatch(r.restart, pg_role(s), s.pg.server_version, s.pg.pending_restart);
        !why.empty()) {
      d.replies.emplace_back(r.id, RequestReply{503, "restart conditions are not satisfied"});
      d.reason += "; not restarting: " + why;
      continue;
    }
    if (!steady(d)) {
      d.replies.emplace_back(r.id, RequestReply{503, "restart failed: busy: " + d.reason});
      continue;
    }
    restarting = true;
    d.restart_request = r.id;
    d.restart_timeout = r.restart.timeout;
    add_restart(s, d, "restarting PostgreSQL on request");
  }
  const auto& sr = s.scheduled_restart;
  if (restarting || !sr || s.dyn.pause) return;
  const double delta = sr->at - s.now;
  if (delta > 0) return;
  if (delta < -1.5 * s.dyn.loop_wait) {
    d.drop_scheduled_restart = true;
    d.reason += "; dropping a stale scheduled restart";
    return;
  }
  if (!sr->postmaster_start_time.empty() && !s.pg.postmaster_start_time.empty() &&
      sr->postmaster_start_time != s.pg.postmaster_start_time) {
    d.drop_scheduled_restart = true;
    d.reason += "; cancelling the scheduled restart: PostgreSQL restarted at " + s.pg.postmaster_start_time;
    return;
  }
  if (!s.pg.running || !steady(d)) return;  // due, but not now; it goes stale if this lasts
  if (std::string why = restart_mismatch(sr->filters, pg_role(s), s.pg.server_version, s.pg.pending_restart);
      !why.empty()) {
    d.drop_scheduled_restart = true;
    d.reason += "; scheduled restart not done: " + why;
    return;
  }
  d.drop_scheduled_restart = true;
  d.restart_timeout = sr->filters.timeout;
  add_restart(s, d, "scheduled restart");
}

// POST /reinitialize: a replica throws its data away (moved aside) and clones it again.
void decide_reinitialize(const Snapshot& s, Decision& d) {
  bool started = false;
  for (const auto& r : s.requests) {
    if (r.kind != RequestKind::kReinitialize) continue;
    std::string refusal;
    if (!s.dcs_ok) refusal = "DCS is not accessible, can not reinitialize";
    else if (!s.cluster->leader) refusal = "Cluster has no leader, can not reinitialize";
    else if (leader_is_me(s)) refusal = "I am the leader, can not reinitialize";
    else if (started) refusal = "reinitialize already in progress";
    else if (has(d, Action::kRestart) || d.restart_request) refusal = "restart already in progress";
    if (!refusal.empty()) {
      d.replies.emplace_back(r.id, RequestReply{503, refusal});
      continue;
    }
    started = true;
    d.replies.emplace_back(r.id, RequestReply{200, "reinitialize started"});
    d.actions = {Action::kReinitialize, Action::kStartReplica};
    d.role = "replica";
    d.reason = "reinitializing on request: moving the data directory aside and cloning from " + s.cluster->leader->name;
    d.problem.clear();
  }
}

// Configuration files follow the effective configuration (dynamic config, SIGHUP, POST /reload).
void decide_reload(const Snapshot& s, Decision& d) {
  if (!(s.reload_requested || s.config_stale) || !s.pg.running || !s.pg.query_ok) return;
  for (Action a : d.actions)
    if (a != Action::kRenewLock && a != Action::kSyncSlots && a != Action::kClearFailover &&
        a != Action::kWriteInitialize && a != Action::kAcquireLock)
      return;  // the other actions write the configuration themselves
  d.actions.push_back(Action::kReloadConfig);
  d.reason += s.reload_requested ? "; reloading the configuration" : "; configuration changed: reloading PostgreSQL";
}

}  // namespace

Decision decide(const Snapshot& s) {
  Decision d = decide_core(s);
  decide_restart(s, d);
  decide_reinitialize(s, d);
  decide_reload(s, d);
  return d;
}

}  // namespace pgwarden::ha
