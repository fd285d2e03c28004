#include "pgwarden/dcs/etcd/kv_cache.hpp"

#include <algorithm>

#include "pgwarden/dcs/etcd/cluster_builder.hpp"
#include "pgwarden/util/log.hpp"

namespace pgwarden::dcs::etcd {

using nlohmann::json;

KvCache::KvCache(std::string prefix, std::string self) : prefix_(std::move(prefix)), self_(std::move(self)) {}

void KvCache::reset(const std::vector<KeyValue>& kvs, int64_t revision) {
  kvs_.clear();
  for (const auto& kv : kvs) kvs_[kv.key] = kv;
  revision_ = revision;
  built_.reset();
}

std::shared_ptr<const Cluster> KvCache::cluster() {
  if (!built_) {
    std::vector<KeyValue> all;
    all.reserve(kvs_.size());
    for (const auto& [key, kv] : kvs_) all.push_back(kv);
    built_ = std::make_shared<const Cluster>(build_cluster(all, prefix_));
  }
  return built_;
}

std::optional<std::string> KvCache::value(const std::string& rel) const {
  auto it = kvs_.find(prefix_ + rel);
  if (it == kvs_.end()) return std::nullopt;
  return it->second.value;
}

bool KvCache::apply(const json& events) {
  if (!events.is_array()) return false;
  // A txn's events share one revision and etcd sends them in one response: what was already
  // in is decided against the revision before this response, not after its first event.
  const int64_t seen = revision_;
  bool wake = false;
  for (const auto& ev : events) {
    auto kvj = ev.find("kv");
    if (kvj == ev.end()) continue;
    KeyValue kv;
    if (!decode_kv(*kvj, kv) || kv.mod_revision <= seen) continue;
    revision_ = std::max(revision_, kv.mod_revision);
    if (kv.key.compare(0, prefix_.size(), prefix_) != 0) continue;
    const bool deleted = ev.value("type", std::string()) == "DELETE";
    std::optional<std::string> old_value;
    if (auto it = kvs_.find(kv.key); it != kvs_.end()) old_value = it->second.value;
    if (deleted) kvs_.erase(kv.key);
    else kvs_[kv.key] = kv;
    built_.reset();
    if (wakes(kv, deleted, old_value)) {
      spdlog::debug("{} changed", kv.key);
      wake = true;
    }
  }
  return wake;
}

// Patroni's rules (etcd3.py KVCache._process_event), so that our own writes do not wake us
// every cycle: wake on any change of the leader key's value; on a status/optime change only
// when somebody else leads (replicas follow the leader's LSN); on a config change only when
// it is modified (not created or deleted). Beyond Patroni: a member key that appears
// (created, not updated) wakes the leader, so the new member's replication slot exists
// before it starts streaming instead of a loop_wait later.
bool KvCache::wakes(const KeyValue& kv, bool deleted, const std::optional<std::string>& old_value) const {
  const std::string rel = kv.key.substr(prefix_.size());
  const std::optional<std::string> leader = value(kLeaderKey);
  if (rel.rfind(kMembersDir, 0) == 0) {
    const bool created = !deleted && kv.create_revision == kv.mod_revision;
    return created && leader == self_ && rel != std::string(kMembersDir) + self_;
  }
  std::optional<std::string> new_value;
  if (!deleted) new_value = kv.value;
  if (old_value == new_value) return false;
  if (rel == kLeaderKey) return true;
  if (rel == kStatusKey || rel == kLegacyOptimeKey) return new_value && leader != self_;
  if (rel == kConfigKey) return old_value && new_value;
  return false;
}

}  // namespace pgwarden::dcs::etcd
