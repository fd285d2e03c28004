// The etcd v3 backend against a real etcd 3.4: races, leases, Patroni's key layout and
// value shapes, watch, and host fail-over.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

#include "pgwarden/dcs/etcd/etcd3_dcs.hpp"
#include "support/harness.hpp"

namespace pgwarden::dcs::etcd {
namespace {

using namespace std::chrono_literals;
using test::EtcdServer;

class EtcdDcs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new EtcdServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // A fresh scope per test so tests do not see each other's keys.
  void SetUp() override {
    scope_ = std::string("c") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  std::unique_ptr<Etcd3Dcs> make(const std::string& name, int ttl = 10, std::vector<Endpoint> hosts = {},
                                 int retry_timeout = 3) {
    Etcd3Options o;
    o.hosts = hosts.empty() ? std::vector<Endpoint>{{"127.0.0.1", server_->client_port()}} : std::move(hosts);
    o.prefix = cluster_prefix("/service/", scope_);
    o.name = name;
    o.ttl = ttl;
    o.loop_wait = 1;
    o.retry_timeout = retry_timeout;
    return std::make_unique<Etcd3Dcs>(std::move(o));
  }

  // Member "a" holding the leader key on etcd `own`, its view served from the watch cache.
  std::unique_ptr<Etcd3Dcs> leader_with_cache(const EtcdServer& own, int ttl, int retry_timeout) {
    auto a = make("a", ttl, {{"127.0.0.1", own.client_port()}}, retry_timeout);
    EXPECT_TRUE(a->attempt_to_acquire_leader().ok());
    EXPECT_TRUE(a->load_cluster().ok());
    EXPECT_TRUE(a->update_leader(std::nullopt).ok());
    EXPECT_FALSE(a->watch(100ms));  // the stream that lets the next load answer from the cache
    EXPECT_TRUE(a->serves_from_cache());
    return a;
  }

  // Member "b" with ttl 4, loop_wait 1, retry_timeout 1 (its lease trusted for 2 s after a
  // keep-alive) and its lease just granted.
  std::unique_ptr<Etcd3Dcs> member_with_fresh_lease() {
    auto b = make("b", /*ttl=*/4, {}, /*retry_timeout=*/1);
    EXPECT_TRUE(b->load_cluster().ok());
    EXPECT_TRUE(b->touch_member({{"state", "running"}}).ok());  // grants the lease
    return b;
  }

  // Another member's view has `name`'s key.
  void expect_member_key(const std::string& name) {
    auto c = make("observer")->load_cluster();
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_TRUE(c->member(name)) << "the member key expired";
  }

  std::string prefix() const { return "/service/" + scope_ + "/"; }
  std::map<std::string, std::string> raw() { return server_->get_prefix(prefix()); }

  static EtcdServer* server_;
  std::string scope_;
};

EtcdServer* EtcdDcs::server_ = nullptr;

// SIGSTOP for a process (etcd stops answering, its sockets stay open) until resume() or the
// end of the scope, even when an assertion failed half-way.
class StoppedProcess {
 public:
  explicit StoppedProcess(int pid) : pid_(pid) { EXPECT_EQ(::kill(pid_, SIGSTOP), 0); }
  ~StoppedProcess() { resume(); }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
    pid_ = 0;
  }

 private:
  int pid_;
};

// A counter from etcd's Prometheus metrics on its client port: the line that starts with
// `series` (name and, if any, the first labels); -1 when absent.
long etcd_metric(int client_port, const std::string& series) {
  auto r = test::http_request("GET", "127.0.0.1", client_port, "/metrics");
  auto at = r.body.find("\n" + series);
  if (r.status != 200 || at == std::string::npos) return -1;
  auto end = r.body.find('\n', at + 1);
  auto space = r.body.rfind(' ', end);
  return space == std::string::npos || space < at ? -1 : std::stol(r.body.substr(space + 1, end - space - 1));
}

long watch_streams_started(int client_port) {
  return etcd_metric(client_port, R"(grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch")");
}

// The mod_revision of every key under `prefix`, read over etcd's JSON gateway.
std::map<std::string, long> mod_revisions(int client_port, const std::string& prefix) {
  const nlohmann::json req = {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_range_end(prefix))}};
  auto r = test::http_request("POST", "127.0.0.1", client_port, "/v3/kv/range", req.dump());
  std::map<std::string, long> out;
  if (r.status != 200) return out;
  for (const auto& kv : decode_kvs(nlohmann::json::parse(r.body))) out[kv.key] = kv.mod_revision;
  return out;
}

