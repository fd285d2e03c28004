// Debian's patronictl 3.0.2 against the in-process Kubernetes API emulator.
//
// The emulator is seeded with objects laid out exactly as Patroni 3.0.2 writes them (Endpoints
// mode and ConfigMap mode), then `patronictl list / topology / history / show-config` must read
// them back. The helpers in `pgwarden::test::k8s_patroni` are meant for reuse: the seeding
// describes "what Patroni would have written", and `Patronictl` runs the real CLI against any
// emulator content (for instance objects written by pgwarden itself).
//
// How patronictl 3.0.2 reaches the API outside a pod (patroni/dcs/kubernetes.py):
//  * in-cluster config first (KUBERNETES_SERVICE_HOST/PORT + service-account files); when that
//    fails, the kubeconfig at $KUBECONFIG (else ~/.kube/config);
//  * the context is `kubernetes.context`, defaulting to "kind-kind" (NOT current-context);
//  * the kubeconfig's `server` may be http://; `user.token` becomes `Authorization: Bearer`;
//  * the namespace is `kubernetes.namespace` (default "default"); the context's namespace is ignored;
//  * `kubernetes.labels` must be present (a map, may be empty).
// For a read command it LISTs pods and endpoints/configmaps by label selector, then opens a
// `watch=True&resourceVersion=<list RV>` stream on each, and builds the cluster from the lists.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/harness.hpp"
#include "support/k8s_emulator.hpp"
#include "support/tls_certs.hpp"

namespace pgwarden::test::k8s_patroni {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Seeding a cluster exactly as Patroni 3.0.2 lays it out.

struct PatroniMember {
  std::string name;                 // pod name = member name
  std::string ip;                   // pod IP; conn_url / api_url are built from it
  std::string state = "running";    // postgres state string
  std::string role = "replica";     // `role` in the status JSON: master / replica / ...
  std::optional<std::int64_t> xlog_location;  // bytes; absent when postgres is not running
  std::optional<int> timeline;
  json tags;                        // null: no tags key
  bool pending_restart = false;
};

struct PatroniCluster {
  std::string ns = "pgw";
  std::string scope = "db";
  std::map<std::string, std::string> labels{{"app", "db"}, {"release", "db"}};  // kubernetes.labels
  std::string scope_label = "cluster-name";
  std::string role_label = "role";
  bool use_endpoints = true;

