// Table-driven tests of the HA rules: each row is a situation and the expected actions.
#include "pgwarden/ha/decide.hpp"

#include <gtest/gtest.h>

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
  s.cluster.initialize = "7000000000000000001";
  s.cluster.leader = dcs::Leader{"node1", 5, "1"};
  s.cluster.members = {member("node1", 100)};
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

auto no_leader = [](Snapshot& s) { s.cluster.leader.reset(); };
auto other_leader = [](Snapshot& s) {
  s.cluster.leader = dcs::Leader{"node2", 9, "2"};
  s.cluster.members.push_back(member("node2", 200));
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
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.last_lsn = 100 + 2048; s.dyn.maximum_lag_on_failover = 1024; },
     {}, "replica"},
    {"LagWithinMaximumAcquires",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.last_lsn = 100 + 512; s.dyn.maximum_lag_on_failover = 1024; },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"GracefulHandoverReplicaHasShutdownCheckpoint",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.last_lsn = 100; with_peers(s, {peer("node2", 80)}); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"ReplicaNoLeaderNotHealthiestWaits",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.members.push_back(member("node2", 500)); }, {}, "replica"},
    {"EqualLsnStillHealthiest",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.members.push_back(member("node2", 100)); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"AheadPeerThatIsNofailoverIgnored",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.members.push_back(member("node2", 900, "running", true)); },
     {A::kAcquireLock, A::kSyncSlots, A::kPromote}, "master"},
    {"AheadPeerNotRunningIgnored",
     [](Snapshot& s) { no_leader(s); as_replica(s); s.cluster.members.push_back(member("node2", 900, "stopped")); },
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
       s.cluster.initialize = "";
       s.pg = LocalPostgres{};
     },
     {}, "uninitialized"},
    {"EmptyDataWithLeaderCreatesReplica", [](Snapshot& s) { other_leader(s); s.pg = LocalPostgres{}; },
     {A::kCreateReplica, A::kStartReplica}, "replica"},
    {"ExistingDataNoInitializeKeyStopped",
     [](Snapshot& s) {
       s.cluster.initialize.reset();
       s.cluster.leader.reset();
       stopped(s);
     },
     {A::kAcquireLock, A::kStartPrimary, A::kWriteInitialize}, "master"},
    {"ExistingDataNoInitializeKeyRunning",
     [](Snapshot& s) {
       s.cluster.initialize.reset();
       s.cluster.leader.reset();
     },
     {A::kAcquireLock, A::kWriteInitialize}, "master"},
    {"SysidMismatchPrimaryDemotes", [](Snapshot& s) { s.pg.sysid = "123"; }, {A::kDemote}, "uninitialized"},
    {"SysidMismatchStoppedDoesNotStart", [](Snapshot& s) { s.pg.sysid = "123"; stopped(s); }, {}, "uninitialized"},
    {"EmptyInitializeValueFilledByLeader", [](Snapshot& s) { s.cluster.initialize = ""; },
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
       [](Snapshot& s) { s.cluster.members.push_back(member("node2", 100, "running")); }, false},
      {"a stopped member does not count",
       [](Snapshot& s) { s.cluster.members.push_back(member("node2", 100, "stopped")); }, true},
      {"a leader exists", [](Snapshot& s) { s.cluster.leader = dcs::Leader{"node2", 1, ""}; }, false},
      {"a method works without a leader", [](Snapshot& s) { s.can_clone_without_leader = true; }, false},
  };
  for (const auto& r : rows) {
    Snapshot s = base();
    s.cluster.leader.reset();
    s.cluster.members = {};
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

}  // namespace
}  // namespace pgwarden::ha
