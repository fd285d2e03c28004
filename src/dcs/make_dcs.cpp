#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/dcs/etcd/etcd3_dcs.hpp"

namespace pgwarden::dcs {

Result<std::unique_ptr<Dcs>> make_dcs(const config::Config& cfg) {
  if (!cfg.etcd3.hosts.empty()) {
    if (cfg.etcd3.protocol == "https")
      return Status::Invalid("etcd3: https is not supported in this build yet");
    if (cfg.scope.empty()) return Status::Invalid("scope is required for the etcd3 DCS");
    if (cfg.name.empty()) return Status::Invalid("name is required for the etcd3 DCS");
    return std::unique_ptr<Dcs>(std::make_unique<etcd::Etcd3Dcs>(etcd::etcd3_options_from(cfg)));
  }
  if (cfg.kubernetes.enabled) return Status::Invalid("kubernetes DCS is not available in this build yet");
  return Status::Invalid("no DCS configured: set etcd3.hosts (or etcd3.host)");
}

}  // namespace pgwarden::dcs