// Range requests (kv/range), not counting the reads inside a txn's compares.
long range_requests(int client_port) {
  return etcd_metric(client_port, R"(grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV")");
}

TEST_F(EtcdDcs, InitializeRace) {
  auto a = make("a"), b = make("b");
  EXPECT_TRUE(a->initialize(true, "").ok());
  auto s = b->initialize(true, "");
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
  EXPECT_TRUE(b->initialize(false, "7221432107392421234").ok());
  auto c = a->load_cluster();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->initialize, std::optional<std::string>("7221432107392421234"));
  EXPECT_TRUE(a->cancel_initialization().ok());
  EXPECT_FALSE(a->load_cluster()->initialize);
}

TEST_F(EtcdDcs, LeaderRaceAndUpdate) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  auto s = b->attempt_to_acquire_leader();
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_NE(s.message().find("held by a"), std::string::npos) << s.message();

  EXPECT_TRUE(a->update_leader(12345).ok());
  int64_t leader_index = b->load_cluster()->leader->index;
  EXPECT_TRUE(a->update_leader(12345).ok());  // renewal alone does not rewrite the key
  EXPECT_EQ(b->load_cluster()->leader->index, leader_index);
  auto u = b->update_leader(std::nullopt);
  EXPECT_EQ(u.code(), Code::kConflict);
  EXPECT_NE(u.message().find("held by a"), std::string::npos) << u.message();

  auto kv = raw();
  EXPECT_EQ(kv[prefix() + "leader"], "a");
  EXPECT_EQ(kv[prefix() + "status"], R"({"optime":12345})");
  auto c = b->load_cluster();
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->leader);
  EXPECT_EQ(c->leader->name, "a");
  EXPECT_EQ(c->leader->session, std::to_string(a->lease_id()));
  EXPECT_EQ(c->last_lsn, 12345);

  // b cannot delete a's key; a can.
  EXPECT_EQ(b->delete_leader(std::nullopt).code(), Code::kConflict);
  EXPECT_TRUE(a->delete_leader(20000).ok());
  c = b->load_cluster();
  EXPECT_FALSE(c->leader);
  EXPECT_EQ(c->last_lsn, 20000);
  EXPECT_TRUE(b->attempt_to_acquire_leader().ok());
}

TEST_F(EtcdDcs, CloseRevokesLeaseAndKeys) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->touch_member({{"state", "running"}}).ok());
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  EXPECT_EQ(raw().count(prefix() + "leader"), 1u);
  a->close();
  auto c = b->load_cluster();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->leader);
  EXPECT_TRUE(c->members.empty());
  EXPECT_EQ(raw().count(prefix() + "leader"), 0u);
}

TEST_F(EtcdDcs, LeaderKeyExpiresWhenNotRenewed) {
  auto a = make("a", /*ttl=*/2), b = make("b");
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(b->load_cluster()->leader);
  // a stops renewing (as if it hung); the key must go after ~ttl, not before ttl-1.
  EXPECT_TRUE(test::wait_until([&] { return !b->load_cluster()->leader; }, 8s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(b->attempt_to_acquire_leader().ok());
  // a's renewal now reports the loss instead of silently retaking the key.
  auto s = a->update_leader(std::nullopt);
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
}

TEST_F(EtcdDcs, RenewalKeepsLeaderPastTtl) {
  auto a = make("a", /*ttl=*/2), b = make("b");
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(a->update_leader(std::nullopt).ok());
    std::this_thread::sleep_for(500ms);
  }
  auto c = b->load_cluster();
  ASSERT_TRUE(c->leader);
  EXPECT_EQ(c->leader->name, "a");
}

// A member busy with a long action (a clone, a standby start) keeps its key past ttl with
// keep_member_alive() alone, as Patroni's loop keeps touching its member meanwhile.
TEST_F(EtcdDcs, KeepMemberAliveKeepsTheMemberKeyPastTtl) {
  auto a = make("a", /*ttl=*/2), b = make("b");
  ASSERT_TRUE(a->touch_member(nlohmann::json{{"state", "creating replica"}}).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(a->keep_member_alive().ok());
    std::this_thread::sleep_for(500ms);
  }
  auto c = b->load_cluster();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->member("a")) << "the member key expired although it was kept alive";
}

