#pragma once
// The output of decide(): what this member should do now and why. Plain data; the executor
// performs the actions in order and stops at the first one that fails.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pgwarden/ha/requests.hpp"

namespace pgwarden::ha {

enum class Action {
  kBootstrap,        // race for the initialize key; the winner creates the cluster
  kStartPrimary,     // start PostgreSQL read-write (we hold the lock)
  kStartReplica,     // start PostgreSQL read-only, following the leader if there is one
  kAcquireLock,      // create the leader key if absent
  kRenewLock,        // keep our leader key (and publish our WAL position)
  kWriteInitialize,  // the cluster has data but no initialize key: record our sysid
  kPromote,          // pg_ctl promote, then record the new timeline in history
  kDemote,           // stop, then start read-only: we must not stay writable
  kReleaseLock,      // delete our leader key
  kCreateReplica,    // clone the data directory with create_replica_methods
  kFollow,           // point primary_conninfo/primary_slot_name at the leader, reload
  kSyncSlots,        // leader: physical slots for every other member, drop stale ones
  kRewind,           // pg_rewind the former primary from the leader
  kReclone,          // move the data directory aside and clone afresh
  kStepDown,         // switchover: stop PostgreSQL cleanly, release the lock with its final position
  kClearFailover,    // remove a switchover/failover request that is done or cannot be honoured
  kRestart,          // operator: stop PostgreSQL (fast) and start it again in the same role
  kReinitialize,     // operator: stop PostgreSQL, move the data directory aside, clone afresh
  kReloadConfig,     // rewrite postgresql.conf / pg_hba.conf and reload PostgreSQL
};

const char* to_string(Action a);

// True for the actions that, when they succeed, leave the local PostgreSQL as they found it
// (they write to the DCS or manage replication slots only), so the loop need not read its
// state again after them. A failed lock renewal demotes, so the loop re-reads after any failure.
bool leaves_postgres_alone(Action a);

// True for the upkeep a healthy leader repeats every cycle (renew the lock, sync the slots).
// A decision made of these alone is logged when its reason changes, as a steady replica's
// empty decision is, not every loop_wait.
bool routine_upkeep(Action a);

struct Decision {
  std::vector<Action> actions;
  std::string reason;  // one line for the log and /patroni
  // Role we expect to have once the actions are done (master | replica | uninitialized).
  std::string role;
  // Set when the cluster is stuck in a state only an operator can fix: one line saying what
  // to do, shown in the log and in /patroni (key "problem").
  std::string problem;

  // Operator requests answered before any action runs (refusals, "reinitialize started").
  std::vector<std::pair<uint64_t, RequestReply>> replies;
  // The restart request answered by how the restart (or start) goes; 0: none.
  uint64_t restart_request = 0;
  int restart_timeout = 0;           // seconds for the start; 0: primary_start_timeout
  // The scheduled restart is done with (performed now, stale or cancelled by its filters).
  bool drop_scheduled_restart = false;
};

}  // namespace pgwarden::ha
