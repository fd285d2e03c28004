// The Kubernetes backend against the API emulator: lock races with resourceVersion
// preconditions, expiry by our own clock, Patroni's object layout, pod status and labels,
// the writes we save, and the unhappy paths (409, rejected token, malformed data, outage).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "pgwarden/dcs/kubernetes/kubernetes_dcs.hpp"
#include "support/harness.hpp"
#include "support/k8s_emulator.hpp"

namespace pgwarden::dcs::k8s {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::K8sEmulator;
using test::wait_until;

constexpr const char* kNs = "dcs-ns";
constexpr const char* kToken = "dcs-token";

class K8sDcs : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    emu_.add_token(kToken);
    emu_.start();
    for (const char* pod : {"a", "b", "c"}) add_pod(pod);
  }
  void TearDown() override {
    dcs_.clear();
    emu_.stop();
  }

  bool endpoints() const { return GetParam(); }
  std::string kind() const { return endpoints() ? "endpoints" : "configmaps"; }
  std::string leader_object() const { return endpoints() ? "db" : "db-leader"; }

  void add_pod(const std::string& name) {
    json pod = {{"metadata", {{"name", name}, {"namespace", kNs}, {"labels", {{"app", "db"}, {"cluster-name", "db"}}}}},
                {"spec", {{"nodeName", "n1"}}},
                {"status", {{"podIP", "192.0.2.1"}}}};
    emu_.put_raw(kNs, "pods", pod);
  }

  KubernetesDcs* make(const std::string& name, int ttl = 10, int retry_timeout = 3, std::string token = kToken) {
    KubernetesOptions o;
    o.layout = layout_from(kNs, "db", endpoints(), {{"app", "db"}}, "cluster-name", "role");
    o.name = name;
    o.pod_ip = "192.0.2." + std::to_string(10 + (name[0] - 'a'));
    o.ports = json::parse(R"([{"name":"postgresql","port":5432}])");
    o.ttl = ttl;
    o.loop_wait = 1;
    o.retry_timeout = retry_timeout;
    ApiServer s;
    s.scheme = "http";
    s.host = "127.0.0.1";
    s.port = emu_.port();
    s.token = std::move(token);
    auto client = std::make_unique<ApiClient>(s, std::chrono::seconds(retry_timeout));
    dcs_.push_back(std::make_unique<KubernetesDcs>(std::move(o), std::move(client)));
    return dcs_.back().get();
  }

  json lock() { return emu_.get(kNs, kind(), leader_object()); }
  std::string annotation(const json& o, const std::string& key) {
    return o.value(json::json_pointer("/metadata/annotations/" + key), std::string());
  }

  // Waits until `d`'s view names `leader` (empty: no leader).
  bool sees_leader(KubernetesDcs* d, const std::string& leader, std::chrono::milliseconds timeout = 5s) {
    return wait_until(
        [&] {
          auto c = d->load_cluster();
          return c.ok() && (leader.empty() ? !c->leader : (c->leader && c->leader->name == leader));
        },
        timeout);
  }

  K8sEmulator emu_;
  std::vector<std::unique_ptr<KubernetesDcs>> dcs_;
};

TEST_P(K8sDcs, OnlyOneOfTwoRacingCandidatesTakesTheLock) {
  auto* a = make("a");
  auto* b = make("b");
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(b->load_cluster().ok());
  auto ra = a->attempt_to_acquire_leader();
  auto rb = b->attempt_to_acquire_leader();
  EXPECT_NE(ra.ok(), rb.ok()) << ra.message() << " / " << rb.message();
  auto* loser = ra.ok() ? b : a;
  EXPECT_EQ((ra.ok() ? rb : ra).code(), Code::kConflict);
  std::string winner = ra.ok() ? "a" : "b";
  EXPECT_EQ(annotation(lock(), "leader"), winner);
  EXPECT_EQ(annotation(lock(), "transitions"), "0");
  EXPECT_TRUE(sees_leader(loser, winner));
  // The layout's labels are on the object we created.
  EXPECT_EQ(lock().value("/metadata/labels/cluster-name"_json_pointer, std::string()), "db");
  EXPECT_EQ(lock().value("/metadata/labels/app"_json_pointer, std::string()), "db");
}

TEST_P(K8sDcs, ADecisionOnAStaleViewCannotOverwriteAFreshLock) {
  // patroni/patroni#3718: a candidate whose cache refreshed after it decided must not take
  // the lock with the fresher resourceVersion.
  auto* a = make("a");
  auto* b = make("b");
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(b->load_cluster().ok());
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  // a's watch has certainly seen b's lock by now, but a decided before it.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(a->attempt_to_acquire_leader().code(), Code::kConflict);
  EXPECT_EQ(annotation(lock(), "leader"), "b");
}