// The leader key rides on the member's lease: keep_member_alive() must never renew it, so a
// leader stuck in a long action loses its lock after ttl as before (and its member key).
TEST_F(EtcdDcs, KeepMemberAliveNeverRenewsALeader) {
  auto a = make("a", /*ttl=*/2), b = make("b");
  ASSERT_TRUE(a->touch_member(nlohmann::json{{"state", "running"}}).ok());
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(b->load_cluster()->leader);
  bool gone = false;
  for (int i = 0; i < 16 && !gone; ++i) {
    ASSERT_TRUE(a->keep_member_alive().ok());
    std::this_thread::sleep_for(500ms);
    gone = !b->load_cluster()->leader;
  }
  EXPECT_TRUE(gone) << "the leader key was kept alive past ttl";
  EXPECT_FALSE(b->load_cluster()->member("a"));
  // Once another member holds the lock, a's lease carries no leader key any more: its next
  // member key is kept alive again.
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->touch_member(nlohmann::json{{"state", "creating replica"}}).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(a->keep_member_alive().ok());
    ASSERT_TRUE(b->update_leader(std::nullopt).ok());
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(b->load_cluster()->member("a"));
}

long keepalive_requests(int client_port) {
  return etcd_metric(client_port,
                     R"(grpc_server_started_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease")");
}

// A leader's keep-alive goes out with its view and the renewal takes etcd's answer: one
// keep-alive a cycle, as before, with one wait less. A cycle that does not renew leaves its
// answer to the next load; a member without the key sends none with its view.
TEST_F(EtcdDcs, LeaderRenewalTakesTheKeepAliveSentWithTheView) {
  auto a = make("a"), b = make("b", 30);
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  const long before = keepalive_requests(server_->client_port());
  ASSERT_GE(before, 0);
  for (int cycle = 0; cycle < 3; ++cycle) {
    ASSERT_TRUE(a->load_cluster().ok());
    ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  }
  EXPECT_EQ(keepalive_requests(server_->client_port()), before + 3) << "one keep-alive per cycle";

  ASSERT_TRUE(a->load_cluster().ok());  // a cycle that does not renew
  ASSERT_TRUE(a->load_cluster().ok());  // takes that answer, sends the next
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  EXPECT_EQ(keepalive_requests(server_->client_port()), before + 5);

  ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  const long with_b = keepalive_requests(server_->client_port());
  ASSERT_TRUE(b->load_cluster().ok());
  ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  EXPECT_EQ(keepalive_requests(server_->client_port()), with_b) << "b holds no leader key: nothing early";
  EXPECT_EQ(raw()[prefix() + "leader"], "a");
}

// A member without the lock keeps its lease alive only when the TTL needs it; when it does,
// the keep-alive goes out with the view and touch_member takes etcd's answer: one keep-alive
// for that cycle, none for the cycles in between.
TEST_F(EtcdDcs, DueMemberKeepAliveGoesOutWithTheView) {
  auto b = member_with_fresh_lease();
  ASSERT_FALSE(HasFailure());
  const long granted = keepalive_requests(server_->client_port());
  ASSERT_GE(granted, 0);
  ASSERT_TRUE(b->load_cluster().ok());
  ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  EXPECT_EQ(keepalive_requests(server_->client_port()), granted) << "a fresh lease needs no keep-alive";

  std::this_thread::sleep_for(2100ms);
  ASSERT_TRUE(b->load_cluster().ok());
  // etcd counts the request when it handles it, which may be a moment after load_cluster returns.
  EXPECT_TRUE(test::wait_until([&] { return keepalive_requests(server_->client_port()) == granted + 1; }, 2s))
      << "the due keep-alive goes out with the view";
  ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  EXPECT_EQ(keepalive_requests(server_->client_port()), granted + 1) << "touch_member takes that answer";
  ASSERT_TRUE(b->load_cluster().ok());
  ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  EXPECT_EQ(keepalive_requests(server_->client_port()), granted + 1) << "renewed: trusted again for 2 s";

  // The member key outlives the TTL on those keep-alives alone.
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(1100ms);
    ASSERT_TRUE(b->load_cluster().ok());
    ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  }
  expect_member_key("b");
  EXPECT_LE(keepalive_requests(server_->client_port()), granted + 3) << "a keep-alive every other 1.1 s cycle";
}

