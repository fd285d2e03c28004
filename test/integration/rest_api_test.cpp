// The REST API's monitoring and dynamic-configuration endpoints against a real member on
// etcd: GET /cluster, /history, /config, /metrics; PATCH and PUT /config with Basic auth,
// checked through the API, the DCS (patronictl show-config) and the HA loop (pause).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

struct Reply {
  int status = 0;
  std::string body;
};

// curl, because the harness client sends no Authorization header. `user` "" sends none.
Reply call(const PgwardenMember& m, const std::string& method, const std::string& path, const std::string& body,
           const std::string& user) {
  std::string cmd = "curl -s -m 10 -w '\\n%{http_code}' -X " + method;
  if (!user.empty()) cmd += " -u " + shell_quote(user);
  cmd += " --data-binary " + shell_quote(body);
  cmd += " http://127.0.0.1:" + std::to_string(m.api_port()) + path;
  std::string out = capture(cmd);
  Reply r;
  const auto nl = out.rfind('\n');
  if (nl == std::string::npos) return r;
  r.body = out.substr(0, nl);
  try {
    r.status = std::stoi(out.substr(nl + 1));
  } catch (const std::exception&) {
  }
  return r;
}

json get_json(const PgwardenMember& m, const std::string& path) {
  auto r = m.get(path);
  if (r.status != 200) return json();
  return json::parse(r.body, nullptr, false);
}

class RestApi : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd = std::make_unique<EtcdServer>();
    dcs = std::make_unique<EtcdTestDcs>(*etcd);
  }
  void TearDown() override {
    members.clear();
    dcs.reset();
    etcd.reset();
  }

  PgwardenMember& add(int index) {
    MemberOptions o;
    o.index = index;
    o.name = "node" + std::to_string(index);
    o.extra_env = {{"PATRONI_RESTAPI_USERNAME", "admin"}, {"PATRONI_RESTAPI_PASSWORD", "s3cret"}};
    members.push_back(std::make_unique<PgwardenMember>(*dcs, o));
    members.back()->start();
    return *members.back();
  }

  std::string logs() {
    std::string all;
    for (auto& m : members) all += "----- " + m->options().name + "\n" + m->log();
    return all;
  }

  std::unique_ptr<EtcdServer> etcd;
  std::unique_ptr<EtcdTestDcs> dcs;
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

