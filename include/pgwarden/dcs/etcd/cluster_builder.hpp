#pragma once
// Turns the key-values under a cluster prefix into a dcs::Cluster, reading every value the
// way Patroni does. A malformed value only loses that item (with a warning naming the key):
// one bad write must never make the whole cluster unreadable.
#include <string>
#include <vector>

#include "pgwarden/dcs/cluster.hpp"
#include "pgwarden/dcs/etcd/codec.hpp"

namespace pgwarden::dcs::etcd {

// Key names below the prefix, as Patroni spells them.
inline constexpr const char* kLeaderKey = "leader";
inline constexpr const char* kMembersDir = "members/";
inline constexpr const char* kConfigKey = "config";
inline constexpr const char* kInitializeKey = "initialize";
inline constexpr const char* kHistoryKey = "history";
inline constexpr const char* kFailoverKey = "failover";
inline constexpr const char* kSyncKey = "sync";
inline constexpr const char* kStatusKey = "status";
inline constexpr const char* kLegacyOptimeKey = "optime/leader";

// `kvs` hold full keys; those not under `prefix` are ignored.
Cluster build_cluster(const std::vector<KeyValue>& kvs, const std::string& prefix);

// Member data from a members/<name> value: a JSON object, or Patroni's legacy
// "postgres://...?application_name=<api_url>" form. False if neither.
bool parse_member_value(const std::string& value, nlohmann::json& out);

// The lease id as the `session` string: decimal, empty for keys without a lease.
std::string session_of(int64_t lease);

}  // namespace pgwarden::dcs::etcd
