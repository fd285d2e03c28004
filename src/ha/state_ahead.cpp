#include "pgwarden/ha/state_ahead.hpp"

namespace pgwarden::ha {

bool send_state_ahead(const CycleEnd& end) {
  return end.pg_running && end.pg_query_ok && end.routine_only && !end.synchronous_mode && !end.restart_scheduled;
}

std::optional<std::chrono::milliseconds> state_ahead_window(const CycleStart& start, int loop_wait) {
  const bool steady = start.sent_ahead && start.woke_on_timer && start.dcs_ok && start.leader_unchanged &&
                      !start.failover_requested && !start.requests_pending && !start.reload_requested &&
                      !start.config_changed;
  if (!steady) return std::nullopt;
  return std::chrono::milliseconds(int64_t{loop_wait} * 1000 + 1000);
}

}  // namespace pgwarden::ha