TEST_F(RestApi, MonitoringEndpoints) {
  PgwardenMember& m1 = add(1);
  ASSERT_TRUE(wait_until([&] { return m1.get("/leader").status == 200; }, 90s)) << logs();
  PgwardenMember& m2 = add(2);
  json cluster;
  // Both members running, the replica streaming and its position published.
  ASSERT_TRUE(wait_until(
      [&] {
        cluster = get_json(m2, "/cluster");
        if (!cluster.is_object() || cluster["members"].size() != 2) return false;
        for (const auto& m : cluster["members"])
          if (m.value("state", "") != "running" && m.value("state", "") != "streaming") return false;
        return cluster["members"][1].contains("lag") && cluster["members"][1]["lag"].is_number();
      },
      120s))
      << cluster.dump() << "\n" << logs();
  EXPECT_EQ(cluster["scope"], "itest");
  const json& leader = cluster["members"][0];
  const json& replica = cluster["members"][1];
  EXPECT_EQ(leader["name"], "node1");
  EXPECT_EQ(leader["role"], "leader");
  EXPECT_EQ(leader["api_url"], "http://127.0.0.1:" + std::to_string(m1.api_port()) + "/patroni");
  EXPECT_EQ(leader["host"], "127.0.0.1");
  EXPECT_EQ(leader["port"], m1.pg_port());
  EXPECT_EQ(leader["timeline"], 1);
  EXPECT_FALSE(leader.contains("lag"));
  EXPECT_EQ(replica["name"], "node2");
  EXPECT_EQ(replica["role"], "replica");
  EXPECT_EQ(replica["port"], m2.pg_port());
  EXPECT_FALSE(cluster.contains("pause"));

  auto history = m1.get("/history");
  EXPECT_EQ(history.status, 200);
  EXPECT_TRUE(json::parse(history.body, nullptr, false).is_array()) << history.body;

  json config = get_json(m1, "/config");
  EXPECT_EQ(config["ttl"], 20) << config.dump();
  EXPECT_EQ(config["loop_wait"], 2);
  EXPECT_EQ(config["retry_timeout"], 5);

  auto metrics = m1.get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.headers["content-type"], "text/plain");
  EXPECT_NE(metrics.body.find("patroni_primary{scope=\"itest\",name=\"node1\"} 1\n"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("patroni_postgres_running{scope=\"itest\",name=\"node1\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("patroni_postgres_timeline{scope=\"itest\",name=\"node1\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("# TYPE patroni_xlog_location counter\n"), std::string::npos);
  auto replica_metrics = m2.get("/metrics");
  EXPECT_NE(replica_metrics.body.find("patroni_replica{scope=\"itest\",name=\"node2\"} 1\n"), std::string::npos)
      << replica_metrics.body;
  EXPECT_NE(replica_metrics.body.find("patroni_xlog_location{scope=\"itest\",name=\"node2\"} 0\n"),
            std::string::npos);

  // Replica health with a lag limit in units: within 16MB of the leader.
  EXPECT_EQ(m2.get("/replica?lag=16MB").status, 200);
  EXPECT_EQ(m1.get("/replica").status, 503);
}

TEST_F(RestApi, DynamicConfigWrites) {
  PgwardenMember& m = add(1);
  ASSERT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 90s)) << logs();
  const json before = get_json(m, "/config");
  ASSERT_TRUE(before.is_object() && before.contains("ttl")) << before.dump();

  // Refusals: no credentials, wrong ones, bad bodies. Nothing is written.
  Reply r = call(m, "PATCH", "/config", R"({"custom_key": "x"})", "");
  EXPECT_EQ(r.status, 401) << r.body;
  r = call(m, "PATCH", "/config", R"({"custom_key": "x"})", "admin:wrong");
  EXPECT_EQ(r.status, 401) << r.body;
  r = call(m, "PUT", "/config", R"({"ttl": 30})", "admin:wrong");
  EXPECT_EQ(r.status, 401) << r.body;
  r = call(m, "PATCH", "/config", R"({"custom_key": )", "admin:s3cret");
  EXPECT_EQ(r.status, 400) << r.body;
  r = call(m, "PATCH", "/config", R"(["custom_key"])", "admin:s3cret");
  EXPECT_EQ(r.status, 400) << r.body;
  r = call(m, "PATCH", "/config", R"({"ttl": 0})", "admin:s3cret");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("ttl"), std::string::npos) << r.body;
  EXPECT_EQ(get_json(m, "/config"), before);

  // PATCH merges into the DCS document.
  r = call(m, "PATCH", "/config", R"({"custom_key": "x", "postgresql": {"parameters": {"work_mem": "8MB"}}})",
           "admin:s3cret");
  ASSERT_EQ(r.status, 200) << r.body << "\n" << m.log();
  json patched = json::parse(r.body, nullptr, false);
  EXPECT_EQ(patched["custom_key"], "x");
  EXPECT_EQ(patched["postgresql"]["parameters"]["work_mem"], "8MB");
  EXPECT_EQ(patched["postgresql"]["parameters"]["wal_level"], "replica");  // merged, not replaced
  EXPECT_EQ(patched["ttl"], before["ttl"]);
  EXPECT_EQ(get_json(m, "/config"), patched);
  const std::string shown = capture(dcs->shell_env() + "patronictl -c " + m.config_path() + " show-config");
  EXPECT_NE(shown.find("custom_key: x"), std::string::npos) << shown;
  EXPECT_NE(shown.find("work_mem: 8MB"), std::string::npos) << shown;

  // PUT replaces the whole document; here it also pauses the cluster.
  json replacement = patched;
  replacement.erase("custom_key");
  replacement["pause"] = true;
  r = call(m, "PUT", "/config", replacement.dump(), "admin:s3cret");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body, nullptr, false), replacement);
  EXPECT_EQ(get_json(m, "/config"), replacement);
  EXPECT_TRUE(wait_until([&] { return get_json(m, "/cluster").value("pause", false); }, 10s));
  EXPECT_TRUE(wait_until(
      [&] {
        return m.get("/metrics").body.find("patroni_is_paused{scope=\"itest\",name=\"node1\"} 1\n") !=
               std::string::npos;
      },
      20s))
      << m.get("/metrics").body;

  // Wrong credentials change nothing; `patronictl resume` is PATCH {"pause": null}.
  r = call(m, "PUT", "/config", before.dump(), "nobody:s3cret");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(get_json(m, "/config"), replacement);
  r = call(m, "PATCH", "/config", R"({"pause": null})", "admin:s3cret");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(json::parse(r.body).contains("pause"));
  EXPECT_TRUE(wait_until(
      [&] {
        return m.get("/metrics").body.find("patroni_is_paused{scope=\"itest\",name=\"node1\"} 0\n") !=
               std::string::npos;
      },
      20s));
}

}  // namespace
}  // namespace pgwarden::test
