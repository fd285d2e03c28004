#include "support/k8s_emulator.hpp"

#include <gtest/gtest.h>

#include <future>
#include <thread>

using nlohmann::json;
using pgwarden::test::K8sEmulator;
using pgwarden::test::k8s_request;
using pgwarden::test::parse_watch_events;

namespace {

const std::string kEp = "/api/v1/namespaces/ns1/endpoints";
const std::string kPods = "/api/v1/namespaces/ns1/pods";
const std::map<std::string, std::string> kJson = {{"Content-Type", "application/json"}};
const std::map<std::string, std::string> kMerge = {{"Content-Type", "application/merge-patch+json"}};
const std::map<std::string, std::string> kStrategic = {{"Content-Type", "application/strategic-merge-patch+json"}};

json endpoints(const std::string& name, const json& labels = json::object()) {
  return json{{"kind", "Endpoints"},
              {"apiVersion", "v1"},
              {"metadata", {{"name", name}, {"labels", labels}, {"annotations", {{"leader", "a"}}}}},
              {"subsets", json::array()}};
}

class K8sEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { emu.start(); }
  void TearDown() override { emu.stop(); }
  pgwarden::test::HttpReply req(const std::string& m, const std::string& t, const json& body = json(),
                                const std::map<std::string, std::string>& h = kJson) {
    return k8s_request(emu.port(), m, t, body.is_null() ? "" : body.dump(), h);
  }
  K8sEmulator emu;
};

