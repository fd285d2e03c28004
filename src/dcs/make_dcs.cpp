#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/dcs/etcd/etcd3_dcs.hpp"
#include "pgwarden/dcs/kubernetes/kubernetes_dcs.hpp"

namespace pgwarden::dcs {

namespace {

Result<std::unique_ptr<Dcs>> make_kubernetes(const config::Config& cfg) {
  if (cfg.scope.empty()) return Status::Invalid("scope is required for the kubernetes DCS");
  if (cfg.name.empty()) return Status::Invalid("name (the pod's name) is required for the kubernetes DCS");
  // PATRONI_KUBERNETES_CACERT reaches kubernetes.cacert through the environment overrides.
  auto server = k8s::discover_api_server(cfg.kubernetes.context, cfg.kubernetes.cacert);
  if (!server.ok()) return server.status();
  std::set<int> retriable = {500, 503, 504};
  retriable.insert(cfg.kubernetes.retriable_http_codes.begin(), cfg.kubernetes.retriable_http_codes.end());
  auto client = std::make_unique<k8s::ApiClient>(
      *server, std::chrono::milliseconds(int64_t{cfg.dynamic.retry_timeout} * 1000), retriable);
  auto opts = k8s::kubernetes_options_from(cfg);
  return std::unique_ptr<Dcs>(std::make_unique<k8s::KubernetesDcs>(std::move(opts), std::move(client)));
}

}  // namespace

Result<std::unique_ptr<Dcs>> make_dcs(const config::Config& cfg) {
  if (!cfg.etcd3.hosts.empty()) {
    if (cfg.etcd3.protocol == "https")
      return Status::Invalid("etcd3: https is not supported in this build yet");
    if (cfg.scope.empty()) return Status::Invalid("scope is required for the etcd3 DCS");
    if (cfg.name.empty()) return Status::Invalid("name is required for the etcd3 DCS");
    return std::unique_ptr<Dcs>(std::make_unique<etcd::Etcd3Dcs>(etcd::etcd3_options_from(cfg)));
  }
  if (cfg.kubernetes.enabled) return make_kubernetes(cfg);
  return Status::Invalid("no DCS configured: set etcd3.hosts (or etcd3.host) or a kubernetes section");
}

}  // namespace pgwarden::dcs