// etcd stops answering after the early keep-alive went out: the renewal fails (the leader
// then demotes) within retry_timeout of that keep-alive, and works again once etcd is back.
TEST_F(EtcdDcs, UnansweredEarlyKeepAliveFailsTheRenewal) {
  EtcdServer own;
  auto a = leader_with_cache(own, 10, /*retry_timeout=*/1);
  ASSERT_FALSE(HasFailure());
  StoppedProcess stopped(own.pid());
  ASSERT_TRUE(a->load_cluster().ok());  // from the cache; the keep-alive waits unanswered
  const auto t0 = std::chrono::steady_clock::now();
  auto s = a->update_leader(std::nullopt);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms) << "bounded by retry_timeout (1 s)";
  stopped.resume();
  ASSERT_TRUE(test::wait_until([&] { return a->update_leader(std::nullopt).ok(); }, 10s));
  EXPECT_EQ(own.get_prefix(prefix())[prefix() + "leader"], "a");
}

// The keep-alive a leader sends just before the HA loop's sleep stands for the next cycle's
// renewal when that cycle comes within the sleep (plus half a second): etcd answers it while
// the loop sleeps. One found older than that does not: the renewal sends its own.
TEST_F(EtcdDcs, KeepAliveSentBeforeTheSleepStandsForTheNextRenewal) {
  auto a = make("a");  // ttl 10, loop_wait 1, retry_timeout 3: room for it
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  const long before = keepalive_requests(server_->client_port());
  ASSERT_GE(before, 0);
  for (int cycle = 1; cycle <= 2; ++cycle) {
    a->before_sleep(1000ms);
    EXPECT_TRUE(test::wait_until([&] { return keepalive_requests(server_->client_port()) == before + cycle; }, 2s))
        << "sent before the sleep";
    std::this_thread::sleep_for(900ms);
    ASSERT_TRUE(a->load_cluster().ok());
    ASSERT_TRUE(a->update_leader(std::nullopt).ok());
    EXPECT_EQ(keepalive_requests(server_->client_port()), before + cycle) << "the renewal took its answer";
  }
  a->before_sleep(1000ms);
  std::this_thread::sleep_for(1700ms);  // a late wake: 1 s + 0.5 s is the most that stands
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  EXPECT_EQ(keepalive_requests(server_->client_port()), before + 4) << "too old: the renewal sent its own";
  EXPECT_EQ(raw()[prefix() + "leader"], "a");
}

// A member's keep-alive that will be due when the loop wakes goes out before the sleep, and
// the next cycle takes its answer: with the lease trusted for two loops, one keep-alive every
// other cycle, none sent on waking, and the member key outlives the TTL.
TEST_F(EtcdDcs, DueMemberKeepAliveGoesOutBeforeTheSleep) {
  auto b = member_with_fresh_lease();
  ASSERT_FALSE(HasFailure());
  const long granted = keepalive_requests(server_->client_port());
  ASSERT_GE(granted, 0);
  long sent = granted;
  for (int cycle = 0; cycle < 6; ++cycle) {
    b->before_sleep(1000ms);
    std::this_thread::sleep_for(1000ms);
    const long after_sleep = keepalive_requests(server_->client_port());
    ASSERT_TRUE(b->load_cluster().ok());
    ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
    EXPECT_EQ(keepalive_requests(server_->client_port()), after_sleep) << "cycle " << cycle << ": none on waking";
    sent = after_sleep;
  }
  EXPECT_GE(sent - granted, 2) << "kept alive";
  EXPECT_LE(sent - granted, 3) << "every other cycle, not every cycle";
  expect_member_key("b");
}

// Where a failure seen a sleep later would leave the leader less than retry_timeout to demote
// before its lease runs out, nothing goes out before the sleep.
TEST_F(EtcdDcs, NoKeepAliveBeforeTheSleepWhereTheTtlLeavesNoRoom) {
  // ttl 7, loop_wait 1, retry_timeout 3: loop_wait + 2 retry_timeout = 7 passes Patroni's rule;
  // then loop_wait 3: 2 loop_wait + retry_timeout = 9 > 7.
  auto a = make("a", /*ttl=*/7);
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  const long before = keepalive_requests(server_->client_port());
  a->before_sleep(1000ms);
  EXPECT_TRUE(test::wait_until([&] { return keepalive_requests(server_->client_port()) == before + 1; }, 2s));
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  a->set_loop_wait(3);
  a->before_sleep(3000ms);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(keepalive_requests(server_->client_port()), before + 1) << "nothing sent before the sleep";
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  EXPECT_EQ(keepalive_requests(server_->client_port()), before + 2) << "the cycle renews as before";
}

