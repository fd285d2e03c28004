#pragma once
// The DCS a test cluster runs on, so the same HA scenarios run on etcd and on the Kubernetes
// API (the emulator): the config section members get, how to take the DCS away and bring it
// back, and how to read what the members wrote.
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/harness.hpp"
#include "support/k8s_emulator.hpp"

namespace pgwarden::test {

class TestDcs {
 public:
  virtual ~TestDcs() = default;
  virtual std::string name() const = 0;
  // The DCS part of a member's YAML (top level), for member `member` (1-based `index`).
  virtual std::string yaml(const std::string& member, int index) const = 0;
  // Environment patronictl (and any member without its own credentials) needs.
  virtual std::map<std::string, std::string> env() const { return {}; }
  // Environment member `member` runs with (by default the same as env()).
  virtual std::map<std::string, std::string> env(const std::string& /*member*/) const { return env(); }
  // Called before a member first starts (Kubernetes: its pod exists, as in a StatefulSet).
  virtual void add_member(const std::string& /*member*/, int /*index*/) {}
  // The DCS stops answering / answers again.
  virtual void make_unavailable() = 0;
  virtual void make_available() = 0;
  // The `history` value the cluster holds (null when none).
  virtual nlohmann::json history(const std::string& scope) = 0;
  // A shell prefix setting env() for commands such as patronictl.
  std::string shell_env() const;
};

class EtcdTestDcs final : public TestDcs {
 public:
  explicit EtcdTestDcs(const EtcdServer& etcd) : etcd_(etcd) {}
  std::string name() const override { return "etcd"; }
  std::string yaml(const std::string& member, int index) const override;
  void make_unavailable() override;
  void make_available() override;
  nlohmann::json history(const std::string& scope) override;

 private:
  const EtcdServer& etcd_;
};

// A namespace on the Kubernetes API emulator with one pod per member (labels as the chart's
// StatefulSet gives them, a pod IP from 192.0.2.0/24 while everything listens on loopback),
// reached through a kubeconfig with a bearer token. Every member gets its own token
// (kToken + "-" + member, in its own kubeconfig), so the emulator counts its requests apart;
// patronictl uses kToken.
class K8sTestDcs final : public TestDcs {
 public:
  explicit K8sTestDcs(bool use_endpoints, std::string scope = "itest");
  ~K8sTestDcs() override;
  std::string name() const override { return use_endpoints_ ? "k8s_endpoints" : "k8s_configmaps"; }
  std::string yaml(const std::string& member, int index) const override;
  std::map<std::string, std::string> env() const override;
  std::map<std::string, std::string> env(const std::string& member) const override;
  void add_member(const std::string& member, int index) override;
  void make_unavailable() override;
  void make_available() override;
  nlohmann::json history(const std::string& scope) override;

  K8sEmulator& emulator() { return emu_; }
  const std::string& ns() const { return ns_; }
  bool use_endpoints() const { return use_endpoints_; }
  std::string kind() const { return use_endpoints_ ? "endpoints" : "configmaps"; }
  std::string leader_object() const { return use_endpoints_ ? scope_ : scope_ + "-leader"; }
  static std::string pod_ip(int index) { return "192.0.2." + std::to_string(10 + index); }
  // Empty when the objects match Patroni's layout for `leader` (exactly one pod labelled
  // master, the others replica, every status annotation parses, the lock and, with
  // Endpoints, the subsets point at the leader); else what does not.
  std::string layout_mismatch(const std::string& leader, const std::vector<std::string>& members);
  std::string kubeconfig() const { return dir_.file("kubeconfig"); }
  std::string kubeconfig(const std::string& member) const { return dir_.file("kubeconfig-" + member); }
  static constexpr const char* kToken = "itest-token";
  static std::string token(const std::string& member) { return std::string(kToken) + "-" + member; }
  // API requests member `member` made so far (by its token).
  K8sEmulator::RequestCounts requests(const std::string& member) { return emu_.requests_by_token(token(member)); }

 private:
  bool use_endpoints_;
  std::string scope_;
  std::string ns_ = "itest-ns";
  TempDir dir_{"pgwarden-k8s"};
  K8sEmulator emu_;
  std::map<std::string, int> indexes_;
  void write_kubeconfig(const std::string& path, const std::string& token) const;
};

}  // namespace pgwarden::test
