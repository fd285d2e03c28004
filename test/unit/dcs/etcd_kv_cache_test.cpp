// KvCache: the watch-fed copy of a cluster prefix, and which changes wake the HA loop.
#include <gtest/gtest.h>

#include "pgwarden/dcs/etcd/codec.hpp"
#include "pgwarden/dcs/etcd/kv_cache.hpp"

namespace pgwarden::dcs::etcd {
namespace {

using nlohmann::json;

const std::string P = "/service/batman/";

KeyValue kv(const std::string& rel, const std::string& value, int64_t mod, int64_t create = 0, int64_t lease = 0) {
  return KeyValue{P + rel, value, create ? create : mod, mod, lease};
}

// One watch event as etcd's gateway sends it (base64 bytes, int64 as strings).
json put_event(const std::string& rel, const std::string& value, int64_t mod, int64_t create = 0, int64_t lease = 0) {
  json kvj = {{"key", base64_encode(P + rel)},
              {"value", base64_encode(value)},
              {"create_revision", std::to_string(create ? create : mod)},
              {"mod_revision", std::to_string(mod)}};
  if (lease) kvj["lease"] = std::to_string(lease);
  return {{"kv", kvj}};  // PUT is the default type: the gateway omits it
}

json delete_event(const std::string& rel, int64_t mod) {
  return {{"type", "DELETE"}, {"kv", {{"key", base64_encode(P + rel)}, {"mod_revision", std::to_string(mod)}}}};
}

KvCache loaded(const std::string& self, std::vector<KeyValue> kvs, int64_t revision) {
  KvCache c(P, self);
  c.reset(kvs, revision);
  return c;
}

TEST(EtcdKvCache, ResetThenEventsKeepTheClusterCurrent) {
  KvCache c = loaded("node2",
                     {kv("leader", "node1", 5, 5, 77), kv("members/node1", R"({"role":"master"})", 4, 4, 77),
                      kv("initialize", "123", 2)},
                     6);
  EXPECT_EQ(c.revision(), 6);
  ASSERT_TRUE(c.cluster()->leader);
  EXPECT_EQ(c.cluster()->leader->name, "node1");
  EXPECT_EQ(c.cluster()->members.size(), 1u);

  const auto view = c.cluster();
  EXPECT_EQ(c.cluster(), view) << "not built again without a change";
  c.apply(json::array({put_event("members/node2", R"({"role":"replica"})", 7, 7, 88)}));
  EXPECT_EQ(c.revision(), 7);
  EXPECT_EQ(view->members.size(), 1u) << "a view taken before stays as it was";
  ASSERT_EQ(c.cluster()->members.size(), 2u);
  EXPECT_EQ(c.cluster()->member("node2")->session, "88");
  EXPECT_EQ(c.cluster()->member("node2")->index, 7);

  c.apply(json::array({delete_event("leader", 8)}));
  EXPECT_EQ(c.revision(), 8);
  EXPECT_FALSE(c.cluster()->leader);
  EXPECT_EQ(c.value("leader"), std::nullopt);
  EXPECT_EQ(c.value("initialize"), std::optional<std::string>("123"));
}

TEST(EtcdKvCache, EventsTheCacheAlreadyHasAreSkipped) {
  KvCache c = loaded("node2", {kv("leader", "node1", 5)}, 9);
  // A stream that starts at or before the range read's revision replays what the read saw:
  // those events change nothing.
  EXPECT_FALSE(c.apply(json::array({put_event("leader", "node3", 9)})));
  EXPECT_EQ(c.value("leader"), std::optional<std::string>("node1"));
  EXPECT_FALSE(c.apply(json::array({delete_event("leader", 7)})));
  EXPECT_EQ(c.value("leader"), std::optional<std::string>("node1"));
  EXPECT_EQ(c.revision(), 9);
}

TEST(EtcdKvCache, AllEventsOfOneTxnAreApplied) {
  KvCache c = loaded("node1", {}, 3);
  // One txn: two puts with the same revision, in one watch response.
  c.apply(json::array({put_event("leader", "node1", 4), put_event("status", R"({"optime":1})", 4)}));
  EXPECT_EQ(c.value("leader"), std::optional<std::string>("node1"));
  EXPECT_EQ(c.value("status"), std::optional<std::string>(R"({"optime":1})"));
  EXPECT_EQ(c.revision(), 4);
}

TEST(EtcdKvCache, UndecodableAndForeignEventsChangeNothing) {
  KvCache c = loaded("node1", {kv("leader", "node1", 2)}, 2);
  const Cluster before = *c.cluster();
  EXPECT_FALSE(c.apply(json::array({json{{"kv", {{"key", "%%%not base64"}, {"mod_revision", "5"}}}}})));
  EXPECT_FALSE(c.apply(json::array({json{{"type", "PUT"}}})));
  EXPECT_FALSE(c.apply(json{{"not", "an array"}}));
  json other = put_event("leader", "x", 6);
  other["kv"]["key"] = base64_encode("/service/other/leader");
  EXPECT_FALSE(c.apply(json::array({other})));
  EXPECT_EQ(c.cluster()->leader->name, before.leader->name);
  EXPECT_EQ(c.cluster()->members.size(), before.members.size());
  EXPECT_EQ(c.value("leader"), std::optional<std::string>("node1"));
}

// Which changes wake the HA loop (Patroni's KVCache rules plus a new member waking the leader).
TEST(EtcdKvCache, WakeRules) {
  struct Case {
    const char* what;
    std::string self;
    std::vector<KeyValue> before;
    json event;
    bool wakes;
  };
  const std::vector<KeyValue> led_by_1 = {kv("leader", "node1", 2), kv("config", R"({"ttl":30})", 2),
                                          kv("status", R"({"optime":1})", 2)};
  const std::vector<Case> cases = {
      {"leader deleted", "node2", led_by_1, delete_event("leader", 3), true},
      {"leader taken over", "node2", led_by_1, put_event("leader", "node3", 3), true},
      {"leader created", "node2", {}, put_event("leader", "node1", 3), true},
      {"leader rebound, same value", "node1", led_by_1, put_event("leader", "node1", 3), false},
      {"status moves, someone else leads", "node2", led_by_1, put_event("status", R"({"optime":2})", 3), true},
      {"status moves, I lead", "node1", led_by_1, put_event("status", R"({"optime":2})", 3), false},
      {"status unchanged", "node2", led_by_1, put_event("status", R"({"optime":1})", 3), false},
      {"status deleted", "node2", led_by_1, delete_event("status", 3), false},
      {"config modified", "node2", led_by_1, put_event("config", R"({"ttl":20})", 3), true},
      {"config created", "node2", {}, put_event("config", R"({"ttl":20})", 3), false},
      {"config deleted", "node2", led_by_1, delete_event("config", 3), false},
      {"new member, I lead", "node1", led_by_1, put_event("members/node3", "{}", 3, 3), true},
      {"member updated, I lead", "node1", led_by_1, put_event("members/node3", "{}", 3, 2), false},
      {"new member, someone else leads", "node2", led_by_1, put_event("members/node3", "{}", 3, 3), false},
      {"my own member key, I lead", "node1", led_by_1, put_event("members/node1", "{}", 3, 3), false},
      {"failover key", "node2", led_by_1, put_event("failover", R"({"member":"node2"})", 3), false},
      {"history", "node2", led_by_1, put_event("history", "[]", 3), false},
  };
  for (const auto& c : cases) {
    KvCache cache = loaded(c.self, c.before, 2);
    EXPECT_EQ(cache.apply(json::array({c.event})), c.wakes) << c.what;
    EXPECT_EQ(cache.revision(), 3) << c.what;
  }
}

}  // namespace
}  // namespace pgwarden::dcs::etcd