// etcd stops answering after the keep-alive sent before the sleep: on waking the renewal
// fails within retry_timeout of that keep-alive (not of the wake), so the leader demotes as
// early as it would have with a keep-alive sent on waking after the previous one.
TEST_F(EtcdDcs, UnansweredKeepAliveSentBeforeTheSleepFailsTheRenewal) {
  EtcdServer own;
  auto a = leader_with_cache(own, 10, /*retry_timeout=*/2);
  ASSERT_FALSE(HasFailure());
  StoppedProcess stopped(own.pid());
  const auto sent = std::chrono::steady_clock::now();
  a->before_sleep(1000ms);
  EXPECT_FALSE(a->watch(1000ms));
  ASSERT_TRUE(a->load_cluster().ok());  // from the cache
  auto s = a->update_leader(std::nullopt);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 2700ms) << "bounded by retry_timeout (2 s) from the send";
  stopped.resume();
  ASSERT_TRUE(test::wait_until([&] { return a->update_leader(std::nullopt).ok(); }, 10s));
  EXPECT_EQ(own.get_prefix(prefix())[prefix() + "leader"], "a");
}

// etcd stops answering just after it answered the keep-alive that renews the lock: the
// renewal stands, but every call the leader then waits on (its status write, its member key,
// the next renewal) gives up by the time its lease leaves retry_timeout to demote (ttl -
// retry_timeout after that keep-alive went out), not retry_timeout after each call began.
TEST_F(EtcdDcs, ALeaderWaitsOnEtcdNoLongerThanItsLeaseLeavesTimeToDemote) {
  EtcdServer own;
  // ttl 6, loop_wait 1, retry_timeout 2: decide by 4 s after the keep-alive.
  auto a = leader_with_cache(own, 6, /*retry_timeout=*/2);
  ASSERT_FALSE(HasFailure());
  const auto sent = std::chrono::steady_clock::now();
  a->before_sleep(1000ms);
  std::this_thread::sleep_for(300ms);  // etcd answers it
  StoppedProcess stopped(own.pid());
  std::this_thread::sleep_for(700ms);
  ASSERT_TRUE(a->load_cluster().ok());  // from the cache
  EXPECT_TRUE(a->update_leader(int64_t{0x3000060}).ok()) << "renewed by the answer already in; the status write gave up";
  EXPECT_FALSE(a->touch_member({{"state", "running"}}).ok());
  auto s = a->update_leader(std::nullopt);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 4700ms) << "past ttl - retry_timeout (4 s) after the keep-alive";
  stopped.resume();
  ASSERT_TRUE(test::wait_until([&] { return a->update_leader(std::nullopt).ok(); }, 10s));
  EXPECT_EQ(own.get_prefix(prefix())[prefix() + "leader"], "a");
}

// A renewal whose keep-alive finds etcd at a revision the view is complete up to only keeps
// the lease alive, as Patroni does; after any other change it asks etcd, and so finds the key
// someone else took.
TEST_F(EtcdDcs, RenewalTrustsAViewNothingChangedSince) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  const long txns = etcd_metric(server_->client_port(), "etcd_mvcc_txn_total ");
  ASSERT_GE(txns, 0);
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  EXPECT_EQ(etcd_metric(server_->client_port(), "etcd_mvcc_txn_total "), txns) << "no txn while nothing changed";

  // An unrelated write since the view: the renewal asks etcd once, and the key is still ours.
  ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  EXPECT_EQ(etcd_metric(server_->client_port(), "etcd_mvcc_txn_total "), txns + 1);

  // The key changes hands behind a's back (another process of the same name deletes it).
  ASSERT_TRUE(make("a")->delete_leader(std::nullopt).ok());
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  auto s = a->update_leader(std::nullopt);
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
  EXPECT_NE(s.message().find("held by b"), std::string::npos) << s.message();
  EXPECT_EQ(raw()[prefix() + "leader"], "b");
}

// Once the watch stream that follows its range read is open, load_cluster() answers from the
// events it brings (Patroni's KVCache) instead of reading etcd every HA cycle.
TEST_F(EtcdDcs, LoadAnswersFromTheWatchCache) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->load_cluster().ok());
  EXPECT_FALSE(a->serves_from_cache()) << "no stream yet";
  EXPECT_FALSE(a->watch(100ms));  // opens the stream
  EXPECT_TRUE(a->serves_from_cache());
  const long ranges = range_requests(server_->client_port());
  ASSERT_GE(ranges, 0);

  ASSERT_TRUE(b->touch_member({{"state", "running"}}).ok());
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(test::wait_until([&] {
    auto c = a->load_cluster();
    return c.ok() && c->leader && c->leader->name == "b" && c->member("b");
  }, 5s));
  EXPECT_EQ(a->load_cluster()->member("b")->session, std::to_string(b->lease_id()));
  ASSERT_TRUE(b->delete_leader(std::nullopt).ok());
  ASSERT_TRUE(test::wait_until([&] { return !a->load_cluster()->leader; }, 5s));
  EXPECT_EQ(range_requests(server_->client_port()), ranges) << "loads did not read etcd";
}

