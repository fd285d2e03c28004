#pragma once
// The cluster as read from the DCS: plain data, the same for every backend. Values keep the
// shapes Patroni writes (member data is the JSON object Patroni stores under members/<name>).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::dcs {

struct Member {
  std::string name;
  int64_t index = 0;       // modification revision / resourceVersion
  std::string session;     // etcd lease id (decimal) or empty
  nlohmann::json data = nlohmann::json::object();  // conn_url, api_url, state, role, ...

  std::string conn_url() const { return data.value("conn_url", ""); }
  std::string api_url() const { return data.value("api_url", ""); }
  std::string state() const { return data.value("state", ""); }
  std::string role() const { return data.value("role", ""); }
  bool nofailover() const;
};

struct Leader {
  std::string name;
  int64_t index = 0;
  std::string session;
};

struct Cluster {
  std::optional<std::string> initialize;  // system identifier (may be empty) if the key exists
  std::optional<nlohmann::json> config;   // dynamic configuration document
  int64_t config_index = 0;
  std::optional<Leader> leader;
  int64_t last_lsn = 0;                   // leader's last known WAL position (status.optime)
  std::vector<Member> members;            // sorted by name
  std::optional<nlohmann::json> failover; // {leader, member|candidate, scheduled_at}
  int64_t failover_index = 0;
  std::optional<nlohmann::json> sync;     // {leader, sync_standby}
  int64_t sync_index = 0;
  std::optional<nlohmann::json> history;  // [[tl, lsn, reason, ts, leader], ...]

  const Member* member(const std::string& name) const;
  bool has_leader() const { return leader.has_value(); }
  bool is_paused() const;
};

// A Cluster that readers share instead of copying (the etcd view, the HA cycle's snapshot, the
// REST view): copying one copies a pointer. edit() gives a private copy first when the value
// may be shared (copy on write), so a change never shows through another holder.
class SharedCluster {
 public:
  SharedCluster() = default;  // an empty cluster
  SharedCluster(Cluster c)    // NOLINT(google-explicit-constructor): a value is a cluster of its own
      : p_(std::make_shared<Cluster>(std::move(c))), owned_(true) {}
  explicit SharedCluster(std::shared_ptr<const Cluster> p) : p_(std::move(p)) {}

  const Cluster& operator*() const { return p_ ? *p_ : empty(); }
  const Cluster* operator->() const { return &**this; }
  Cluster& edit();
  // For readers that keep the value (the REST view).
  std::shared_ptr<const Cluster> share() const;

 private:
  static const Cluster& empty();
  std::shared_ptr<const Cluster> p_;
  bool owned_ = false;  // p_ points at a Cluster made here, not const
};

}  // namespace pgwarden::dcs