  std::optional<std::string> leader;  // nullopt: leader object without a `leader` annotation
  int ttl = 30;
  int transitions = 0;
  std::string acquire_time = "2024-01-18T15:00:00.000001+00:00";
  std::string renew_time = "2024-01-18T15:43:45.123456+00:00";
  std::optional<std::int64_t> optime;  // leader's last WAL position in bytes
  json config = json::object();        // dynamic configuration
  std::optional<std::string> initialize;  // system identifier ("" = initializing); nullopt = absent
  json history;                        // null: no history annotation
  std::optional<std::vector<std::string>> sync_standbys;  // writes `<scope>-sync` when set
  std::vector<PatroniMember> members;
};

// Labels Patroni puts on everything it writes: kubernetes.labels + scope_label=scope.
inline json object_labels(const PatroniCluster& c) {
  json l = json::object();
  for (auto& [k, v] : c.labels) l[k] = v;
  l[c.scope_label] = c.scope;
  return l;
}

// The pod `status` annotation value (compact JSON, like json.dumps(separators=(',', ':'))).
inline std::string patroni_status(const PatroniMember& m, const std::string& version = "3.0.2") {
  json s = json::object();
  s["conn_url"] = "postgres://" + m.ip + ":5432/postgres";
  s["api_url"] = "http://" + m.ip + ":8008/patroni";
  s["state"] = m.state;
  s["role"] = m.role;
  s["version"] = version;
  if (m.xlog_location) s["xlog_location"] = *m.xlog_location;
  if (m.timeline) s["timeline"] = *m.timeline;
  if (!m.tags.is_null()) s["tags"] = m.tags;
  if (m.pending_restart) s["pending_restart"] = true;
  return s.dump();
}

// The role label Patroni 3.0.2 puts on a pod: master for the lock holder, the postgres role
// when running, otherwise no label.
inline std::optional<std::string> patroni_role_label(const PatroniCluster& c, const PatroniMember& m) {
  if (c.leader && *c.leader == m.name) return std::string("master");
  if (m.state == "running" && m.role != "master" && m.role != "primary") return m.role;
  return std::nullopt;
}

inline std::string leader_object_name(const PatroniCluster& c) {
  return c.use_endpoints ? c.scope : c.scope + "-leader";
}

inline std::string kind_resource(const PatroniCluster& c) { return c.use_endpoints ? "endpoints" : "configmaps"; }

inline json make_kind_object(const PatroniCluster& c, const std::string& name, json annotations) {
  json o;
  o["apiVersion"] = "v1";
  o["kind"] = c.use_endpoints ? "Endpoints" : "ConfigMap";
  o["metadata"] = {{"name", name}, {"namespace", c.ns}, {"labels", object_labels(c)}, {"annotations", annotations}};
  return o;
}

// Writes pods, the leader object, the config object and (optionally) the sync object.
inline void seed_patroni_cluster(K8sEmulator& emu, const PatroniCluster& c) {
  std::string leader_ip;
  for (const auto& m : c.members) {
    json labels = object_labels(c);
    if (auto r = patroni_role_label(c, m)) labels[c.role_label] = *r;
    json pod;
    pod["apiVersion"] = "v1";
    pod["kind"] = "Pod";
    pod["metadata"] = {{"name", m.name},
                       {"namespace", c.ns},
                       {"labels", labels},
                       {"annotations", {{"status", patroni_status(m)}}}};
    pod["spec"] = {{"hostname", m.name}, {"nodeName", "node-" + m.name}, {"containers", json::array()}};
    pod["status"] = {{"phase", "Running"}, {"podIP", m.ip}};
    emu.put_raw(c.ns, "pods", pod);
    if (c.leader && *c.leader == m.name) leader_ip = m.ip;
  }

  json la = json::object();
  if (c.leader) {
    la["leader"] = *c.leader;
    la["acquireTime"] = c.acquire_time;
    la["renewTime"] = c.renew_time;
    la["transitions"] = std::to_string(c.transitions);
    la["ttl"] = std::to_string(c.ttl);
  }
  if (c.optime) la["optime"] = std::to_string(*c.optime);
  json leader_obj = make_kind_object(c, leader_object_name(c), la);
  if (c.use_endpoints) {
    // What the holder's renew writes: one subset, the leader's pod IP, the configured ports.
    if (!leader_ip.empty()) {
      leader_obj["subsets"] = json::array(
          {{{"addresses", json::array({{{"ip", leader_ip},
                                        {"hostname", *c.leader},
                                        {"nodeName", "node-" + *c.leader},
                                        {"targetRef", {{"kind", "Pod"}, {"name", *c.leader}, {"namespace", c.ns}}}}})},
            {"ports", json::array({{{"name", "postgresql"}, {"port", 5432}}})}}});
    } else {
      leader_obj["subsets"] = json::array();
    }
  }
  emu.put_raw(c.ns, kind_resource(c), leader_obj);

  json ca = json::object();
  ca["config"] = c.config.dump();
  if (c.initialize) ca["initialize"] = *c.initialize;
  if (!c.history.is_null()) ca["history"] = c.history.dump();
  emu.put_raw(c.ns, kind_resource(c), make_kind_object(c, c.scope + "-config", ca));

  if (c.sync_standbys) {
    std::vector<std::string> s = *c.sync_standbys;
    std::sort(s.begin(), s.end());
    std::string joined;
    for (const auto& n : s) joined += (joined.empty() ? "" : ",") + n;
    json sa = {{"leader", c.leader.value_or("")}, {"sync_standby", joined}};
    emu.put_raw(c.ns, kind_resource(c), make_kind_object(c, c.scope + "-sync", sa));
  }
}

// The 3-member cluster used below: db-0 leads on timeline 3, db-1 lags 2 MiB, db-2 lags 0.
inline PatroniCluster three_member_cluster(bool use_endpoints) {
  PatroniCluster c;
  c.use_endpoints = use_endpoints;
  c.leader = "db-0";
  c.transitions = 2;
  c.optime = 0x3000000;  // 48 MiB
  c.config = {{"ttl", 30},
              {"loop_wait", 10},
              {"retry_timeout", 10},
              {"maximum_lag_on_failover", 1048576},
              {"postgresql", {{"use_pg_rewind", true}, {"parameters", {{"max_connections", 100}}}}}};
  c.initialize = "7325832048316475418";
  c.history = json::array({json::array({1, 25165984, "no recovery target specified",
                                        "2024-01-18T15:10:00.123456+00:00", "db-1"}),
                           json::array({2, 33554592, "no recovery target specified",
                                        "2024-01-18T15:30:00.654321+00:00", "db-0"})});
  c.members = {
      {"db-0", "10.1.0.10", "running", "master", 0x3000000, 3, nullptr, false},
      {"db-1", "10.1.0.11", "running", "replica", 0x3000000 - 2 * 1048576, 3, nullptr, false},
      {"db-2", "10.1.0.12", "running", "replica", 0x3000000, 3, nullptr, false},
  };
  return c;
}

// ---------------------------------------------------------------------------------------------
// Running patronictl against the emulator.

// What patronictl needs to find a cluster (same keys as the daemon's `kubernetes:` section).
struct PatronictlTarget {
  std::string ns = "pgw";
  std::string scope = "db";
  std::map<std::string, std::string> labels{{"app", "db"}, {"release", "db"}};
  std::string scope_label = "cluster-name";
  std::string role_label = "role";
  bool use_endpoints = true;
};

inline PatronictlTarget target_of(const PatroniCluster& c) {
  return {c.ns, c.scope, c.labels, c.scope_label, c.role_label, c.use_endpoints};
}

struct CtlResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// A private HOME with a kubeconfig (http server + bearer token) and a patronictl config.
class Patronictl {
 public:
  // `ca_file` non-empty: the server is https:// and verified with that CA (certificate-authority).
  Patronictl(int api_port, const std::string& token, const PatronictlTarget& t, const std::string& ca_file = "")
      : dir_("pgwarden-patronictl") {
    // patronictl picks the context `kubernetes.context` (default "kind-kind"), not current-context.
    std::string kubeconfig =
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: emulator\n"
        "  cluster:\n"
        "    server: " +
        std::string(ca_file.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(api_port) + "\n" +
        (ca_file.empty() ? std::string() : "    certificate-authority: " + ca_file + "\n") +
        "users:\n"
        "- name: pgwarden-test\n"
        "  user:\n"
        "    token: " +
        token +
        "\n"
        "contexts:\n"
        "- name: pgwarden-test\n"
        "  context:\n"
        "    cluster: emulator\n"
        "    user: pgwarden-test\n"
        "current-context: pgwarden-test\n";
    write_file(kubeconfig_path(), kubeconfig, 0600);

    std::string cfg = "scope: " + t.scope + "\n";
    cfg += "kubernetes:\n  namespace: " + t.ns + "\n  context: pgwarden-test\n";
    cfg += "  use_endpoints: " + std::string(t.use_endpoints ? "true" : "false") + "\n";
    cfg += "  scope_label: " + t.scope_label + "\n  role_label: " + t.role_label + "\n";
    if (t.labels.empty()) {
      cfg += "  labels: {}\n";
    } else {
      cfg += "  labels:\n";
      for (auto& [k, v] : t.labels) cfg += "    " + k + ": " + v + "\n";
    }
    write_file(config_path(), cfg, 0600);
  }

  std::string kubeconfig_path() const { return dir_.file("kubeconfig"); }
  std::string config_path() const { return dir_.file("patronictl.yml"); }

  // Runs `patronictl -c <cfg> <args>` with a clean environment (so an in-cluster
  // KUBERNETES_SERVICE_HOST or PATRONI_* variables of the test runner cannot interfere).
  CtlResult run(const std::string& args, int timeout_s = 30) const {
    std::string err_path = dir_.file("stderr");
    std::string cmd = "env -i PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C.UTF-8 HOME=" + dir_.path() +
                      " KUBECONFIG=" + kubeconfig_path() + " timeout " + std::to_string(timeout_s) +
                      " patronictl -c " + config_path() + " " + args + " 2>" + err_path;
    CtlResult r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    std::size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int st = pclose(p);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = file_exists(err_path) ? read_file(err_path) : "";
    return r;
  }

  // `list -f json` rows keyed by member name.
  std::map<std::string, json> list_rows(CtlResult* raw = nullptr) const {
    CtlResult r = run("list -f json");
    if (raw) *raw = r;
    std::map<std::string, json> rows;
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_array()) return rows;
    for (auto& row : j) rows[row.value("Member", "")] = row;
    return rows;
  }

