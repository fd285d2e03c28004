#pragma once
// The cluster as read from the DCS: plain data, the same for every backend. Values keep the
// shapes Patroni writes (member data is the JSON object Patroni stores under members/<name>).
#include <nlohmann/json.hpp>

#include <cstdint>
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

}  // namespace pgwarden::dcs