TEST_P(K8sDcs, RenewalKeepsAcquireTimeAndWritesOptimeAndSubsets) {
  auto* a = make("a");
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  std::string acquired = annotation(lock(), "acquireTime");
  std::string renewed = annotation(lock(), "renewTime");
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(a->update_leader(int64_t{123456}).ok());
  json l = lock();
  EXPECT_EQ(annotation(l, "acquireTime"), acquired);
  EXPECT_NE(annotation(l, "renewTime"), renewed);
  EXPECT_EQ(annotation(l, "optime"), "123456");
  EXPECT_EQ(annotation(l, "ttl"), "10");
  if (endpoints()) {
    ASSERT_EQ(l["subsets"].size(), 1u) << l.dump();
    EXPECT_EQ(l["subsets"][0]["addresses"][0]["ip"], "192.0.2.10");
    EXPECT_EQ(l["subsets"][0]["addresses"][0]["targetRef"]["name"], "a");
    EXPECT_EQ(l["subsets"][0]["ports"][0]["name"], "postgresql");
  } else {
    EXPECT_FALSE(l.contains("subsets"));
  }
  // Releasing: the leader annotation goes, the position stays, nothing routes to us.
  ASSERT_TRUE(a->delete_leader(int64_t{200000}).ok());
  l = lock();
  EXPECT_EQ(annotation(l, "leader"), "");
  EXPECT_EQ(annotation(l, "optime"), "200000");
  if (endpoints()) {
    EXPECT_TRUE(l.value("subsets", json::array()).empty()) << l.dump();
  }
  auto* b = make("b");
  EXPECT_TRUE(sees_leader(b, ""));
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  EXPECT_EQ(annotation(lock(), "transitions"), "1");
}

TEST_P(K8sDcs, AnotherWriterOnTheLockObjectIsToleratedButATakeoverIsNot) {
  auto* a = make("a");
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  // Something else (the endpoints controller, kubectl) touches the object: the renewal that
  // meets the 409 re-reads and succeeds, because the lock still names us.
  for (int i = 0; i < 3; ++i) {
    json o = lock();
    o["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] = "x" + std::to_string(i);
    emu_.put_raw(kNs, kind(), o);
    EXPECT_TRUE(a->update_leader(std::nullopt).ok());
  }
  // Somebody takes the lock: our renewal fails, so the HA loop demotes; never two leaders.
  json o = lock();
  o["metadata"]["annotations"]["leader"] = "b";
  emu_.put_raw(kNs, kind(), o);
  auto st = a->update_leader(std::nullopt);
  EXPECT_EQ(st.code(), Code::kConflict) << st.message();
  EXPECT_EQ(annotation(lock(), "leader"), "b");
  EXPECT_TRUE(sees_leader(a, "b"));
}

TEST_P(K8sDcs, ExpiryIsJudgedByOurClockAndWakesTheWatcher) {
  auto* a = make("a", 3);
  auto* b = make("b", 3);
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  auto acquired = std::chrono::steady_clock::now();
  ASSERT_TRUE(sees_leader(b, "a"));
  while (b->watch(200ms)) {  // the wake-up for the new leader
  }
  // a stops renewing. b wakes on its own when the ttl has passed since it saw the change,
  // without waiting for its full watch timeout.
  bool woke = b->watch(10s);
  auto waited = std::chrono::steady_clock::now() - acquired;
  EXPECT_TRUE(woke);
  EXPECT_GE(waited, 2800ms);  // b saw the lock a moment before a's reply arrived
  EXPECT_LT(waited, 4500ms);
  auto c = b->load_cluster();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->leader) << "lock should be expired by b's clock";
  // The annotation itself still names a: expiry is a judgement, not a write.
  EXPECT_EQ(annotation(lock(), "leader"), "a");
  ASSERT_TRUE(b->attempt_to_acquire_leader().ok());
  EXPECT_EQ(annotation(lock(), "transitions"), "1");
}

TEST_P(K8sDcs, LeaderChangeWakesOthersButRenewalsDoNot) {
  auto* a = make("a");
  auto* b = make("b");
  ASSERT_TRUE(b->load_cluster().ok());
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  EXPECT_TRUE(b->watch(5s));
  ASSERT_TRUE(sees_leader(b, "a"));
  while (b->watch(300ms)) {
  }
  ASSERT_TRUE(a->update_leader(int64_t{5}).ok());
  EXPECT_FALSE(b->watch(700ms)) << "a renewal must not wake the replicas";
}

