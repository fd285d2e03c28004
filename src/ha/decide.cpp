// HA rules. Each branch returns one Decision with a reason a human can follow in the log.
// Safety rule above all: a writable PostgreSQL without a renewed leader lock is demoted.
#include "pgwarden/ha/decide.hpp"

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
  }
  return "unknown";
}

namespace {

Decision make(std::vector<Action> actions, std::string role, std::string reason) {
  return Decision{std::move(actions), std::move(reason), std::move(role)};
}

bool leader_is_me(const Snapshot& s) { return s.cluster.leader && s.cluster.leader->name == s.me; }

// No other member that may fail over has published a WAL position ahead of ours. Peers'
// positions come from their member keys; the REST comparison arrives with replicas.
bool am_healthiest(const Snapshot& s) {
  for (const auto& m : s.cluster.members) {
    if (m.name == s.me || m.nofailover()) continue;
    auto it = m.data.find("xlog_location");
    if (it != m.data.end() && it->is_number_integer() && it->get<int64_t>() > s.pg.wal_position &&
        m.state() == "running")
      return false;
  }
  return true;
}

// Cluster has no initialize key yet.
Decision decide_uninitialized(const Snapshot& s) {
  const auto& c = s.cluster;
  if (!s.pg.initialized) {
    if (c.leader) return make({}, "uninitialized", "waiting for leader " + c.leader->name + " to bootstrap");
    if (!s.bootstrap_allowed) return make({}, "uninitialized", "bootstrap failed earlier; not retrying in this process");
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

Decision decide_not_running(const Snapshot& s) {
  const auto& c = s.cluster;
  if (s.dyn.pause) return make({}, "replica", "PostgreSQL is not running and the cluster is paused: no action");
  if (leader_is_me(s))
    return make({Action::kRenewLock, Action::kStartPrimary}, "master",
                "PostgreSQL is not running: starting it as primary, I hold the leader lock");
  if (!c.leader)
    return make({Action::kStartReplica}, "replica",
                "PostgreSQL is not running and the cluster has no leader: starting read-only first");
  return make({Action::kStartReplica}, "replica", "PostgreSQL is not running: starting as a replica of " + c.leader->name);
}

Decision decide_running(const Snapshot& s) {
  const auto& c = s.cluster;
  const bool primary = s.pg.query_ok && !s.pg.in_recovery;
  if (leader_is_me(s)) {
    if (!s.pg.query_ok)
      return make({Action::kRenewLock}, "master", "I hold the leader lock; PostgreSQL does not answer yet");
    if (s.pg.in_recovery)
      return make({Action::kRenewLock, Action::kPromote}, "master",
                  "promoting: I hold the leader lock but PostgreSQL is a replica");
    return make({Action::kRenewLock}, "master", "no action: I am the leader with the lock");
  }
  if (s.dyn.pause) return make({}, primary ? "master" : "replica", "cluster is paused: no action");
  if (!c.leader) {
    if (s.nofailover)
      return primary ? make({Action::kDemote}, "replica", "demoting: tagged nofailover, cannot hold the lock")
                     : make({}, "replica", "cluster has no leader; tagged nofailover, not taking part");
    if (!s.pg.query_ok) return make({}, "replica", "cluster has no leader; PostgreSQL does not answer yet");
    if (am_healthiest(s)) {
      if (primary)
        return make({Action::kAcquireLock}, "master", "acquiring the leader lock: cluster has no leader and I am primary");
      return make({Action::kAcquireLock, Action::kPromote}, "master",
                  "cluster has no leader and I am the healthiest: acquiring the lock and promoting");
    }
    return primary ? make({Action::kDemote}, "replica", "demoting: a healthier member should take the lock")
                   : make({}, "replica", "cluster has no leader; a healthier member should take over");
  }
  if (primary)
    return make({Action::kDemote}, "replica", "demoting: " + c.leader->name + " holds the leader lock");
  return make({}, "replica", "no action: following leader " + c.leader->name);
}

}  // namespace

Decision decide(const Snapshot& s) {
  if (!s.dcs_ok) {
    if (s.dyn.pause) return make({}, s.pg.in_recovery ? "replica" : "master", "DCS is not accessible; paused: no action");
    if (s.pg.running && s.pg.query_ok && !s.pg.in_recovery)
      return make({Action::kDemote}, "replica", "demoting: DCS is not accessible, the leader lock cannot be renewed");
    if (s.pg.running && !s.pg.query_ok && s.was_leader)
      return make({Action::kDemote}, "replica", "demoting: DCS is not accessible and I was the leader");
    return make({}, s.pg.running ? "replica" : "uninitialized", "DCS is not accessible: no action");
  }
  const auto& c = s.cluster;
  if (!c.initialize) return decide_uninitialized(s);
  if (!c.initialize->empty() && !s.pg.sysid.empty() && *c.initialize != s.pg.sysid)
    return make(s.pg.running && !s.pg.in_recovery ? std::vector<Action>{Action::kDemote} : std::vector<Action>{},
                "uninitialized",
                "system identifier mismatch: cluster is " + *c.initialize + ", my data is " + s.pg.sysid);
  if (!s.pg.initialized) {
    if (c.initialize->empty() && !c.leader)
      return make({}, "uninitialized", "another member is bootstrapping the cluster: waiting");
    return make({}, "uninitialized", "data directory is empty: waiting for a replica creation method");
  }
  Decision d = s.pg.running ? decide_running(s) : decide_not_running(s);
  if (c.initialize->empty() && leader_is_me(s) && !s.pg.sysid.empty()) d.actions.push_back(Action::kWriteInitialize);
  return d;
}

}  // namespace pgwarden::ha