// When the stream ends (here: etcd dies), the cache is no longer trusted: the next load asks
// etcd and reports that it cannot, rather than answering from what it last knew.
TEST_F(EtcdDcs, CacheIsDroppedWhenTheStreamEnds) {
  EtcdServer own;
  auto a = make("a", 10, {{"127.0.0.1", own.client_port()}}, /*retry_timeout=*/1);
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  EXPECT_FALSE(a->watch(100ms));
  ASSERT_TRUE(a->serves_from_cache());
  own.kill_now();
  ASSERT_TRUE(test::wait_until([&] { return !a->load_cluster().ok(); }, 5s));
  EXPECT_FALSE(a->serves_from_cache());
  EXPECT_EQ(a->load_cluster().status().code(), Code::kUnavailable);
}

TEST_F(EtcdDcs, SetTtlRebindsLeaderToNewLease) {
  auto a = make("a", 10);
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  int64_t old_lease = a->lease_id();
  a->set_ttl(5);
  ASSERT_TRUE(a->update_leader(std::nullopt).ok());
  EXPECT_NE(a->lease_id(), old_lease);
  auto c = a->load_cluster();
  ASSERT_TRUE(c->leader);
  EXPECT_EQ(c->leader->session, std::to_string(a->lease_id()));
  EXPECT_TRUE(a->watch(50ms));  // set_ttl asks for a prompt HA cycle
}

TEST_F(EtcdDcs, TouchMemberUsesPatroniShape) {
  auto a = make("a"), b = make("b");
  nlohmann::json data = {{"conn_url", "postgres://127.0.0.1:5432/postgres"},
                         {"api_url", "http://127.0.0.1:8008/patroni"},
                         {"state", "running"},
                         {"role", "replica"},
                         {"version", "3.0.2"},
                         {"xlog_location", 67108960},
                         {"timeline", 1}};
  ASSERT_TRUE(a->touch_member(data).ok());
  auto c = b->load_cluster();
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->members.size(), 1u);
  EXPECT_EQ(c->members[0].name, "a");
  EXPECT_EQ(c->members[0].data, data);
  EXPECT_EQ(c->members[0].session, std::to_string(a->lease_id()));
  EXPECT_GT(c->members[0].index, 0);
  std::string value = raw()[prefix() + "members/a"];
  EXPECT_EQ(value, data.dump());  // compact JSON like json.dumps(separators=(',', ':'))
  EXPECT_EQ(value.find(": "), std::string::npos);

  // Unchanged data after a load is not rewritten (mod revision stays).
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->touch_member(data).ok());
  EXPECT_EQ(b->load_cluster()->members[0].index, c->members[0].index);
  data["state"] = "stopped";
  ASSERT_TRUE(a->touch_member(data).ok());
  EXPECT_GT(b->load_cluster()->members[0].index, c->members[0].index);
}

TEST_F(EtcdDcs, ConfigCompareAndSet) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->set_config_value(R"({"ttl":30})", std::nullopt).ok());
  auto c = a->load_cluster();
  ASSERT_TRUE(c->config);
  int64_t idx = c->config_index;
  ASSERT_TRUE(b->set_config_value(R"({"ttl":20})", idx).ok());
  auto s = a->set_config_value(R"({"ttl":40})", idx);
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
  EXPECT_EQ((*a->load_cluster()->config)["ttl"], 20);

  ASSERT_TRUE(a->set_failover_value(R"({"leader":"a","member":"b"})", std::nullopt).ok());
  auto f = b->load_cluster();
  ASSERT_TRUE(f->failover);
  EXPECT_EQ(b->set_failover_value("{}", f->failover_index + 100).code(), Code::kConflict);
  ASSERT_TRUE(a->set_history_value(R"([[1,100,"reason","ts","a"]])").ok());
  EXPECT_EQ(a->load_cluster()->history->size(), 1u);
}

