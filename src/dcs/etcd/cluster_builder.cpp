#include "pgwarden/dcs/etcd/cluster_builder.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

#include "pgwarden/util/log.hpp"
#include "pgwarden/util/plain_json.hpp"

namespace pgwarden::dcs::etcd {

namespace {

using nlohmann::json;

std::optional<json> parse_json(const std::string& value) {
  auto j = util::parse_json_text(value);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

std::optional<int64_t> to_int64(const json& j) {
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_float()) return static_cast<int64_t>(j.get<double>());
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  return std::nullopt;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Patroni's legacy "leader:candidate" failover value.
std::optional<json> legacy_failover(const std::string& value) {
  auto colon = value.find(':');
  std::string leader = trim(value.substr(0, colon));
  std::string candidate = colon == std::string::npos ? "" : trim(value.substr(colon + 1));
  if (leader.empty() && candidate.empty()) return std::nullopt;
  json out = json::object();
  if (!leader.empty()) out["leader"] = leader;
  if (!candidate.empty()) out["member"] = candidate;
  return out;
}

void warn_bad(const std::string& key, const char* expected) {
  spdlog::warn("DCS key {}: ignoring malformed value (expected {})", key, expected);
}

// A JSON document of the wanted shape, or nullopt with a warning.
std::optional<json> parse_shaped(const KeyValue& kv, bool want_array) {
  auto j = parse_json(kv.value);
  if (!j || (want_array ? !j->is_array() : !j->is_object())) {
    warn_bad(kv.key, want_array ? "a JSON array" : "a JSON object");
    return std::nullopt;
  }
  return j;
}

}  // namespace

std::string session_of(int64_t lease) { return lease == 0 ? std::string() : std::to_string(lease); }

bool parse_member_value(const std::string& value, nlohmann::json& out) {
  if (value.rfind("postgres", 0) == 0) {
    // Legacy form: the API URL rides in the application_name query parameter.
    auto q = value.find('?');
    out = json::object();
    out["conn_url"] = value.substr(0, q);
    if (q != std::string::npos) {
      std::string query = value.substr(q + 1);
      size_t pos = 0;
      while (pos <= query.size()) {
        auto amp = query.find('&', pos);
        std::string part = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        if (part.rfind("application_name=", 0) == 0) out["api_url"] = part.substr(17);
        if (amp == std::string::npos) break;
        pos = amp + 1;
      }
    }
    return true;
  }
  auto j = parse_json(value);
  if (!j || !j->is_object()) return false;
  out = std::move(*j);
  return true;
}

Cluster build_cluster(const std::vector<KeyValue>& kvs, const std::string& prefix) {
  std::map<std::string, const KeyValue*> nodes;
  for (const auto& kv : kvs)
    if (kv.key.size() > prefix.size() && kv.key.compare(0, prefix.size(), prefix) == 0)
      nodes[kv.key.substr(prefix.size())] = &kv;
  auto find = [&](const char* name) -> const KeyValue* {
    auto it = nodes.find(name);
    return it == nodes.end() ? nullptr : it->second;
  };

  Cluster c;
  if (auto* kv = find(kInitializeKey)) c.initialize = kv->value;

  if (auto* kv = find(kConfigKey)) {
    if (auto j = parse_shaped(*kv, false)) {
      c.config = std::move(*j);
      c.config_index = kv->mod_revision;
    }
  }
  if (auto* kv = find(kHistoryKey)) {
    if (auto j = parse_shaped(*kv, true)) c.history = std::move(*j);
  }
  if (auto* kv = find(kFailoverKey); kv && !trim(kv->value).empty()) {
    auto j = parse_json(kv->value);
    std::optional<json> f;
    if (j && j->is_object()) f = std::move(*j);
    else if (!j) f = legacy_failover(kv->value);
    if (f) {
      c.failover = std::move(*f);
      c.failover_index = kv->mod_revision;
    } else {
      warn_bad(kv->key, "a JSON object");
    }
  }
  if (auto* kv = find(kSyncKey); kv && !trim(kv->value).empty()) {
    if (auto j = parse_shaped(*kv, false)) {
      c.sync = std::move(*j);
      c.sync_index = kv->mod_revision;
    }
  }

  // Leader's last WAL position: the status document, else the pre-2.1 optime/leader key.
  std::optional<int64_t> lsn;
  if (auto* kv = find(kStatusKey)) {
    auto j = parse_json(kv->value);
    if (j && j->is_object() && j->contains("optime")) lsn = to_int64((*j)["optime"]);
    if (!lsn) warn_bad(kv->key, "a JSON object with an integer optime");
  }
  if (!lsn) {
    if (auto* kv = find(kLegacyOptimeKey)) lsn = to_int64(json(trim(kv->value)));
  }
  c.last_lsn = lsn.value_or(0);

  for (const auto& [rel, kv] : nodes) {
    if (rel.rfind(kMembersDir, 0) != 0) continue;
    std::string name = rel.substr(std::string(kMembersDir).size());
    if (name.empty() || name.find('/') != std::string::npos) continue;
    Member m;
    m.name = name;
    m.index = kv->mod_revision;
    m.session = session_of(kv->lease);
    if (!parse_member_value(kv->value, m.data)) {
      warn_bad(kv->key, "a JSON object");
      continue;
    }
    c.members.push_back(std::move(m));
  }
  // std::map iteration already yields names in order; keep the guarantee explicit.
  std::sort(c.members.begin(), c.members.end(), [](const Member& a, const Member& b) { return a.name < b.name; });

  if (auto* kv = find(kLeaderKey)) {
    Leader l;
    l.name = kv->value;
    l.index = kv->mod_revision;
    l.session = session_of(kv->lease);
    if (!l.name.empty()) c.leader = std::move(l);
    else warn_bad(kv->key, "a member name");
  }
  return c;
}

}  // namespace pgwarden::dcs::etcd