 private:
  TempDir dir_;
};

}  // namespace pgwarden::test::k8s_patroni

namespace pgwarden::test {
namespace {

using namespace k8s_patroni;
using json = nlohmann::json;

constexpr const char* kToken = "patronictl-test-token";

class K8sPatronictl : public ::testing::Test {
 protected:
  void SetUp() override {
    emu_.add_token(kToken);
    emu_.start();
  }
  void TearDown() override { emu_.stop(); }

  K8sEmulator emu_;
};

std::string describe(const CtlResult& r) {
  return "exit=" + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

void expect_three_member_list(const Patronictl& ctl) {
  CtlResult raw;
  auto rows = ctl.list_rows(&raw);
  ASSERT_EQ(raw.exit_code, 0) << describe(raw);
  ASSERT_EQ(rows.size(), 3u) << describe(raw);

  EXPECT_EQ(rows["db-0"]["Role"], "Leader") << raw.out;
  EXPECT_EQ(rows["db-0"]["Host"], "10.1.0.10");
  EXPECT_EQ(rows["db-0"]["State"], "running");
  EXPECT_EQ(rows["db-0"]["TL"], 3);
  EXPECT_FALSE(rows["db-0"].contains("Lag in MB")) << raw.out;  // the leader has no lag column

  EXPECT_EQ(rows["db-1"]["Role"], "Replica") << raw.out;
  EXPECT_EQ(rows["db-1"]["Host"], "10.1.0.11");
  EXPECT_EQ(rows["db-1"]["TL"], 3);
  EXPECT_EQ(rows["db-1"]["Lag in MB"], 2);  // leader optime - xlog_location, in MiB

  EXPECT_EQ(rows["db-2"]["Role"], "Replica") << raw.out;
  EXPECT_EQ(rows["db-2"]["Lag in MB"], 0);
  for (auto& [name, row] : rows) EXPECT_EQ(row["Cluster"], "db") << name;
}

TEST_F(K8sPatronictl, ListEndpointsMode) {
  auto c = three_member_cluster(true);
  seed_patroni_cluster(emu_, c);
  Patronictl ctl(emu_.port(), kToken, target_of(c));

  // renewTime lies far in the past: a one-shot patronictl judges expiry by its own clock from
  // its first observation, so any leader object naming a holder shows that holder as Leader.
  expect_three_member_list(ctl);

  auto pretty = ctl.run("list");
  ASSERT_EQ(pretty.exit_code, 0) << describe(pretty);
  EXPECT_NE(pretty.out.find("Cluster: db"), std::string::npos) << pretty.out;
  EXPECT_NE(pretty.out.find("| db-0   | 10.1.0.10 | Leader  | running |  3 |           |"), std::string::npos)
      << pretty.out;
  EXPECT_NE(pretty.out.find("| db-1   | 10.1.0.11 | Replica | running |  3 |         2 |"), std::string::npos)
      << pretty.out;
}

TEST_F(K8sPatronictl, TopologyShowConfigAndHistory) {
  auto c = three_member_cluster(true);
  seed_patroni_cluster(emu_, c);
  Patronictl ctl(emu_.port(), kToken, target_of(c));

  auto topo = ctl.run("topology");
  ASSERT_EQ(topo.exit_code, 0) << describe(topo);
  EXPECT_NE(topo.out.find("| db-0   | 10.1.0.10 | Leader"), std::string::npos) << topo.out;
  EXPECT_NE(topo.out.find("| + db-1 | 10.1.0.11 | Replica"), std::string::npos) << topo.out;
  EXPECT_NE(topo.out.find("| + db-2 | 10.1.0.12 | Replica"), std::string::npos) << topo.out;

  auto cfg = ctl.run("show-config");
  ASSERT_EQ(cfg.exit_code, 0) << describe(cfg);
  EXPECT_NE(cfg.out.find("loop_wait: 10"), std::string::npos) << cfg.out;
  EXPECT_NE(cfg.out.find("maximum_lag_on_failover: 1048576"), std::string::npos) << cfg.out;
  EXPECT_NE(cfg.out.find("use_pg_rewind: true"), std::string::npos) << cfg.out;

  auto hist = ctl.run("history -f json");
  ASSERT_EQ(hist.exit_code, 0) << describe(hist);
  auto h = json::parse(hist.out, nullptr, false);
  ASSERT_TRUE(h.is_array()) << hist.out;
  ASSERT_EQ(h.size(), 2u) << hist.out;
  EXPECT_EQ(h[0]["TL"], 1);
  EXPECT_EQ(h[0]["LSN"], 25165984);
  EXPECT_EQ(h[0]["Reason"], "no recovery target specified");
  EXPECT_EQ(h[0]["Timestamp"], "2024-01-18T15:10:00.123456+00:00");
  EXPECT_EQ(h[0]["New Leader"], "db-1");
  EXPECT_EQ(h[1]["TL"], 2);
  EXPECT_EQ(h[1]["LSN"], 33554592);
  EXPECT_EQ(h[1]["New Leader"], "db-0");

  auto pretty = ctl.run("history");
  ASSERT_EQ(pretty.exit_code, 0) << describe(pretty);
  EXPECT_NE(pretty.out.find("|  2 | 33554592 | no recovery target specified | 2024-01-18T15:30:00.654321+00:00 | db-0"),
            std::string::npos)
      << pretty.out;
}

TEST_F(K8sPatronictl, ListConfigMapMode) {
  auto c = three_member_cluster(false);
  seed_patroni_cluster(emu_, c);
  ASSERT_FALSE(emu_.get(c.ns, "configmaps", "db-leader").is_null());
  Patronictl ctl(emu_.port(), kToken, target_of(c));

  expect_three_member_list(ctl);

  auto hist = ctl.run("history -f json");
  ASSERT_EQ(hist.exit_code, 0) << describe(hist);
  auto h = json::parse(hist.out, nullptr, false);
  ASSERT_TRUE(h.is_array() && h.size() == 2) << hist.out;
  EXPECT_EQ(h[1]["New Leader"], "db-0");
}

// Endpoints-mode objects are invisible to a ConfigMap-mode patronictl and vice versa.
TEST_F(K8sPatronictl, ModeMismatchShowsNoLeader) {
  auto c = three_member_cluster(true);
  seed_patroni_cluster(emu_, c);
  auto t = target_of(c);
  t.use_endpoints = false;
  Patronictl ctl(emu_.port(), kToken, t);
  CtlResult raw;
  auto rows = ctl.list_rows(&raw);
  ASSERT_EQ(raw.exit_code, 0) << describe(raw);
  ASSERT_EQ(rows.size(), 3u) << describe(raw);
  for (auto& [name, row] : rows) EXPECT_EQ(row["Role"], "Replica") << name;
}

// Read-only commands write nothing: the global resourceVersion stays put.
TEST_F(K8sPatronictl, ReadCommandsDoNotWrite) {
  auto c = three_member_cluster(true);
  seed_patroni_cluster(emu_, c);
  Patronictl ctl(emu_.port(), kToken, target_of(c));
  auto rv = emu_.resource_version();
  for (const char* cmd : {"list", "topology", "history", "show-config", "list -e"}) {
    auto r = ctl.run(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << describe(r);
  }
  EXPECT_EQ(emu_.resource_version(), rv);
}

// list / history need only list + watch on pods and on the DCS kind.
TEST_F(K8sPatronictl, NeedsOnlyListAndWatch) {
  auto c = three_member_cluster(true);
  seed_patroni_cluster(emu_, c);
  emu_.add_token("ro-token", {{"list", "pods"}, {"watch", "pods"}, {"list", "endpoints"}, {"watch", "endpoints"}});
  Patronictl ctl(emu_.port(), "ro-token", target_of(c));
  expect_three_member_list(ctl);
  auto hist = ctl.run("history");
  EXPECT_EQ(hist.exit_code, 0) << describe(hist);
}

// The same over HTTPS: kubeconfig `certificate-authority` + bearer token.
TEST(K8sPatronictlTls, ListOverHttps) {
  TempDir certs("pgwarden-patronictl-tls");
  auto files = make_test_tls(certs.path());
  K8sEmulator emu;
  emu.add_token(kToken);
  emu.start_tls(files.cert_file, files.key_file);
  auto c = three_member_cluster(true);
  seed_patroni_cluster(emu, c);
  Patronictl ctl(emu.port(), kToken, target_of(c), files.ca_file);
  expect_three_member_list(ctl);
  emu.stop();
}

// A wrong token: the LISTs get 401, patronictl retries them every second and gives up after
// retry_timeout (always 10 s here: a top-level retry_timeout in patronictl's file is overridden by
// the dynamic-configuration default) with a DCS error and a non-zero exit.
TEST_F(K8sPatronictl, WrongTokenFails) {
  auto c = three_member_cluster(true);
  seed_patroni_cluster(emu_, c);
  Patronictl ctl(emu_.port(), "not-a-token", target_of(c));
  auto start = std::chrono::steady_clock::now();
  auto r = ctl.run("list");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_NE(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out.find("Leader"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("Kubernetes API is not responding properly"), std::string::npos) << r.err;
}

// Initialized (`initialize` holds a sysid) but the leader object names nobody: every member is
// listed as a replica, the history is still readable. This is the state pgwarden diagnoses as
// "initialized but no leader".
TEST_F(K8sPatronictl, InitializedWithoutLeader) {
  auto c = three_member_cluster(true);
  c.leader.reset();
  c.members[0].role = "replica";
  c.members[0].state = "stopped";
  c.members[0].xlog_location.reset();
  seed_patroni_cluster(emu_, c);
  auto pod0 = emu_.get(c.ns, "pods", "db-0");
  EXPECT_FALSE(pod0["metadata"]["labels"].contains("role")) << pod0.dump();

  Patronictl ctl(emu_.port(), kToken, target_of(c));
  CtlResult raw;
  auto rows = ctl.list_rows(&raw);
  ASSERT_EQ(raw.exit_code, 0) << describe(raw);
  ASSERT_EQ(rows.size(), 3u) << describe(raw);
  for (auto& [name, row] : rows) EXPECT_EQ(row["Role"], "Replica") << name;
  EXPECT_EQ(rows["db-0"]["State"], "stopped");
  EXPECT_EQ(rows["db-0"]["Lag in MB"], "unknown");  // no xlog_location
  EXPECT_EQ(rows["db-1"]["Lag in MB"], 2);          // optime survives the leader's release
}

// `<scope>-sync`, tags, pending_restart and pause as patronictl shows them.
TEST_F(K8sPatronictl, SyncStandbyTagsPendingRestartAndPause) {
  auto c = three_member_cluster(true);
  c.sync_standbys = std::vector<std::string>{"db-2"};
  c.members[1].tags = {{"nofailover", true}};
  c.members[2].pending_restart = true;
  c.config["pause"] = true;
  seed_patroni_cluster(emu_, c);
  Patronictl ctl(emu_.port(), kToken, target_of(c));

  CtlResult raw;
  auto rows = ctl.list_rows(&raw);
  ASSERT_EQ(raw.exit_code, 0) << describe(raw);
  ASSERT_EQ(rows.size(), 3u) << describe(raw);
  EXPECT_EQ(rows["db-0"]["Role"], "Leader");
  EXPECT_EQ(rows["db-1"]["Role"], "Replica");
  EXPECT_EQ(rows["db-2"]["Role"], "Sync Standby");
  EXPECT_EQ(rows["db-2"]["Pending restart"], "*");
  EXPECT_EQ(rows["db-1"]["Tags"], json({{"nofailover", true}}));

  auto pretty = ctl.run("list");
  ASSERT_EQ(pretty.exit_code, 0) << describe(pretty);
  EXPECT_NE(pretty.out.find("Maintenance mode: on"), std::string::npos) << pretty.out;
  EXPECT_NE(pretty.out.find("nofailover: true"), std::string::npos) << pretty.out;
}

}  // namespace
}  // namespace pgwarden::test
