// When the HA loop may take a state query answered during its sleep instead of asking afresh.
#include "pgwarden/ha/state_ahead.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace pgwarden::ha {
namespace {

CycleEnd steady_end() {
  CycleEnd e;
  e.pg_running = true;
  e.pg_query_ok = true;
  e.routine_only = true;
  return e;
}

CycleStart steady_start() {
  CycleStart s;
  s.sent_ahead = true;
  s.woke_on_timer = true;
  s.dcs_ok = true;
  s.leader_unchanged = true;
  return s;
}

TEST(StateAhead, SendsOnlyAfterASteadyCycle) {
  struct Row {
    std::string name;
    std::function<void(CycleEnd&)> change;
    bool send;
  };
  const std::vector<Row> rows = {
      {"steady: renewed the lock, synced slots, or nothing to do", [](CycleEnd&) {}, true},
      {"PostgreSQL not running", [](CycleEnd& e) { e.pg_running = false; }, false},
      {"running but the query failed (starting, crashed backend)", [](CycleEnd& e) { e.pg_query_ok = false; }, false},
      {"the cycle acted on PostgreSQL or an action failed", [](CycleEnd& e) { e.routine_only = false; }, false},
      {"synchronous mode", [](CycleEnd& e) { e.synchronous_mode = true; }, false},
      {"a restart is scheduled", [](CycleEnd& e) { e.restart_scheduled = true; }, false},
  };
  for (const auto& r : rows) {
    CycleEnd e = steady_end();
    r.change(e);
    EXPECT_EQ(send_state_ahead(e), r.send) << r.name;
  }
}

TEST(StateAhead, TakesTheAnswerOnlyOnATimerWakeIntoTheSameCluster) {
  struct Row {
    std::string name;
    std::function<void(CycleStart&)> change;
    bool take;
  };
  const std::vector<Row> rows = {
      {"steady: woke on the timer, nothing changed", [](CycleStart&) {}, true},
      {"nothing was sent ahead", [](CycleStart& s) { s.sent_ahead = false; }, false},
      {"woken early by a DCS change, a request or a reload", [](CycleStart& s) { s.woke_on_timer = false; }, false},
      {"DCS unreachable", [](CycleStart& s) { s.dcs_ok = false; }, false},
      {"the leader changed or is gone (a race needs WAL positions now)",
       [](CycleStart& s) { s.leader_unchanged = false; }, false},
      {"a switchover or failover is requested", [](CycleStart& s) { s.failover_requested = true; }, false},
      {"an operator request is waiting", [](CycleStart& s) { s.requests_pending = true; }, false},
      {"a reload was requested", [](CycleStart& s) { s.reload_requested = true; }, false},
      {"the dynamic configuration changed", [](CycleStart& s) { s.config_changed = true; }, false},
  };
  for (const auto& r : rows) {
    CycleStart s = steady_start();
    r.change(s);
    EXPECT_EQ(state_ahead_window(s, 2).has_value(), r.take) << r.name;
  }
}

TEST(StateAhead, AnAnswerMayBeALoopOldWithASecondOfSlack) {
  EXPECT_EQ(state_ahead_window(steady_start(), 2), std::chrono::milliseconds(3000));
  EXPECT_EQ(state_ahead_window(steady_start(), 10), std::chrono::milliseconds(11000));
}

}  // namespace
}  // namespace pgwarden::ha