TEST_F(K8sEmulatorTest, CreateGetListWithSelector) {
  ASSERT_GT(emu.port(), 0);
  auto r = req("POST", kEp, endpoints("a", {{"app", "db"}, {"cluster", "x"}}));
  ASSERT_EQ(r.status, 201) << r.body;
  auto a = json::parse(r.body);
  EXPECT_FALSE(a["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE(a["metadata"]["creationTimestamp"].get<std::string>().empty());
  EXPECT_TRUE(a["metadata"]["resourceVersion"].is_string());
  EXPECT_EQ(a["metadata"]["namespace"], "ns1");
  ASSERT_EQ(req("POST", kEp, endpoints("b", {{"app", "db"}, {"cluster", "y"}})).status, 201);
  ASSERT_EQ(req("POST", kEp, endpoints("c", {{"app", "web"}})).status, 201);

  r = req("GET", kEp + "/a");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["metadata"]["uid"], a["metadata"]["uid"]);
  EXPECT_EQ(req("GET", kEp + "/zzz").status, 404);
  EXPECT_EQ(json::parse(req("GET", kEp + "/zzz").body)["reason"], "NotFound");

  auto names = [&](const std::string& sel) {
    auto rr = req("GET", kEp + "?labelSelector=" + sel);
    EXPECT_EQ(rr.status, 200);
    auto j = json::parse(rr.body);
    EXPECT_EQ(j["kind"], "EndpointsList");
    EXPECT_TRUE(j["metadata"]["resourceVersion"].is_string());
    std::vector<std::string> out;
    for (auto& i : j["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  };
  EXPECT_EQ(names(""), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(names("app%3Ddb"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(names("app%3Ddb%2Ccluster%21%3Dx"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(names("cluster"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(names("app=web"), (std::vector<std::string>{"c"}));
  // Other namespaces are separate.
  r = req("GET", "/api/v1/namespaces/other/endpoints");
  EXPECT_EQ(json::parse(r.body)["items"].size(), 0u);
  EXPECT_EQ(req("GET", "/api/v1/namespaces/ns1/leases").status, 404);
}

TEST_F(K8sEmulatorTest, CreateExistingIsAlreadyExists) {
  ASSERT_EQ(req("POST", kEp, endpoints("a")).status, 201);
  auto r = req("POST", kEp, endpoints("a"));
  ASSERT_EQ(r.status, 409);
  auto s = json::parse(r.body);
  EXPECT_EQ(s["kind"], "Status");
  EXPECT_EQ(s["status"], "Failure");
  EXPECT_EQ(s["reason"], "AlreadyExists");
  EXPECT_EQ(s["code"], 409);
}

TEST_F(K8sEmulatorTest, PutWithStaleResourceVersionConflicts) {
  auto a = json::parse(req("POST", kEp, endpoints("a")).body);
  std::string rv1 = a["metadata"]["resourceVersion"];
  a["metadata"]["annotations"]["leader"] = "b";
  auto r = req("PUT", kEp + "/a", a);
  ASSERT_EQ(r.status, 200) << r.body;
  auto b = json::parse(r.body);
  std::string rv2 = b["metadata"]["resourceVersion"];
  EXPECT_GT(std::stoull(rv2), std::stoull(rv1));
  EXPECT_EQ(b["metadata"]["uid"], a["metadata"]["uid"]);
  // Stale RV.
  a["metadata"]["annotations"]["leader"] = "c";
  r = req("PUT", kEp + "/a", a);
  ASSERT_EQ(r.status, 409);
  EXPECT_EQ(json::parse(r.body)["reason"], "Conflict");
  EXPECT_EQ(emu.get("ns1", "endpoints", "a")["metadata"]["annotations"]["leader"], "b");
  // Fresh RV.
  a["metadata"]["resourceVersion"] = rv2;
  r = req("PUT", kEp + "/a", a);
  ASSERT_EQ(r.status, 200);
  EXPECT_GT(std::stoull(json::parse(r.body)["metadata"]["resourceVersion"].get<std::string>()), std::stoull(rv2));
  // PUT of a missing configmap is 404 (Endpoints may be created by PUT).
  json cm = {{"metadata", {{"name", "nope"}}}, {"data", {{"k", "v"}}}};
  EXPECT_EQ(req("PUT", "/api/v1/namespaces/ns1/configmaps/nope", cm).status, 404);
}

TEST_F(K8sEmulatorTest, MergePatchAddsAndRemovesAnnotations) {
  auto a = json::parse(req("POST", kEp, endpoints("a")).body);
  json patch = {{"metadata", {{"annotations", {{"leader", nullptr}, {"ttl", "30"}}}}},
                {"subsets", json::array({{{"addresses", json::array({{{"ip", "10.0.0.5"}}})}}})}};
  auto r = req("PATCH", kEp + "/a", patch, kMerge);
  ASSERT_EQ(r.status, 200) << r.body;
  auto b = json::parse(r.body);
  EXPECT_FALSE(b["metadata"]["annotations"].contains("leader"));
  EXPECT_EQ(b["metadata"]["annotations"]["ttl"], "30");
  EXPECT_EQ(b["subsets"][0]["addresses"][0]["ip"], "10.0.0.5");
  // CAS: stale RV in the patch → 409, matching → 200.
  json cas = {{"metadata", {{"resourceVersion", a["metadata"]["resourceVersion"]}, {"annotations", {{"x", "1"}}}}}};
  r = req("PATCH", kEp + "/a", cas, kMerge);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(json::parse(r.body)["reason"], "Conflict");
  cas["metadata"]["resourceVersion"] = b["metadata"]["resourceVersion"];
  r = req("PATCH", kEp + "/a", cas, kMerge);
  EXPECT_EQ(r.status, 200);
  // Unknown patch type.
  EXPECT_EQ(req("PATCH", kEp + "/a", cas, kJson).status, 415);
}

TEST_F(K8sEmulatorTest, StrategicMergeOnMetadataAndSubsets) {
  json pod = {{"metadata", {{"name", "p0"}, {"labels", {{"app", "db"}, {"role", "replica"}}}}},
              {"spec", {{"containers", json::array({{{"name", "pg"}}})}}}};
  ASSERT_EQ(req("POST", kPods, pod).status, 201);
  json patch = {{"metadata", {{"labels", {{"role", "master"}}}, {"annotations", {{"status", "{\"x\":1}"}}}}}};
  auto r = req("PATCH", kPods + "/p0", patch, kStrategic);
  ASSERT_EQ(r.status, 200) << r.body;
  auto p = json::parse(r.body);
  EXPECT_EQ(p["metadata"]["labels"]["role"], "master");
  EXPECT_EQ(p["metadata"]["labels"]["app"], "db");
  EXPECT_EQ(p["metadata"]["annotations"]["status"], "{\"x\":1}");
  EXPECT_EQ(p["spec"]["containers"][0]["name"], "pg");
  patch = {{"metadata", {{"labels", {{"role", nullptr}}}}}};
  r = req("PATCH", kPods + "/p0", patch, kStrategic);
  EXPECT_FALSE(json::parse(r.body)["metadata"]["labels"].contains("role"));

  json ep = endpoints("e");
  ep["subsets"] = json::array({{{"addresses", json::array({{{"ip", "10.0.0.1"}}, {{"ip", "10.0.0.2"}}})}}});
  ASSERT_EQ(req("POST", kEp, ep).status, 201);
  r = req("PATCH", kEp + "/e", json{{"subsets", json::array()}}, kStrategic);
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(json::parse(r.body)["subsets"].empty());
  // A no-op patch keeps the resourceVersion.
  std::string rv = json::parse(r.body)["metadata"]["resourceVersion"];
  r = req("PATCH", kEp + "/e", json{{"subsets", json::array()}}, kStrategic);
  EXPECT_EQ(json::parse(r.body)["metadata"]["resourceVersion"], rv);
}

TEST_F(K8sEmulatorTest, ValidationIsInvalid) {
  json ep = endpoints("lo");
  ep["subsets"] = json::array({{{"addresses", json::array({{{"ip", "127.0.0.5"}}})}}});
  auto r = req("POST", kEp, ep);
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(json::parse(r.body)["reason"], "Invalid");
  ep["subsets"][0]["addresses"][0]["ip"] = "::1";
  EXPECT_EQ(req("POST", kEp, ep).status, 422);

  json bad = endpoints("b");
  bad["metadata"]["annotations"]["n"] = 5;
  EXPECT_EQ(req("POST", kEp, bad).status, 422);
  ASSERT_EQ(req("POST", kEp, endpoints("ok")).status, 201);
  EXPECT_EQ(req("PATCH", kEp + "/ok", json{{"metadata", {{"annotations", {{"n", true}}}}}}, kMerge).status, 422);
  std::string big(300 * 1024, 'x');
  EXPECT_EQ(req("PATCH", kEp + "/ok", json{{"metadata", {{"annotations", {{"h", big}}}}}}, kMerge).status, 422);
  EXPECT_EQ(req("PATCH", kEp + "/ok", json{{"metadata", {{"labels", {{"l", "-bad"}}}}}}, kMerge).status, 422);
  EXPECT_EQ(req("PATCH", kEp + "/ok", json{{"metadata", {{"labels", {{"l", std::string(64, 'a')}}}}}}, kMerge).status,
            422);
  EXPECT_EQ(req("PATCH", kEp + "/ok", json{{"metadata", {{"labels", {{"l", "a.b-c_d"}}}}}}, kMerge).status, 200);
}

TEST_F(K8sEmulatorTest, DeleteWithPreconditions) {
  auto a = json::parse(req("POST", kEp, endpoints("a")).body);
  req("PATCH", kEp + "/a", json{{"metadata", {{"annotations", {{"x", "1"}}}}}}, kMerge);
  auto r = req("DELETE", kEp + "/a", json{{"preconditions", {{"resourceVersion", a["metadata"]["resourceVersion"]}}}});
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(req("DELETE", kEp + "/a").status, 200);
  EXPECT_EQ(req("DELETE", kEp + "/a").status, 404);
  EXPECT_TRUE(emu.get("ns1", "endpoints", "a").is_null());
}

TEST_F(K8sEmulatorTest, AuthUnauthorizedAndForbidden) {
  emu.add_token("admin");
  emu.add_token("limited", {{"get", "endpoints"}, {"list", "endpoints"}});
  EXPECT_EQ(req("GET", kEp).status, 401);
  auto r = k8s_request(emu.port(), "GET", kEp, "", {{"Authorization", "Bearer wrong"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body)["reason"], "Unauthorized");
  EXPECT_EQ(k8s_request(emu.port(), "GET", kEp, "", {{"Authorization", "Bearer limited"}}).status, 200);
  r = k8s_request(emu.port(), "POST", kEp, endpoints("a").dump(), {{"Authorization", "Bearer limited"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(json::parse(r.body)["reason"], "Forbidden");
  EXPECT_EQ(k8s_request(emu.port(), "GET", kPods, "", {{"Authorization", "Bearer limited"}}).status, 403);
  EXPECT_EQ(k8s_request(emu.port(), "POST", kEp, endpoints("a").dump(), {{"Authorization", "Bearer admin"}}).status,
            201);
  emu.clear_tokens();
  EXPECT_EQ(req("GET", kEp).status, 200);
}

TEST_F(K8sEmulatorTest, RequestsCountedByToken) {
  emu.add_token("a");
  emu.add_token("b");
  auto as = [&](const std::string& tok, const std::string& m, const std::string& t, const json& body = json(),
                const std::map<std::string, std::string>& h = kJson) {
    auto hh = h;
    hh["Authorization"] = "Bearer " + tok;
    return k8s_request(emu.port(), m, t, body.is_null() ? "" : body.dump(), hh).status;
  };
  EXPECT_EQ(as("a", "POST", kEp, endpoints("x")), 201);
  EXPECT_EQ(as("a", "GET", kEp), 200);
  EXPECT_EQ(as("a", "GET", kEp + "/x"), 200);
  EXPECT_EQ(as("a", "PATCH", kEp + "/x", json{{"metadata", {{"annotations", {{"leader", "b"}}}}}}, kMerge), 200);
  EXPECT_EQ(as("b", "GET", kEp + "?watch=1&timeoutSeconds=1"), 200);
  EXPECT_EQ(as("b", "DELETE", kEp + "/x"), 200);
  EXPECT_EQ(req("GET", kEp).status, 401);  // no token: counted under ""
  auto a = emu.requests_by_token("a");
  EXPECT_EQ(a.reads, 2u);
  EXPECT_EQ(a.writes, 2u);
  auto b = emu.requests_by_token("b");
  EXPECT_EQ(b.reads, 1u);
  EXPECT_EQ(b.writes, 1u);
  EXPECT_EQ(emu.requests_by_token("").reads, 1u);
  EXPECT_EQ(emu.requests_by_token("unknown").reads + emu.requests_by_token("unknown").writes, 0u);
}

TEST_F(K8sEmulatorTest, WatchReceivesAddedThenModified) {
  auto list = json::parse(req("GET", kEp).body);
  std::string rv = list["metadata"]["resourceVersion"];
  auto fut = std::async(std::launch::async, [&] {
    return k8s_request(emu.port(), "GET", kEp + "?watch=1&labelSelector=app%3Ddb&timeoutSeconds=2&resourceVersion=" + rv);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(req("POST", kEp, endpoints("a", {{"app", "db"}})).status, 201);
  ASSERT_EQ(req("POST", kEp, endpoints("other", {{"app", "web"}})).status, 201);
  ASSERT_EQ(req("PATCH", kEp + "/a", json{{"metadata", {{"annotations", {{"leader", "z"}}}}}}, kMerge).status, 200);
  ASSERT_EQ(req("PATCH", kEp + "/a", json{{"metadata", {{"labels", {{"app", "gone"}}}}}}, kMerge).status, 200);
  auto r = fut.get();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
  auto evs = parse_watch_events(r.body);
  ASSERT_EQ(evs.size(), 3u) << r.body;
  EXPECT_EQ(evs[0]["type"], "ADDED");
  EXPECT_EQ(evs[0]["object"]["metadata"]["name"], "a");
  EXPECT_EQ(evs[1]["type"], "MODIFIED");
  EXPECT_EQ(evs[1]["object"]["metadata"]["annotations"]["leader"], "z");
  EXPECT_EQ(evs[2]["type"], "DELETED");  // stopped matching the selector

  // Resume from an RV in the middle, with a field selector.
  r = k8s_request(emu.port(), "GET",
                  kEp + "?watch=true&fieldSelector=metadata.name%3Dother&timeoutSeconds=1&resourceVersion=" + rv);
  evs = parse_watch_events(r.body);
  ASSERT_EQ(evs.size(), 1u) << r.body;
  EXPECT_EQ(evs[0]["object"]["metadata"]["name"], "other");
}

TEST_F(K8sEmulatorTest, WatchTooOldResourceVersionIsGone) {
  emu.set_history_limit(2);
  std::string rv = std::to_string(emu.resource_version());
  for (int i = 0; i < 5; ++i) emu.put_raw("ns1", "endpoints", endpoints("e" + std::to_string(i)));
  auto r = k8s_request(emu.port(), "GET", kEp + "?watch=1&timeoutSeconds=1&resourceVersion=" + rv);
  ASSERT_EQ(r.status, 200);
  auto evs = parse_watch_events(r.body);
  ASSERT_EQ(evs.size(), 1u) << r.body;
  EXPECT_EQ(evs[0]["type"], "ERROR");
  EXPECT_EQ(evs[0]["object"]["code"], 410);
  // A recent RV still works.
  rv = std::to_string(emu.resource_version());
  r = k8s_request(emu.port(), "GET", kEp + "?watch=1&timeoutSeconds=1&resourceVersion=" + rv);
  EXPECT_TRUE(parse_watch_events(r.body).empty());
}

TEST_F(K8sEmulatorTest, DropWatchesEndsStream) {
  auto fut = std::async(std::launch::async, [&] {
    return k8s_request(emu.port(), "GET", kEp + "?watch=1&timeoutSeconds=30", "", {}, std::chrono::seconds(20));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  emu.drop_watches();
  fut.get();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(K8sEmulatorTest, FaultInjection) {
  emu.fail_next(500, 2);
  EXPECT_EQ(req("GET", kEp).status, 500);
  EXPECT_EQ(req("GET", kEp).status, 500);
  EXPECT_EQ(req("GET", kEp).status, 200);
  emu.fail_next(429, -1);
  auto r = req("GET", kEp);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(req("GET", kEp).status, 429);
  emu.clear_failures();
  EXPECT_EQ(req("GET", kEp).status, 200);

  emu.set_refuse_connections(true);
  EXPECT_EQ(req("GET", kEp).status, 0);
  emu.set_refuse_connections(false);
  EXPECT_EQ(req("GET", kEp).status, 200);

  emu.set_delay(std::chrono::milliseconds(300));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(req("GET", kEp).status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
}

TEST(K8sEmulatorLifecycle, StopIsIdempotentAndPortCloses) {
  K8sEmulator emu;
  emu.start();
  int port = emu.port();
  EXPECT_EQ(k8s_request(port, "GET", kEp).status, 200);
  emu.stop();
  emu.stop();
  EXPECT_EQ(k8s_request(port, "GET", kEp).status, 0);
}

}  // namespace
