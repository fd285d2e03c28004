// Operator requests (restart, reinitialize, scheduled restart) and configuration reloads:
// decide() table rows, the restart filters and the request mailbox.
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "pgwarden/ha/decide.hpp"
#include "pgwarden/ha/requests.hpp"

// Table rows leave the trailing expectations at their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace pgwarden::ha {
namespace {

using A = Action;

dcs::Member member(const std::string& name) {
  dcs::Member m;
  m.name = name;
  m.data = {{"state", "running"}, {"xlog_location", 100}, {"role", "replica"}};
  return m;
}

// I am the running primary and leader of a two-member cluster; node2 is a replica.
Snapshot base() {
  Snapshot s;
  s.me = "node1";
  s.dcs_ok = true;
  s.cluster.edit().initialize = "7000000000000000001";
  s.cluster.edit().leader = dcs::Leader{"node1", 5, "1"};
  s.cluster.edit().members = {member("node1"), member("node2")};
  s.pg.data_dir_empty = false;
  s.pg.initialized = true;
  s.pg.running = true;
  s.pg.query_ok = true;
  s.pg.wal_position = 100;
  s.pg.timeline = 1;
  s.pg.sysid = "7000000000000000001";
  s.pg.server_version = 150004;
  s.pg.postmaster_start_time = "2024-01-01 10:00:00.000000+00:00";
  s.was_leader = true;
  s.now = 1'700'000'000;
  return s;
}

void as_replica(Snapshot& s) {
  s.cluster.edit().leader = dcs::Leader{"node2", 9, "2"};
  s.pg.in_recovery = true;
  s.following = "node2";
  s.was_leader = false;
}

OperatorRequest restart_req(uint64_t id, RestartFilters f = {}) {
  OperatorRequest r;
  r.id = id;
  r.kind = RequestKind::kRestart;
  r.restart = f;
  return r;
}

OperatorRequest reinit_req(uint64_t id) {
  OperatorRequest r;
  r.id = id;
  r.kind = RequestKind::kReinitialize;
  return r;
}

ScheduledRestart scheduled(double at, RestartFilters f = {}) {
  ScheduledRestart r;
  r.at = at;
  r.filters = f;
  r.postmaster_start_time = "2024-01-01 10:00:00.000000+00:00";
  return r;
}

struct Row {
  std::string name;
  std::function<void(Snapshot&)> change;
  std::vector<Action> expected;
  int reply_status = 0;       // 0: no immediate reply expected (or none at all)
  std::string reply_body;
  bool answered_by_restart = false;  // the request waits for the restart's outcome
  bool drops_schedule = false;
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class OperationsTable : public ::testing::TestWithParam<Row> {};

TEST_P(OperationsTable, Decides) {
  const Row& row = GetParam();
  Snapshot s = base();
  row.change(s);
  Decision d = decide(s);
  std::vector<std::string> got, want;
  for (auto a : d.actions) got.push_back(to_string(a));
  for (auto a : row.expected) want.push_back(to_string(a));
  EXPECT_EQ(got, want) << "reason: " << d.reason;
  if (row.reply_status) {
    ASSERT_EQ(d.replies.size(), 1u) << d.reason;
    EXPECT_EQ(d.replies[0].second.status, row.reply_status);
    if (!row.reply_body.empty()) {
      EXPECT_EQ(d.replies[0].second.body, row.reply_body);
    }
  } else {
    EXPECT_TRUE(d.replies.empty()) << d.replies[0].second.body;
  }
  EXPECT_EQ(d.restart_request != 0, row.answered_by_restart) << d.reason;
  EXPECT_EQ(d.drop_scheduled_restart, row.drops_schedule) << d.reason;
  // Every request gets exactly one answer.
  EXPECT_EQ(d.replies.size() + (d.restart_request ? 1 : 0), s.requests.size());
}

RestartFilters role(const std::string& r) {
  RestartFilters f;
  f.role = r;
  return f;
}

const Row kRows[] = {
    {"LeaderRestartRenewsBeforeAndAfter", [](Snapshot& s) { s.requests = {restart_req(1)}; },
     {A::kRenewLock, A::kSyncSlots, A::kRestart, A::kRenewLock}, 0, "", true},
    {"ReplicaRestartKeepsRole",
     [](Snapshot& s) { as_replica(s); s.requests = {restart_req(1)}; }, {A::kRestart}, 0, "", true},
    {"RestartRoleMismatchRefused", [](Snapshot& s) { s.requests = {restart_req(1, role("replica"))}; },
     {A::kRenewLock, A::kSyncSlots}, 503, "restart conditions are not satisfied"},
    {"RestartRoleMatches", [](Snapshot& s) { s.requests = {restart_req(1, role("master"))}; },
     {A::kRenewLock, A::kSyncSlots, A::kRestart, A::kRenewLock}, 0, "", true},
    {"RestartVersionNotLowerRefused",
     [](Snapshot& s) {
       RestartFilters f;
       f.postgres_version = "15.4";
       f.postgres_version_num = 150004;
       s.requests = {restart_req(1, f)};
     },
     {A::kRenewLock, A::kSyncSlots}, 503, "restart conditions are not satisfied"},
    {"RestartVersionLowerRuns",
     [](Snapshot& s) {
       RestartFilters f;
       f.postgres_version = "15.5";
       f.postgres_version_num = 150005;
       s.requests = {restart_req(1, f)};
     },
     {A::kRenewLock, A::kSyncSlots, A::kRestart, A::kRenewLock}, 0, "", true},
    {"RestartPendingWithoutFlagRefused",
     [](Snapshot& s) {
       RestartFilters f;
       f.restart_pending = true;
       s.requests = {restart_req(1, f)};
     },
     {A::kRenewLock, A::kSyncSlots}, 503, "restart conditions are not satisfied"},
    {"RestartPendingWithFlagRuns",
     [](Snapshot& s) {
       RestartFilters f;
       f.restart_pending = true;
       s.pg.pending_restart = true;
       s.requests = {restart_req(1, f)};
     },
     {A::kRenewLock, A::kSyncSlots, A::kRestart, A::kRenewLock}, 0, "", true},
    {"RestartWhilePausedRuns",
     [](Snapshot& s) { s.dyn.pause = true; s.requests = {restart_req(1)}; },
     {A::kRenewLock, A::kSyncSlots, A::kRestart, A::kRenewLock}, 0, "", true},
    {"RestartWhileDemotingRefused",
     [](Snapshot& s) {
       s.cluster.edit().leader = dcs::Leader{"node2", 9, "2"};
       s.requests = {restart_req(1)};
     },
     {A::kDemote}, 503, ""},
    {"RestartOfStoppedPostgresRidesOnTheStart",
     [](Snapshot& s) {
       as_replica(s);
       s.pg.running = false;
       s.pg.query_ok = false;
       s.requests = {restart_req(1)};
     },
     {A::kStartReplica}, 0, "", true},
    {"RestartOfStoppedPausedPostgresRefused",
     [](Snapshot& s) {
       as_replica(s);
       s.pg.running = false;
       s.pg.query_ok = false;
       s.dyn.pause = true;
       s.requests = {restart_req(1)};
     },
     {}, 503, ""},
    {"SecondRestartInOneCycleRefused",
     [](Snapshot& s) { as_replica(s); s.requests = {restart_req(1), restart_req(2)}; }, {A::kRestart}, 503,
     "restart already in progress", true},
    {"ReinitializeReplica", [](Snapshot& s) { as_replica(s); s.requests = {reinit_req(1)}; },
     {A::kReinitialize, A::kStartReplica}, 200, "reinitialize started"},
    {"ReinitializeLeaderRefused", [](Snapshot& s) { s.requests = {reinit_req(1)}; }, {A::kRenewLock, A::kSyncSlots},
     503, "I am the leader, can not reinitialize"},
    {"ReinitializeWithoutLeaderRefused",
     [](Snapshot& s) {
       as_replica(s);
       s.cluster.edit().leader.reset();
       s.nofailover = true;
       s.requests = {reinit_req(1)};
     },
     {}, 503, "Cluster has no leader, can not reinitialize"},
    {"ReinitializeAfterSysidMismatch",
     [](Snapshot& s) {
       as_replica(s);
       s.pg.sysid = "7000000000000000999";
       s.requests = {reinit_req(1)};
     },
     {A::kReinitialize, A::kStartReplica}, 200, "reinitialize started"},
    {"ScheduledRestartNotYetDue", [](Snapshot& s) { s.scheduled_restart = scheduled(s.now + 60); },
     {A::kRenewLock, A::kSyncSlots}},
    {"ScheduledRestartDue", [](Snapshot& s) { s.scheduled_restart = scheduled(s.now - 1); },
     {A::kRenewLock, A::kSyncSlots, A::kRestart, A::kRenewLock}, 0, "", false, true},
    {"ScheduledRestartStaleDropped", [](Snapshot& s) { s.scheduled_restart = scheduled(s.now - 60); },
     {A::kRenewLock, A::kSyncSlots}, 0, "", false, true},
    {"ScheduledRestartCancelledByEarlierRestart",
     [](Snapshot& s) {
       s.scheduled_restart = scheduled(s.now - 1);
       s.pg.postmaster_start_time = "2024-01-01 11:00:00.000000+00:00";
     },
     {A::kRenewLock, A::kSyncSlots}, 0, "", false, true},
    {"ScheduledRestartFiltersDrop",
     [](Snapshot& s) { s.scheduled_restart = scheduled(s.now - 1, role("replica")); }, {A::kRenewLock, A::kSyncSlots},
     0, "", false, true},
    {"ScheduledRestartWaitsWhilePaused",
     [](Snapshot& s) {
       s.dyn.pause = true;
       s.scheduled_restart = scheduled(s.now - 1);
     },
     {A::kRenewLock, A::kSyncSlots}},
    {"ConfigChangeReloadsLeader", [](Snapshot& s) { s.config_stale = true; },
     {A::kRenewLock, A::kSyncSlots, A::kReloadConfig}},
    {"ConfigChangeReloadsReplica", [](Snapshot& s) { as_replica(s); s.config_stale = true; }, {A::kReloadConfig}},
    {"ReloadRequestReloadsWhilePaused",
     [](Snapshot& s) {
       as_replica(s);
       s.dyn.pause = true;
       s.reload_requested = true;
     },
     {A::kReloadConfig}},
    {"FollowWritesTheConfigItself",
     [](Snapshot& s) {
       as_replica(s);
       s.following = "";
       s.config_stale = true;
     },
     {A::kFollow}},
    {"StoppedPostgresNotReloaded",
     [](Snapshot& s) {
       as_replica(s);
       s.pg.running = false;
       s.pg.query_ok = false;
       s.config_stale = true;
     },
     {A::kStartReplica}},
    {"RestartWritesTheConfigItself",
     [](Snapshot& s) {
       as_replica(s);
       s.config_stale = true;
       s.requests = {restart_req(1)};
     },
     {A::kRestart}, 0, "", true},
};

INSTANTIATE_TEST_SUITE_P(Rules, OperationsTable, ::testing::ValuesIn(kRows),
                         [](const ::testing::TestParamInfo<Row>& i) { return i.param.name; });

TEST(RestartMismatch, FollowsPatroniFilters) {
  EXPECT_EQ(restart_mismatch({}, "master", 150004, false), "");
  EXPECT_EQ(restart_mismatch(role("replica"), "master", 150004, false), "host role mismatch");
  EXPECT_EQ(restart_mismatch(role("master"), "master", 150004, false), "");
  RestartFilters v;
  v.postgres_version_num = 150004;
  EXPECT_EQ(restart_mismatch(v, "replica", 150004, false), "postgres version mismatch");
  v.postgres_version_num = 150005;
  EXPECT_EQ(restart_mismatch(v, "replica", 150004, false), "");
  RestartFilters p;
  p.restart_pending = true;
  EXPECT_EQ(restart_mismatch(p, "replica", 150004, false), "pending restart flag is not set");
  EXPECT_EQ(restart_mismatch(p, "replica", 150004, true), "");
}

TEST(ScheduledRestartJson, StatusLeavesOutTheStartTime) {
  ScheduledRestart r = scheduled(1'700'000'000, role("replica"));
  r.filters.restart_pending = true;
  auto member = scheduled_restart_json(r, false);
  EXPECT_EQ(member["schedule"], "2023-11-14T22:13:20+00:00");
  EXPECT_EQ(member["role"], "replica");
  EXPECT_EQ(member["restart_pending"], true);
  EXPECT_EQ(member["postmaster_start_time"], "2024-01-01 10:00:00.000000+00:00");
  EXPECT_FALSE(scheduled_restart_json(r, true).contains("postmaster_start_time"));
}

TEST(RequestMailbox, LoopAnswersASubmittedRequest) {
  RequestMailbox box;
  std::promise<void> woken;
  auto answer = std::async(std::launch::async, [&] {
    return box.submit(restart_req(0), std::chrono::seconds(10), [&] { woken.set_value(); });
  });
  woken.get_future().wait();
  auto taken = box.take();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_FALSE(box.has_pending());
  box.complete(taken[0].id, {200, "restarted successfully"});
  auto reply = answer.get();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "restarted successfully");
}

TEST(RequestMailbox, UntakenRequestIsWithdrawnOnTimeout) {
  RequestMailbox box;
  auto reply = box.submit(restart_req(0), std::chrono::milliseconds(20), nullptr);
  EXPECT_EQ(reply.status, 503);
  EXPECT_TRUE(box.take().empty());  // nothing left for the loop to do
}

TEST(RequestMailbox, LateAnswerIsDropped) {
  RequestMailbox box;
  std::thread loop([&] {
    while (!box.has_pending()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto taken = box.take();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    box.complete(taken[0].id, {200, "late"});
  });
  auto reply = box.submit(restart_req(0), std::chrono::milliseconds(30), nullptr);
  loop.join();
  EXPECT_EQ(reply.status, 503);
  EXPECT_NE(reply.body.find("unknown"), std::string::npos);
}

TEST(RequestMailbox, OneScheduledRestartAtATime) {
  RequestMailbox box;
  EXPECT_FALSE(box.cancel_scheduled_restart());
  EXPECT_TRUE(box.schedule_restart(scheduled(100)));
  EXPECT_FALSE(box.schedule_restart(scheduled(200)));
  ASSERT_TRUE(box.scheduled_restart());
  EXPECT_EQ(box.scheduled_restart()->at, 100);
  box.clear_scheduled_restart(200);  // not the one scheduled
  EXPECT_TRUE(box.scheduled_restart());
  box.clear_scheduled_restart(100);
  EXPECT_FALSE(box.scheduled_restart());
  EXPECT_TRUE(box.schedule_restart(scheduled(300)));
  EXPECT_TRUE(box.cancel_scheduled_restart());
  EXPECT_FALSE(box.scheduled_restart());
}

}  // namespace
}  // namespace pgwarden::ha