TEST_P(K8sDcs, InitializeRaceAndConfigCompareAndSet) {
  auto* a = make("a");
  auto* b = make("b");
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(b->load_cluster().ok());
  EXPECT_TRUE(a->initialize(true, "").ok());
  EXPECT_EQ(b->initialize(true, "").code(), Code::kConflict);
  ASSERT_TRUE(a->initialize(false, "7312345678901234567").ok());
  ASSERT_TRUE(a->set_config_value(R"({"ttl":30})", std::nullopt).ok());
  Result<Cluster> c = Status::Failed("");
  ASSERT_TRUE(wait_until([&] { c = b->load_cluster(); return c.ok() && c->config; }, 5s));
  EXPECT_EQ(*c->initialize, "7312345678901234567");
  int64_t index = c->config_index;
  EXPECT_GT(index, 0);
  ASSERT_TRUE(b->set_config_value(R"({"ttl":40})", index).ok());
  auto stale = a->set_config_value(R"({"ttl":50})", index);
  EXPECT_EQ(stale.code(), Code::kConflict) << stale.message();
  json cfg = emu_.get(kNs, kind(), "db-config");
  EXPECT_EQ(annotation(cfg, "config"), R"({"ttl":40})");
  ASSERT_TRUE(a->set_history_value(R"([[1,100,"no recovery target specified","2024-01-01T00:00:00+00:00","a"]])").ok());
  ASSERT_TRUE(wait_until([&] { c = b->load_cluster(); return c.ok() && c->history; }, 5s));
  EXPECT_EQ((*c->history)[0][4], "a");
  ASSERT_TRUE(a->cancel_initialization().ok());
  EXPECT_FALSE(emu_.get(kNs, kind(), "db-config")["metadata"]["annotations"].contains("initialize"));
  EXPECT_EQ(a->initialize_location(), std::string(endpoints() ? "Endpoints " : "ConfigMap ") + kNs + "/db-config");
}

TEST_P(K8sDcs, FailoverAndSyncObjectsUseSeparateAnnotations) {
  auto* a = make("a");
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->set_failover_value(R"({"leader":"a","member":"b"})", std::nullopt).ok());
  json f = emu_.get(kNs, kind(), "db-failover");
  EXPECT_EQ(annotation(f, "leader"), "a");
  EXPECT_EQ(annotation(f, "member"), "b");
  Result<Cluster> c = Status::Failed("");
  ASSERT_TRUE(wait_until([&] { c = a->load_cluster(); return c.ok() && c->failover; }, 5s));
  EXPECT_EQ((*c->failover)["member"], "b");
  ASSERT_TRUE(a->set_failover_value("{}", c->failover_index).ok());
  f = emu_.get(kNs, kind(), "db-failover");
  EXPECT_FALSE(f["metadata"]["annotations"].contains("member")) << f.dump();
  EXPECT_EQ(a->set_failover_value("[not json", std::nullopt).code(), Code::kInvalid);
  ASSERT_TRUE(a->set_sync_state_value(R"({"leader":"a","sync_standby":"b"})", std::nullopt).ok());
  EXPECT_EQ(annotation(emu_.get(kNs, kind(), "db-sync"), "sync_standby"), "b");
}

TEST_P(K8sDcs, PodStatusAndRoleLabelArePatchedOnlyWhenTheyChange) {
  auto* a = make("a", 30);
  ASSERT_TRUE(a->load_cluster().ok());
  json data = {{"conn_url", "postgres://127.0.0.1:5432/postgres"}, {"api_url", "http://127.0.0.1:8008/patroni"},
               {"state", "running"}, {"role", "replica"}, {"version", "3.0.2"}, {"xlog_location", 100}, {"timeline", 1}};
  auto writes = [&] { return a->api_counters().writes; };
  ASSERT_TRUE(a->touch_member(data).ok());
  json pod = emu_.get(kNs, "pods", "a");
  EXPECT_EQ(pod.value("/metadata/labels/role"_json_pointer, std::string()), "replica");
  EXPECT_EQ(json::parse(annotation(pod, "status")), data);
  auto after_first = writes();
  ASSERT_TRUE(a->touch_member(data).ok());
  data["xlog_location"] = 200;  // only the position moved: not worth a write within ttl
  ASSERT_TRUE(a->touch_member(data).ok());
  EXPECT_EQ(writes(), after_first);
  data["timeline"] = 2;  // a real change
  ASSERT_TRUE(a->touch_member(data).ok());
  EXPECT_EQ(writes(), after_first + 1);
  EXPECT_EQ(json::parse(annotation(emu_.get(kNs, "pods", "a"), "status"))["xlog_location"], 200);
  // Taking the lock makes the label master; stopping PostgreSQL without the lock removes it.
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  data["role"] = "master";
  ASSERT_TRUE(a->touch_member(data).ok());
  EXPECT_EQ(emu_.get(kNs, "pods", "a").value("/metadata/labels/role"_json_pointer, std::string()), "master");
  ASSERT_TRUE(a->delete_leader(std::nullopt).ok());
  data["state"] = "stopped";
  ASSERT_TRUE(a->touch_member(data).ok());
  EXPECT_FALSE(emu_.get(kNs, "pods", "a")["metadata"]["labels"].contains("role"));
  // Other pods' members are read by the label selector; a pod without labels is no member.
  emu_.put_raw(kNs, "pods", json{{"metadata", {{"name", "stranger"}, {"namespace", kNs}}}});
  Result<Cluster> c = Status::Failed("");
  ASSERT_TRUE(wait_until([&] { c = a->load_cluster(); return c.ok() && c->members.size() == 3; }, 5s));
  EXPECT_EQ(c->member("a")->state(), "stopped");
  EXPECT_FALSE(c->member("stranger"));
}

