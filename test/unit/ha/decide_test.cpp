// Table-driven tests of the HA rules: each row is a situation and the expected actions.
#include "pgwarden/ha/decide.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace pgwarden::ha {
namespace {

using A = Action;

dcs::Member member(const std::string& name, int64_t xlog, const std::string& state = "running", bool nofailover = false) {
  dcs::Member m;
  m.name = name;
  m.data = {{"state", state}, {"xlog_location", xlog}, {"role", "replica"}};
  if (nofailover) m.data["tags"] = {{"nofailover", true}};
  return m;
}

// A healthy, initialized single-member cluster where I am the running primary and leader.
Snapshot base() {
  Snapshot s;
  s.me = "node1";
  s.dcs_ok = true;
  s.cluster.edit().initialize = "7000000000000000001";
  s.cluster.edit().leader = dcs::Leader{"node1", 5, "1"};
  s.cluster.edit().members = {member("node1", 100)};
  s.pg.data_dir_empty = false;
  s.pg.initialized = true;
  s.pg.running = true;
  s.pg.query_ok = true;
  s.pg.in_recovery = false;
  s.pg.wal_position = 100;
  s.pg.timeline = 1;
  s.pg.sysid = "7000000000000000001";
  s.was_leader = true;
  return s;
}

struct Row {
  std::string name;
  std::function<void(Snapshot&)> change;
  std::vector<Action> expected;
  std::string role;
};

// Short names in test listings (and so in CTest's names) instead of the struct's bytes.
void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class DecideTable : public ::testing::TestWithParam<Row> {};

TEST_P(DecideTable, DecidesExpectedActions) {
  const Row& row = GetParam();
  Snapshot s = base();
  row.change(s);
  Decision d = decide(s);
  std::vector<std::string> got, want;
  for (auto a : d.actions) got.push_back(to_string(a));
  for (auto a : row.expected) want.push_back(to_string(a));
  EXPECT_EQ(got, want) << "reason: " << d.reason;
  EXPECT_EQ(d.role, row.role) << "reason: " << d.reason;
  EXPECT_FALSE(d.reason.empty());
}

PeerStatus peer(const std::string& name, int64_t wal) {
  PeerStatus p;
  p.name = name;
  p.reachable = true;
  p.in_recovery = true;
  p.wal_position = wal;
  p.timeline = 1;
  return p;
}

void with_peers(Snapshot& s, std::vector<PeerStatus> peers) {
  s.peers_fetched = true;
  s.peers = std::move(peers);
}

auto no_leader = [](Snapshot& s) { s.cluster.edit().leader.reset(); };
auto other_leader = [](Snapshot& s) {
  s.cluster.edit().leader = dcs::Leader{"node2", 9, "2"};
  s.cluster.edit().members.push_back(member("node2", 200));
};
auto as_replica = [](Snapshot& s) { s.pg.in_recovery = true; };
auto stopped = [](Snapshot& s) {
  s.pg.running = false;
  s.pg.query_ok = false;
};

const Row kRows[] = {
    {"LeaderPrimaryRenewsAndKeepsSlots", [](Snapshot&) {}, {A::kRenewLock, A::kSyncSlots}, "master"},
    {"LeaderWithoutSlotsOnlyRenews", [](Snapshot& s) { s.dyn.use_slots = false; }, {A::kRenewLock}, "master"},
    {"LeaderButReplicaPromotes", as_replica, {A::kRenewLock, A::kSyncSlots, A::kPromote}, "master"},
    {"LeaderNotAnsweringStillRenews", [](Snapshot& s) { s.pg.query_ok = false; }, {A::kRenewLock}, "master"},
    {"CrashedLeaderRestartsAsPrimary", [](Snapshot& s) { stopped(s); s.pg.former_primary = true; },
     {A::kRenewLock, A::kStartPrimary}, "master"},
    {"LockHolderWithReplicaDataStartsReadOnlyFirst", stopped, {A::kRenewLock, A::kStartReplica}, "master"},
    {"CrashedNoLeaderStartsReadOnly", [](Snapshot& s) { stopped(s); no_leader(s); }, {A::kStartReplica}, "replica"},
    {"StoppedOtherLeaderStartsReplica", [](Snapshot& s) { stopped(s); other_leader(s); }, {A::kStartReplica}, "replica"},
    {"StoppedAndPausedDoesNothing", [](Snapshot& s) { stopped(s); s.dyn.pause = true; }, {}, "replica"},
    {"PrimaryNoLeaderAcquires", no_leader, {A::kAcquireLock, A::kSyncSlots}, "master"},
    {"ReplicaNoLeaderHealthiestAcquiresAndPromotes", [](Snapshot& s) { no_leader(s); as_replica(s); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"PeerAheadOverRestWaits",
     [](Snapshot& s) { no_leader(s); as_replica(s); with_peers(s, {peer("node2", 150)}); }, {}, "replica"},
    {"PeerEqualOverRestAcquires",
     [](Snapshot& s) { no_leader(s); as_replica(s); with_peers(s, {peer("node2", 100)}); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"PeerBehindOverRestAcquires",
     [](Snapshot& s) { no_leader(s); as_replica(s); with_peers(s, {peer("node2", 50), peer("node3", 99)}); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"UnreachablePeerAheadIgnored",
     [](Snapshot& s) { no_leader(s); as_replica(s); auto p = peer("node2", 900); p.reachable = false; with_peers(s, {p}); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"NofailoverPeerAheadIgnoredOverRest",
     [](Snapshot& s) { no_leader(s); as_replica(s); auto p = peer("node2", 900); p.nofailover = true; with_peers(s, {p}); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"PeerAlreadyPrimaryWaits",
     [](Snapshot& s) { no_leader(s); as_replica(s); auto p = peer("node2", 10); p.in_recovery = false; with_peers(s, {p}); },
     {}, "replica"},
    {"PeerOnNewerTimelineWaits",
     [](Snapshot& s) { no_leader(s); as_replica(s); auto p = peer("node2", 10); p.timeline = 2; with_peers(s, {p}); },
     {}, "replica"},
    {"LagBeyondMaximumWaits",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.edit().last_lsn = 100 + 2048; s.dyn.maximum_lag_on_failover = 1024; },
     {}, "replica"},
    {"LagWithinMaximumAcquires",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.edit().last_lsn = 100 + 512; s.dyn.maximum_lag_on_failover = 1024; },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"GracefulHandoverReplicaHasShutdownCheckpoint",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.edit().last_lsn = 100; with_peers(s, {peer("node2", 80)}); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"ReplicaNoLeaderNotHealthiestWaits",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.edit().members.push_back(member("node2", 500)); }, {}, "replica"},
    {"EqualLsnStillHealthiest",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.edit().members.push_back(member("node2", 100)); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"AheadPeerThatIsNofailoverIgnored",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.edit().members.push_back(member("node2", 900, "running", true)); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"AheadPeerNotRunningIgnored",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.edit().members.push_back(member("node2", 900, "stopped")); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"NofailoverReplicaNoLeaderWaits", [](Snapshot& s) { no_leader(s); as_replica(s); s.nofailover = true; }, {}, "replica"},
    {"NofailoverPrimaryNoLeaderDemotes", [](Snapshot& s) { no_leader(s); s.nofailover = true; }, {A::kDemote}, "replica"},
    {"PrimaryWhileOtherHoldsLockDemotes", other_leader, {A::kDemote}, "replica"},
    // We took the lock and promoted, but by the next cycle another member holds it.
    {"LockLostWhilePromotingDemotes", [](Snapshot& s) { other_leader(s); s.was_leader = true; }, {A::kDemote},
     "replica"},
    {"LockLostWhileStillReplicaJustFollows",
     [](Snapshot& s) { other_leader(s); as_replica(s); s.was_leader = true; s.following = "node2"; }, {}, "replica"},
    {"ReplicaFollowingLeaderDoesNothing",
     [](Snapshot& s) { other_leader(s); as_replica(s); s.following = "node2"; }, {}, "replica"},
    {"ReplicaFollowsNewLeader", [](Snapshot& s) { other_leader(s); as_replica(s); s.following = "node3"; },
     {A::kFollow}, "replica"},
    // A standby start the executor stopped waiting for (pg_ctl_timeout): PostgreSQL runs but
    // does not answer yet. It is left to start; a new leader is followed all the same.
    {"StandbyStillStartingIsLeftToStart",
     [](Snapshot& s) { other_leader(s); as_replica(s); s.pg.query_ok = false; s.following = "node2"; }, {}, "replica"},
    {"StandbyStillStartingFollowsNewLeader",
     [](Snapshot& s) { other_leader(s); as_replica(s); s.pg.query_ok = false; s.following = "node3"; },
     {A::kFollow}, "replica"},
    {"FormerPrimaryRewindsBeforeJoining",
     [](Snapshot& s) { stopped(s); other_leader(s); s.pg.former_primary = true; s.use_pg_rewind = true; },
     {A::kRewind, A::kStartReplica}, "replica"},
    {"FormerPrimaryReclonesWithoutRewind",
     [](Snapshot& s) { stopped(s); other_leader(s); s.pg.former_primary = true; },
     {A::kReclone, A::kStartReplica}, "replica"},
    {"FailedRewindReclonesWhenAllowed",
     [](Snapshot& s) {
       stopped(s); other_leader(s); s.pg.former_primary = true; s.use_pg_rewind = true; s.rewind_failed = true;
       s.remove_data_on_rewind_failure = true;
     },
     {A::kReclone, A::kStartReplica}, "replica"},
    {"FailedRewindWaitsWhenRemovalNotAllowed",
     [](Snapshot& s) { stopped(s); other_leader(s); s.pg.former_primary = true; s.use_pg_rewind = true; s.rewind_failed = true; },
     {}, "replica"},
    {"FormerReplicaStartsWithoutRewind", [](Snapshot& s) { stopped(s); other_leader(s); s.use_pg_rewind = true; },
     {A::kStartReplica}, "replica"},
    {"EmptyDataNoLeaderClonesWithNoMasterMethod",
     [](Snapshot& s) { no_leader(s); s.pg = LocalPostgres{}; s.can_clone_without_leader = true; },
     {A::kCreateReplica, A::kStartReplica}, "replica"},
    {"EmptyDataNoLeaderNoMethodWaits", [](Snapshot& s) { no_leader(s); s.pg = LocalPostgres{}; }, {}, "uninitialized"},
    {"EmptyDataAfterFailedCloneWaits",
     [](Snapshot& s) { other_leader(s); s.pg = LocalPostgres{}; s.replica_creation_failed = true; }, {}, "uninitialized"},
    {"PausedNoLeaderDoesNothing", [](Snapshot& s) { no_leader(s); s.dyn.pause = true; }, {}, "master"},
    {"DcsDownPrimaryDemotes", [](Snapshot& s) { s.dcs_ok = false; }, {A::kDemote}, "replica"},
    {"DcsDownHungPrimaryThatWasLeaderDemotes", [](Snapshot& s) { s.dcs_ok = false; s.pg.query_ok = false; },
     {A::kDemote}, "replica"},
    {"DcsDownReplicaDoesNothing", [](Snapshot& s) { s.dcs_ok = false; as_replica(s); }, {}, "replica"},
    {"DcsDownPausedDoesNothing", [](Snapshot& s) { s.dcs_ok = false; s.dyn.pause = true; }, {}, "master"},
    {"EmptyClusterEmptyDataBootstraps",
     [](Snapshot& s) {
       s.cluster = dcs::Cluster{};
       s.pg = LocalPostgres{};
     },
     {A::kBootstrap}, "master"},
    {"NofailoverNeverBootstraps",
     [](Snapshot& s) {
       s.cluster = dcs::Cluster{};
       s.pg = LocalPostgres{};
       s.nofailover = true;
     },
     {}, "uninitialized"},
    {"BootstrapNotRetriedAfterFailure",
     [](Snapshot& s) {
       s.cluster = dcs::Cluster{};
       s.pg = LocalPostgres{};
       s.bootstrap_allowed = false;
     },
     {}, "uninitialized"},
    {"SomeoneElseBootstrappingWaits",
     [](Snapshot& s) {
       s.cluster = dcs::Cluster{};
       s.cluster.edit().initialize = "";
       s.pg = LocalPostgres{};
     },
     {}, "uninitialized"},
    {"EmptyDataWithLeaderCreatesReplica", [](Snapshot& s) { other_leader(s); s.pg = LocalPostgres{}; },
     {A::kCreateReplica, A::kStartReplica}, "replica"},
    {"ExistingDataNoInitializeKeyStopped",
     [](Snapshot& s) {
       s.cluster.edit().initialize.reset();
       s.cluster.edit().leader.reset();
       stopped(s);
     },
     {A::kAcquireLock, A::kStartPrimary, A::kWriteInitialize}, "master"},
    {"ExistingDataNoInitializeKeyRunning",
     [](Snapshot& s) {
       s.cluster.edit().initialize.reset();
       s.cluster.edit().leader.reset();
     },
     {A::kAcquireLock, A::kWriteInitialize}, "master"},
    {"SysidMismatchPrimaryDemotes", [](Snapshot& s) { s.pg.sysid = "123"; }, {A::kDemote}, "uninitialized"},
    {"SysidMismatchStoppedDoesNotStart", [](Snapshot& s) { s.pg.sysid = "123"; stopped(s); }, {}, "uninitialized"},
    {"EmptyInitializeValueFilledByLeader", [](Snapshot& s) { s.cluster.edit().initialize = ""; },
     {A::kRenewLock, A::kSyncSlots, A::kWriteInitialize}, "master"},
};

INSTANTIATE_TEST_SUITE_P(Rules, DecideTable, ::testing::ValuesIn(kRows),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

TEST(Decide, IsDeterministic) {
  Snapshot s = base();
  no_leader(s);
  as_replica(s);
  Decision a = decide(s), b = decide(s);
  EXPECT_EQ(a.actions, b.actions);
  EXPECT_EQ(a.reason, b.reason);
}

// The loop reads PostgreSQL again after acting unless every action left it alone; a steady
// leader (renew the lock, sync slots) and a steady replica must not pay for a second read.
TEST(Decide, ActionsThatLeavePostgresAlone) {
  const std::vector<std::pair<Action, bool>> table = {
      {A::kAcquireLock, true},    {A::kRenewLock, true},     {A::kWriteInitialize, true},
      {A::kReleaseLock, true},    {A::kSyncSlots, true},     {A::kClearFailover, true},
      {A::kBootstrap, false},     {A::kStartPrimary, false}, {A::kStartReplica, false},
      {A::kPromote, false},       {A::kDemote, false},       {A::kCreateReplica, false},
      {A::kFollow, false},        {A::kRewind, false},       {A::kReclone, false},
      {A::kStepDown, false},      {A::kRestart, false},      {A::kReinitialize, false},
      {A::kReloadConfig, false},
  };
  for (const auto& [action, alone] : table) EXPECT_EQ(leaves_postgres_alone(action), alone) << to_string(action);

  Decision steady = decide(base());
  ASSERT_FALSE(steady.actions.empty());
  EXPECT_TRUE(std::all_of(steady.actions.begin(), steady.actions.end(), leaves_postgres_alone));

  Snapshot promoting = base();  // the lock is ours but PostgreSQL is still a replica
  as_replica(promoting);
  Decision d = decide(promoting);
  ASSERT_NE(std::find(d.actions.begin(), d.actions.end(), A::kPromote), d.actions.end());
  EXPECT_FALSE(std::all_of(d.actions.begin(), d.actions.end(), leaves_postgres_alone));
}

// The loop logs a decision when its reason changes or it does more than routine upkeep: a
// steady leader's lock renewal and slot sync are not news every loop_wait.
TEST(Decide, RoutineUpkeepIsLockRenewalAndSlotSync) {
  for (int i = 0; i <= static_cast<int>(A::kReloadConfig); ++i) {
    const auto a = static_cast<Action>(i);
    EXPECT_EQ(routine_upkeep(a), a == A::kRenewLock || a == A::kSyncSlots) << to_string(a);
  }
  Decision steady = decide(base());
  ASSERT_FALSE(steady.actions.empty());
  EXPECT_TRUE(std::all_of(steady.actions.begin(), steady.actions.end(), routine_upkeep)) << steady.reason;

  Snapshot promoting = base();
  as_replica(promoting);
  Decision d = decide(promoting);
  EXPECT_FALSE(std::all_of(d.actions.begin(), d.actions.end(), routine_upkeep)) << d.reason;
}

// The chart's most common failure: a reinstall over leftover objects. The DCS says the
// cluster exists, nobody leads, nobody has data, nothing can clone without a leader.
TEST(Decide, NamesTheObjectToDeleteWhenInitialisedWithoutLeaderOrData) {
  struct Row {
    const char* what;
    std::function<void(Snapshot&)> change;
    bool problem;
  } rows[] = {
      {"nobody has data", [](Snapshot&) {}, true},
      {"another member runs PostgreSQL",
       [](Snapshot& s) { s.cluster.edit().members.push_back(member("node2", 100, "running")); }, false},
      {"a stopped member does not count",
       [](Snapshot& s) { s.cluster.edit().members.push_back(member("node2", 100, "stopped")); }, true},
      {"a leader exists", [](Snapshot& s) { s.cluster.edit().leader = dcs::Leader{"node2", 1, ""}; }, false},
      {"a method works without a leader", [](Snapshot& s) { s.can_clone_without_leader = true; }, false},
  };
  for (const auto& r : rows) {
    Snapshot s = base();
    s.cluster.edit().leader.reset();
    s.cluster.edit().members = {};
    s.pg = LocalPostgres{};
    s.pg.data_dir_empty = true;
    s.was_leader = false;
    s.initialize_location = "Endpoints ns/db-config";
    r.change(s);
    Decision d = decide(s);
    EXPECT_EQ(!d.problem.empty(), r.problem) << r.what << ": " << d.reason;
    if (r.problem) {
      EXPECT_NE(d.problem.find("delete Endpoints ns/db-config"), std::string::npos) << d.problem;
      EXPECT_NE(d.problem.find("7000000000000000001"), std::string::npos) << d.problem;
      EXPECT_TRUE(d.actions.empty());
    }
  }
}

// Switchover / manual failover: the failover key {leader, member, scheduled_at}.
TEST(Decide, SwitchoverRules) {
  auto request = [](Snapshot& s, nlohmann::json f) { s.cluster.edit().failover = std::move(f); };
  auto cluster3 = [](Snapshot& s) {
    s.cluster.edit().members = {member("node1", 100), member("node2", 100), member("node3", 100)};
  };
  auto has = [](const Decision& d, Action a) {
    return std::find(d.actions.begin(), d.actions.end(), a) != d.actions.end();
  };
  struct Row {
    const char* what;
    std::function<void(Snapshot&)> change;
    bool step_down, clear, acquire;
  } rows[] = {
      {"leader steps down for a healthy candidate",
       [&](Snapshot& s) { cluster3(s); request(s, {{"leader", "node1"}, {"member", "node2"}}); with_peers(s, {peer("node2", 100)}); },
       true, false, false},
      {"lagging candidate refused",
       [&](Snapshot& s) { cluster3(s); s.pg.wal_position = 100 + 4 * 1048576; request(s, {{"leader", "node1"}, {"member", "node2"}});
                          with_peers(s, {peer("node2", 100)}); },
       false, true, false},
      {"nofailover candidate refused",
       [&](Snapshot& s) { cluster3(s); request(s, {{"member", "node2"}}); auto p = peer("node2", 100); p.nofailover = true; with_peers(s, {p}); },
       false, true, false},
      {"unreachable candidate refused",
       [&](Snapshot& s) { cluster3(s); request(s, {{"member", "node2"}}); auto p = peer("node2", 100); p.reachable = false; with_peers(s, {p}); },
       false, true, false},
      {"candidate that is no member refused",
       [&](Snapshot& s) { cluster3(s); request(s, {{"member", "node9"}}); with_peers(s, {}); },
       false, true, false},
      {"scheduled in the future waits",
       [&](Snapshot& s) { cluster3(s); s.now = 1705592625; request(s, {{"member", "node2"}, {"scheduled_at", "2024-01-18T16:43:45+00:00"}});
                          with_peers(s, {peer("node2", 100)}); },
       false, false, false},
      {"scheduled time reached",
       [&](Snapshot& s) { cluster3(s); s.now = 1705592625; request(s, {{"member", "node2"}, {"scheduled_at", "2024-01-18T14:43:45+00:00"}});
                          with_peers(s, {peer("node2", 100)}); },
       true, false, false},
      {"request for another leader is cleared",
       [&](Snapshot& s) { cluster3(s); request(s, {{"leader", "node2"}, {"member", "node3"}}); },
       false, true, false},
      {"request naming me as candidate is done",
       [&](Snapshot& s) { cluster3(s); request(s, {{"leader", "node3"}, {"member", "node1"}}); },
       false, true, false},
      {"no candidate: any healthy replica",
       [&](Snapshot& s) { cluster3(s); request(s, {{"leader", "node1"}}); with_peers(s, {peer("node2", 50), peer("node3", 100)}); },
       true, false, false},
      {"paused without candidate is refused",
       [&](Snapshot& s) { cluster3(s); s.dyn.pause = true; request(s, {{"leader", "node1"}}); with_peers(s, {peer("node2", 100)}); },
       false, true, false},
      {"cleared key is no request",
       [&](Snapshot& s) { cluster3(s); request(s, nlohmann::json::object()); },
       false, false, false},
      {"replica leaves the lock to a healthy candidate",
       [&](Snapshot& s) { cluster3(s); no_leader(s); as_replica(s); s.me = "node3"; request(s, {{"leader", "node1"}, {"member", "node2"}});
                          with_peers(s, {peer("node2", 100)}); },
       false, false, false},
      {"replica races normally when the candidate is gone",
       [&](Snapshot& s) { cluster3(s); no_leader(s); as_replica(s); s.me = "node3"; request(s, {{"leader", "node1"}, {"member", "node2"}});
                          auto p = peer("node2", 100); p.reachable = false; with_peers(s, {p}); },
       false, false, true},
      {"candidate takes the lock even if a peer is ahead",
       [&](Snapshot& s) { cluster3(s); no_leader(s); as_replica(s); s.me = "node2"; s.cluster.edit().last_lsn = 100;
                          request(s, {{"leader", "node1"}, {"member", "node2"}}); with_peers(s, {peer("node3", 200)}); },
       false, false, true},
      {"candidate missing the old leader's last position waits",
       [&](Snapshot& s) { cluster3(s); no_leader(s); as_replica(s); s.me = "node2"; s.cluster.edit().last_lsn = 100 + 4 * 1048576;
                          request(s, {{"leader", "node1"}, {"member", "node2"}}); with_peers(s, {}); },
       false, false, false},
  };
  for (const auto& r : rows) {
    Snapshot s = base();
    r.change(s);
    Decision d = decide(s);
    EXPECT_EQ(has(d, A::kStepDown), r.step_down) << r.what << ": " << d.reason;
    EXPECT_EQ(has(d, A::kClearFailover), r.clear) << r.what << ": " << d.reason;
    EXPECT_EQ(has(d, A::kAcquireLock), r.acquire) << r.what << ": " << d.reason;
    if (r.step_down) {
      EXPECT_EQ(d.actions.size(), 1u) << r.what;  // nothing else: no renewal after stepping down
    }
  }
}

}  // namespace
}  // namespace pgwarden::ha
