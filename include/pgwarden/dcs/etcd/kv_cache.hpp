#pragma once
// The keys under a cluster prefix as a range read found them and the watch events after it
// changed them: Patroni's KVCache (etcd3.py). While the watch stream continues it without a
// gap, an HA cycle reads its view of the cluster here instead of asking etcd every loop_wait.
// Pure: the etcd backend feeds it reads and events; it knows nothing of the network.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/dcs/cluster.hpp"
#include "pgwarden/dcs/etcd/codec.hpp"

namespace pgwarden::dcs::etcd {

class KvCache {
 public:
  // `prefix`: the cluster prefix (ends with '/'); `self`: this member's name, for the wake rules.
  KvCache(std::string prefix, std::string self);

  // Replaces the contents with a range read's key-values, complete as of `revision`.
  void reset(const std::vector<KeyValue>& kvs, int64_t revision);

  // Applies the events of one watch response ([{"type": "PUT"|"DELETE", "kv": {...}}, ...]),
  // in order. An event at or below revision() is already in (a range read or an earlier
  // response saw it) and is skipped, as is one that cannot be decoded or lies outside the
  // prefix. Returns whether a change should wake the HA loop (Patroni's rules, see wakes()).
  bool apply(const nlohmann::json& events);

  // Every change up to this revision is in the cache (0: nothing loaded yet).
  int64_t revision() const { return revision_; }
  // The contents as a Cluster, built again only after a change (so a caller may keep the
  // pointer as "the view" without a copy).
  std::shared_ptr<const Cluster> cluster();
  // The current value of a key below the prefix ("leader", "members/a"), if it exists.
  std::optional<std::string> value(const std::string& rel) const;

 private:
  // Whether the change of `kv` (applied already) from `old_value` wakes the HA loop.
  bool wakes(const KeyValue& kv, bool deleted, const std::optional<std::string>& old_value) const;

  const std::string prefix_;
  const std::string self_;
  std::map<std::string, KeyValue> kvs_;  // full key -> key-value
  int64_t revision_ = 0;
  std::shared_ptr<const Cluster> built_;
};

}  // namespace pgwarden::dcs::etcd