TEST_P(K8sDcs, MalformedAnnotationsFromOthersAreIgnored) {
  auto* a = make("a");
  json leader = {{"metadata",
                  {{"name", leader_object()},
                   {"namespace", kNs},
                   {"labels", {{"app", "db"}, {"cluster-name", "db"}}},
                   {"annotations", {{"leader", "b"}, {"optime", "garbage"}, {"ttl", "x"}}}}}};
  emu_.put_raw(kNs, kind(), leader);
  json pod = emu_.get(kNs, "pods", "b");
  pod["metadata"]["annotations"] = {{"status", "{not json"}};
  emu_.put_raw(kNs, "pods", pod);
  json cfg = {{"metadata",
               {{"name", "db-config"},
                {"namespace", kNs},
                {"labels", {{"app", "db"}, {"cluster-name", "db"}}},
                {"annotations", {{"config", "[1,2"}, {"history", "\"nope\""}, {"initialize", "42"}}}}}};
  emu_.put_raw(kNs, kind(), cfg);
  Result<Cluster> c = Status::Failed("");
  ASSERT_TRUE(wait_until([&] { c = a->load_cluster(); return c.ok() && c->initialize; }, 5s));
  ASSERT_TRUE(c->leader);
  EXPECT_EQ(c->leader->name, "b");
  EXPECT_EQ(c->last_lsn, 0);
  EXPECT_FALSE(c->config);
  EXPECT_FALSE(c->history);
  ASSERT_TRUE(c->member("b"));
  EXPECT_TRUE(c->member("b")->data.empty());
}

TEST_P(K8sDcs, RejectedTokenIsAClearErrorAndTakesNoLock) {
  auto* a = make("a", 10, 2, "wrong-token");
  auto c = a->load_cluster();
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  auto st = a->attempt_to_acquire_leader();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("401"), std::string::npos) << st.message();
  EXPECT_TRUE(lock().is_null());
  // A token allowed to read but not to write the lock: 403, named as such.
  emu_.add_token("read-only", {{"list", "pods"}, {"watch", "pods"}, {"list", kind()}, {"watch", kind()}});
  auto* r = make("b", 10, 2, "read-only");
  ASSERT_TRUE(r->load_cluster().ok());
  st = r->attempt_to_acquire_leader();
  EXPECT_NE(st.message().find("permission denied"), std::string::npos) << st.message();
  EXPECT_TRUE(lock().is_null());
}

TEST_P(K8sDcs, AnUnreachableApiServerFailsCallsInBoundedTime) {
  auto* a = make("a", 10, 2);
  ASSERT_TRUE(a->load_cluster().ok());
  ASSERT_TRUE(a->attempt_to_acquire_leader().ok());
  emu_.set_refuse_connections(true);
  auto t0 = std::chrono::steady_clock::now();
  auto st = a->update_leader(std::nullopt);
  EXPECT_FALSE(st.ok());
  auto c = a->load_cluster();
  EXPECT_FALSE(c.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 7s);
  emu_.set_refuse_connections(false);
  EXPECT_TRUE(wait_until([&] { return a->load_cluster().ok(); }, 10s));
  EXPECT_TRUE(a->update_leader(std::nullopt).ok());
}

TEST_P(K8sDcs, SteadyStateReadsComeFromWatchesNotPolling) {
  auto* a = make("a");
  ASSERT_TRUE(a->load_cluster().ok());
  // The watches start right after their lists: let them be sent before counting.
  std::this_thread::sleep_for(500ms);
  auto before = a->api_counters();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(a->load_cluster().ok());
  auto after = a->api_counters();
  EXPECT_EQ(after.reads, before.reads);
  EXPECT_EQ(after.writes, before.writes);
}

INSTANTIATE_TEST_SUITE_P(Mode, K8sDcs, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "endpoints" : "configmaps"; });

}  // namespace
}  // namespace pgwarden::dcs::k8s
