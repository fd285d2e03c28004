#pragma once
// When the HA loop may ask PostgreSQL ahead of time. The state query then goes out just before
// the loop's sleep, and its answer, waiting when the loop wakes, stands for a fresh one: an
// idle member wakes once a cycle (the sleep's end) instead of twice (the sleep's end, then the
// server's answer). The price is a state up to a loop_wait old, so only a steady cycle sends
// ahead, and only a cycle that woke on its timer into the same steady cluster takes the
// answer. Anything that can make a decision turn on the state now (a leader race, a
// switchover, an operator request, a change in the DCS, a reload) asks PostgreSQL afresh, and
// postmaster death is still seen on waking (is_running() does not use the query).
#include <chrono>
#include <optional>
#include <string>

namespace pgwarden::ha {

// The facts at the end of a cycle.
struct CycleEnd {
  bool pg_running = false;
  bool pg_query_ok = false;
  // Every action of the decision was routine upkeep (or there was none) and succeeded.
  bool routine_only = false;
  // Synchronous replication follows the standbys' state closely: never a state a loop old.
  bool synchronous_mode = false;
  bool restart_scheduled = false;
};

// Whether to send the state query before this sleep.
bool send_state_ahead(const CycleEnd& end);

// The facts at the start of the next cycle, once the DCS view is loaded.
struct CycleStart {
  bool sent_ahead = false;          // the last cycle sent the query before its sleep
  bool woke_on_timer = false;       // the sleep ran its course (no DCS change, request, reload)
  bool dcs_ok = false;
  bool leader_unchanged = false;    // the view names the same leader (or none) as the last one
  bool failover_requested = false;  // a switchover/failover request in the DCS
  bool requests_pending = false;    // operator requests (restart, reinitialize, ...)
  bool reload_requested = false;
  bool config_changed = false;      // the dynamic configuration changed with this view
};

// How old an answer sent ahead may be to stand for a fresh one (it went out at most a sleep
// ago, so loop_wait plus a second of scheduling slack); nullopt: ask PostgreSQL afresh.
std::optional<std::chrono::milliseconds> state_ahead_window(const CycleStart& start, int loop_wait);

}  // namespace pgwarden::ha