TEST_F(EtcdDcs, WatchWakesOnLeaderChangeAndTimesOut) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->load_cluster().ok());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(a->watch(700ms));
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 650ms);
  EXPECT_LT(waited, 3s);

  ASSERT_TRUE(a->load_cluster().ok());
  std::thread writer([&] {
    std::this_thread::sleep_for(300ms);
    (void)b->attempt_to_acquire_leader();
  });
  t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(a->watch(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  writer.join();

  // A write that already happened after the last load is seen at once.
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(b->delete_leader(std::nullopt).ok());
  t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(a->watch(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);

  // Our own member/status writes do not wake us (else the leader would spin). Taking the
  // lock is a change like any other: it wakes a watch unless a load has seen it.
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(test::wait_until([&] {
    auto c = a->load_cluster();
    return c.ok() && c->leader && c->leader->name == "a";
  }, 5s));
  ASSERT_TRUE(a->touch_member({{"state", "running"}}).ok());
  ASSERT_TRUE(a->update_leader(42).ok());
  EXPECT_FALSE(a->watch(500ms));
}

// A leader's status follows its WAL position, and so does its member key: when both change,
// they go out in one request, so watchers get one event (one wake-up) instead of two. With
// the member key unchanged the status goes alone; with the position unchanged, nothing. A
// status not yet written when the next renewal comes is written then.
TEST_F(EtcdDcs, ALeadersStatusAndMemberKeyGoOutInOneRequest) {
  auto a = make("a");
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(100).ok());
  ASSERT_TRUE(a->touch_member({{"state", "running"}, {"xlog_location", 100}}).ok());
  const std::string status = prefix() + "status", member = prefix() + "members/a";
  auto revs = mod_revisions(server_->client_port(), prefix());
  EXPECT_EQ(revs[status], revs[member]) << "written together";
  EXPECT_EQ(raw()[status], R"({"optime":100})");

  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(200).ok());
  ASSERT_TRUE(a->touch_member({{"state", "running"}, {"xlog_location", 100}}).ok());  // unchanged
  auto alone = mod_revisions(server_->client_port(), prefix());
  EXPECT_EQ(alone[member], revs[member]);
  EXPECT_GT(alone[status], revs[status]);
  EXPECT_EQ(raw()[status], R"({"optime":200})");

  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(200).ok());
  ASSERT_TRUE(a->touch_member({{"state", "running"}, {"xlog_location", 100}}).ok());
  EXPECT_EQ(mod_revisions(server_->client_port(), prefix()), alone) << "nothing changed, nothing written";

  // No member key written after the renewal: the next renewal (or the sleep) writes it.
  ASSERT_TRUE(a->update_leader(300).ok());
  ASSERT_TRUE(a->update_leader(300).ok());
  EXPECT_EQ(raw()[status], R"({"optime":300})");
  ASSERT_TRUE(a->update_leader(400).ok());
  a->before_sleep(0ms);
  EXPECT_EQ(raw()[status], R"({"optime":400})");

  // Another member's view has both.
  auto c = make("b")->load_cluster();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->last_lsn, 400);
  ASSERT_TRUE(c->member("a"));
  EXPECT_EQ(c->member("a")->data.value("xlog_location", 0), 100);
}

// After a leader's status write, its watch lets the members' answers gather for a moment and
// takes them in one read: a change that wakes a leader (a new member) arriving meanwhile is
// reported, with every member that arrived, but not before that moment has passed.
TEST_F(EtcdDcs, ALeaderLetsTheMembersAnswersToItsStatusGather) {
  auto a = make("a");
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->update_leader(100).ok());
  const auto written = std::chrono::steady_clock::now();
  ASSERT_TRUE(a->touch_member({{"state", "running"}, {"xlog_location", 100}}).ok());
  std::unique_ptr<Etcd3Dcs> b, c;
  std::thread members([&] {
    b = make("b");
    c = make("c");
    (void)b->touch_member({{"state", "running"}});
    (void)c->touch_member({{"state", "running"}});
  });
  EXPECT_TRUE(a->watch(10s)) << "a new member wakes the leader";
  const auto waited = std::chrono::steady_clock::now() - written;
  members.join();
  EXPECT_GE(waited, Etcd3Dcs::kMemberAnswerWindow);
  auto view = a->load_cluster();
  ASSERT_TRUE(view.ok()) << view.status().message();
  EXPECT_TRUE(view->member("b"));
  EXPECT_TRUE(view->member("c"));

}

// A leader that lost its key writes no status for the renewal that failed.
TEST_F(EtcdDcs, NoStatusIsWrittenForAFailedRenewal) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->update_leader(100).ok());
  ASSERT_TRUE(a->touch_member({{"state", "running"}}).ok());
  ASSERT_TRUE(a->delete_leader(std::nullopt).ok());
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  EXPECT_EQ(a->update_leader(500).code(), Code::kConflict);
  EXPECT_TRUE(a->touch_member({{"state", "running"}, {"xlog_location", 500}}).ok());
  a->before_sleep(0ms);
  EXPECT_EQ(raw()[prefix() + "status"], R"({"optime":100})");
}

