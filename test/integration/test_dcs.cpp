#include "test_dcs.hpp"

#include <signal.h>

#include <sstream>

namespace pgwarden::test {

using nlohmann::json;

std::string TestDcs::shell_env() const {
  std::string out;
  for (const auto& [k, v] : env()) out += k + "='" + v + "' ";
  return out;
}

// ---- etcd ----

std::string EtcdTestDcs::yaml(const std::string&, int) const {
  return "namespace: /service/\netcd3:\n  hosts: " + etcd_.endpoint() + "\n";
}

void EtcdTestDcs::make_unavailable() { kill(etcd_.pid(), SIGSTOP); }
void EtcdTestDcs::make_available() { kill(etcd_.pid(), SIGCONT); }

json EtcdTestDcs::history(const std::string& scope) {
  std::string key = "/service/" + scope + "/history";
  auto kv = const_cast<EtcdServer&>(etcd_).get_prefix(key);
  auto it = kv.find(key);
  if (it == kv.end()) return json();
  return json::parse(it->second, nullptr, false);
}

// ---- Kubernetes (emulator) ----

K8sTestDcs::K8sTestDcs(bool use_endpoints, std::string scope) : use_endpoints_(use_endpoints), scope_(std::move(scope)) {
  emu_.add_token(kToken);
  emu_.start();
  write_kubeconfig(kubeconfig(), kToken);
}

void K8sTestDcs::write_kubeconfig(const std::string& path, const std::string& token) const {
  std::ostringstream k;
  k << "apiVersion: v1\nkind: Config\n"
    << "clusters:\n- name: emulator\n  cluster:\n    server: http://127.0.0.1:" << emu_.port() << "\n"
    << "users:\n- name: itest\n  user:\n    token: " << token << "\n"
    << "contexts:\n- name: itest\n  context:\n    cluster: emulator\n    user: itest\n    namespace: " << ns_ << "\n"
    << "current-context: itest\n";
  write_file(path, k.str(), 0600);
}

K8sTestDcs::~K8sTestDcs() { emu_.stop(); }

std::string K8sTestDcs::yaml(const std::string&, int index) const {
  std::ostringstream y;
  // patronictl outside a pod defaults the kubeconfig context to kind-kind: name ours. No
  // top-level `namespace`: Patroni (so patronictl) would take it for the Kubernetes namespace.
  y << "kubernetes:\n  namespace: " << ns_ << "\n  context: itest\n  labels:\n    app: pgwarden-itest\n"
    << "  scope_label: cluster-name\n  role_label: role\n  use_endpoints: " << (use_endpoints_ ? "true" : "false")
    << "\n  pod_ip: " << pod_ip(index) << "\n  ports:\n  - name: postgresql\n    port: 5432\n";
  return y.str();
}

std::map<std::string, std::string> K8sTestDcs::env() const { return {{"KUBECONFIG", kubeconfig()}}; }

std::map<std::string, std::string> K8sTestDcs::env(const std::string& member) const {
  if (!indexes_.count(member)) return env();
  return {{"KUBECONFIG", kubeconfig(member)}};
}

void K8sTestDcs::add_member(const std::string& member, int index) {
  if (!indexes_.count(member)) {
    emu_.add_token(token(member));
    write_kubeconfig(kubeconfig(member), token(member));
  }
  indexes_[member] = index;
  if (!emu_.get(ns_, "pods", member).is_null()) return;
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", member},
                {"namespace", ns_},
                {"labels", {{"app", "pgwarden-itest"}, {"cluster-name", scope_}}}}},
              {"spec", {{"hostname", member}, {"nodeName", "itest-node"}}},
              {"status", {{"podIP", pod_ip(index)}, {"phase", "Running"}}}};
  emu_.put_raw(ns_, "pods", pod);
}

void K8sTestDcs::make_unavailable() { emu_.set_refuse_connections(true); }
void K8sTestDcs::make_available() { emu_.set_refuse_connections(false); }

json K8sTestDcs::history(const std::string& scope) {
  json cfg = emu_.get(ns_, kind(), scope + "-config");
  std::string h = cfg.value("/metadata/annotations/history"_json_pointer, std::string());
  if (h.empty()) return json();
  return json::parse(h, nullptr, false);
}

std::string K8sTestDcs::layout_mismatch(const std::string& leader, const std::vector<std::string>& members) {
  std::ostringstream why;
  int masters = 0;
  for (const auto& m : members) {
    json pod = emu_.get(ns_, "pods", m);
    std::string role = pod.value("/metadata/labels/role"_json_pointer, std::string());
    std::string status = pod.value("/metadata/annotations/status"_json_pointer, std::string());
    json st = json::parse(status, nullptr, false);
    if (st.is_discarded() || !st.is_object()) {
      why << m << ": status annotation does not parse: '" << status << "'; ";
      continue;
    }
    if (m == leader) {
      if (role != "master") why << m << ": role label '" << role << "', want master; ";
      if (st.value("role", "") != "master") why << m << ": status role " << st.value("role", "") << "; ";
    } else if (role != "replica") {
      why << m << ": role label '" << role << "', want replica; ";
    }
    masters += role == "master";
    for (const char* k : {"conn_url", "api_url", "state", "role", "version"})
      if (!st.contains(k)) why << m << ": status lacks " << k << "; ";
    if (st.value("state", "") != "running") why << m << ": status state " << st.value("state", "") << "; ";
  }
  if (masters != 1) why << masters << " pods labelled master; ";
  json lock = emu_.get(ns_, kind(), leader_object());
  std::string holder = lock.value("/metadata/annotations/leader"_json_pointer, std::string());
  if (holder != leader) why << "lock names '" << holder << "', want " << leader << "; ";
  for (const char* k : {"acquireTime", "renewTime", "ttl", "transitions", "optime"})
    if (!lock.contains(json::json_pointer("/metadata/annotations/" + std::string(k))))
      why << "lock lacks annotation " << k << "; ";
  if (lock.value("/metadata/labels/cluster-name"_json_pointer, std::string()) != scope_)
    why << "lock lacks the scope label; ";
  if (use_endpoints_) {
    json subsets = lock.value("subsets", json::array());
    std::string ip = subsets.size() == 1 ? subsets[0].value("/addresses/0/ip"_json_pointer, std::string()) : "";
    auto it = indexes_.find(leader);
    if (it == indexes_.end() || ip != pod_ip(it->second)) why << "subsets " << subsets.dump() << " do not point at the leader; ";
    else if (subsets[0].value("/ports/0/name"_json_pointer, std::string()) != "postgresql")
      why << "subsets ports " << subsets[0]["ports"].dump() << "; ";
  }
  return why.str();
}

}  // namespace pgwarden::test