// One watch stream serves every HA cycle: it stays open between watch() calls (no new
// connection and etcd watcher per cycle), events a load already saw do not wake again, and
// a change made between two calls is still seen at once.
TEST_F(EtcdDcs, WatchStreamLastsAcrossCalls) {
  auto a = make("a"), b = make("b");
  ASSERT_TRUE(a->load_cluster().ok());
  const long before = watch_streams_started(server_->client_port());
  ASSERT_GE(before, 0) << "etcd's /metrics has no Watch stream counter";

  EXPECT_FALSE(a->watch(200ms));  // opens the stream
  // A change a load has seen does not wake a watch after it.
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  ASSERT_TRUE(test::wait_until([&] { return a->load_cluster()->leader.has_value(); }, 5s));
  EXPECT_FALSE(a->watch(300ms));
  // A change made between two calls (while the HA cycle runs) wakes the next one at once.
  ASSERT_TRUE(b->delete_leader(std::nullopt).ok());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(a->watch(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  ASSERT_TRUE(a->load_cluster().ok());
  EXPECT_FALSE(a->watch(200ms));

  EXPECT_EQ(watch_streams_started(server_->client_port()) - before, 1) << "one stream for four calls";
}

TEST_F(EtcdDcs, WakeInterruptsWatch) {
  auto a = make("a");
  ASSERT_TRUE(a->load_cluster().ok());
  std::thread waker([&] {
    std::this_thread::sleep_for(300ms);
    a->wake();
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(a->watch(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  waker.join();
  EXPECT_FALSE(a->watch(200ms));  // the wake was consumed
}

TEST_F(EtcdDcs, FailsOverFromDeadHost) {
  int dead = test::free_port();
  auto a = make("a", 10, {{"127.0.0.1", dead}, {"127.0.0.1", server_->client_port()}});
  ASSERT_TRUE(a->initialize(true, "x").ok());
  auto c = a->load_cluster();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->initialize, std::optional<std::string>("x"));
  EXPECT_TRUE(a->attempt_to_acquire_leader().ok());
  EXPECT_TRUE(a->update_leader(1).ok());
}

// A listener that completes TCP handshakes (kernel backlog) but never answers: a hung etcd.
class HungHost {
 public:
  HungHost() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~HungHost() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(EtcdDcs, FailsOverFromHungHost) {
  HungHost hung;
  auto a = make("a", 10, {{"127.0.0.1", hung.port()}, {"127.0.0.1", server_->client_port()}}, /*retry_timeout=*/4);
  auto t0 = std::chrono::steady_clock::now();
  auto c = a->load_cluster();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3500ms);  // one per-host slice (2 s) lost
  // The working host is preferred from now on: no more waiting on the hung one.
  t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(a->load_cluster().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);

  auto b = make("b", 10, {{"127.0.0.1", hung.port()}}, /*retry_timeout=*/2);
  t0 = std::chrono::steady_clock::now();
  auto s = b->initialize(true, "");
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST_F(EtcdDcs, AllHostsDeadIsUnavailableWithinRetryTimeout) {
  int d1 = test::free_port(), d2 = test::free_port();
  auto a = make("a", 10, {{"127.0.0.1", d1}, {"127.0.0.1", d2}}, /*retry_timeout=*/2);
  auto t0 = std::chrono::steady_clock::now();
  auto c = a->load_cluster();
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_NE(c.status().message().find("127.0.0.1:" + std::to_string(d1)), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("127.0.0.1:" + std::to_string(d2)), std::string::npos);
  EXPECT_LT(took, 3500ms);
  auto s = a->attempt_to_acquire_leader();
  EXPECT_EQ(s.code(), Code::kUnavailable);
  // watch with no etcd just waits out its timeout
  t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(a->watch(300ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(EtcdDcs, MalformedValuesDoNotBreakLoad) {
  auto a = make("a");
  ASSERT_TRUE(a->set_config_value("{broken", std::nullopt).ok());
  ASSERT_TRUE(a->set_history_value("not json").ok());
  ASSERT_TRUE(a->touch_member({{"role", "replica"}}).ok());
  auto c = a->load_cluster();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->config);
  EXPECT_FALSE(c->history);
  EXPECT_EQ(c->members.size(), 1u);
}

}  // namespace
}  // namespace pgwarden::dcs::etcd
