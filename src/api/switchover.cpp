#include "pgwarden/api/switchover.hpp"

#include <nlohmann/json.hpp>

#include "pgwarden/util/iso_time.hpp"
#include "pgwarden/util/log.hpp"

namespace pgwarden::api {

using nlohmann::json;

namespace {

std::string str(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string title(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

// Patroni's is_failover_possible: an error text, or "" when some candidate can take over.
std::string failover_possible(const dcs::Cluster& c, const std::string& leader, const std::string& candidate,
                              const std::string& action, const SwitchoverDeps& deps) {
  if (!leader.empty() && (!c.leader || c.leader->name != leader)) return "leader name does not match";
  std::vector<dcs::Member> members;
  if (!candidate.empty()) {
    if (action == "switchover" && c.sync && c.sync->is_object()) {
      std::string standby = c.sync->value("sync_standby", "");
      if (!standby.empty() && ("," + standby + ",").find("," + candidate + ",") == std::string::npos)
        return "candidate name does not match with sync_standby";
    }
    const dcs::Member* m = c.member(candidate);
    if (!m) return "candidate does not exists";
    members.push_back(*m);
  } else {
    for (const auto& m : c.members)
      if ((!c.leader || m.name != c.leader->name) && !m.api_url().empty()) members.push_back(m);
    if (members.empty()) return action + " is not possible: cluster does not have members except leader";
  }
  for (const auto& st : deps.fetch_peers(members))
    if (st.reachable && !st.nofailover && !st.watchdog_failed) return "";
  return action + " is not possible: no good candidates have been found";
}

}  // namespace

SwitchoverReply post_switchover(const std::string& path_action, const std::string& body, const SwitchoverDeps& deps) {
  json req = json::parse(body, nullptr, false);
  if (req.is_discarded() || !req.is_object() || req.empty()) return {400, "Bad request: the body must be a JSON object"};
  std::string action = path_action;
  std::string leader = str(req, "leader");
  std::string candidate = str(req, "candidate");
  if (candidate.empty()) candidate = str(req, "member");
  std::string scheduled = str(req, "scheduled_at");
  if (req.contains("scheduled_at") && !req["scheduled_at"].is_string() && !req["scheduled_at"].is_null())
    return {422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"};
  spdlog::info("received {} request with leader={} candidate={} scheduled_at={}", action, leader, candidate, scheduled);

  const bool paused = deps.paused();
  if (action == "failover" && candidate.empty()) return {400, "Failover could be performed only to a specific candidate"};
  if (action == "switchover" && leader.empty()) return {400, "Switchover could be performed only from a specific leader"};
  std::optional<double> at;
  if (!scheduled.empty()) {
    if (action == "failover") return {400, "Failover can't be scheduled"};
    if (paused) return {400, "Can't schedule switchover in the paused state"};
    at = util::parse_iso8601(scheduled);
    if (!at) return {422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"};
    // After "YYYY-MM-DDTHH:MM:SS" only a fraction and an offset may follow.
    bool has_tz = scheduled.size() > 19 && scheduled.find_first_of("Zz+-", 19) != std::string::npos;
    if (!has_tz) return {400, "Timezone information is mandatory for the scheduled " + action};
    if (*at < deps.now()) return {422, "Cannot schedule " + action + " in the past"};
  }
  if (paused && candidate.empty()) return {400, "Switchover is possible only to a specific candidate in a paused state"};
  if (action == "failover" && !leader.empty()) action = "switchover";  // Patroni does the same
  if (!leader.empty() && leader == candidate) return {400, "Switchover target and source are the same"};

  auto cluster = deps.read_cluster();
  if (!cluster.ok()) return {503, "DCS is not accessible: " + cluster.status().message()};
  if (!at) {
    if (auto why = failover_possible(*cluster, leader, candidate, action, deps); !why.empty()) return {412, why};
  }
  json value = json::object();
  if (!leader.empty()) value["leader"] = leader;
  if (!candidate.empty()) value["member"] = candidate;
  if (at) value["scheduled_at"] = util::format_iso8601(*at);
  if (auto st = deps.write_failover(value.dump(), std::nullopt); !st) {
    spdlog::warn("{}: could not write the failover key: {}", action, st.message());
    return {503, "failed to write failover key into DCS"};
  }
  if (deps.wake_ha) deps.wake_ha();
  if (at) return {202, title(action) + " scheduled"};

  // Wait for the lock to move (Patroni polls the DCS once a second; we look more often so a
  // fast handover is answered fast).
  std::string old_leader = cluster->leader ? cluster->leader->name : "";
  std::string past = action == "switchover" ? "switched" : "failed";
  auto waited = std::chrono::milliseconds(0);
  const auto step = std::chrono::milliseconds(100);
  while (waited < deps.poll_timeout) {
    deps.sleep(step);
    waited += step;
    auto c = deps.read_cluster();
    if (!c.ok()) continue;
    if (c->leader && c->leader->name != old_leader) {
      if (candidate.empty() || candidate == c->leader->name)
        return {200, "Successfully " + past + " over to \"" + c->leader->name + "\""};
      return {200, title(past) + " over to \"" + c->leader->name + "\" instead of \"" + candidate + "\""};
    }
    bool pending = c->failover && c->failover->is_object() &&
                   (!c->failover->value("member", "").empty() || !c->failover->value("leader", "").empty());
    if (!pending) return {503, title(action) + " failed"};
  }
  return {503, title(action) + " status unknown"};
}

SwitchoverReply delete_switchover(const SwitchoverDeps& deps) {
  auto c = deps.read_cluster();
  if (!c.ok()) return {503, "DCS is not accessible: " + c.status().message()};
  if (!c->failover || !c->failover->is_object() || c->failover->value("scheduled_at", "").empty())
    return {404, "no switchover is scheduled"};
  if (auto st = deps.write_failover("{}", c->failover_index); !st) return {409, "Could not delete scheduled switchover"};
  if (deps.wake_ha) deps.wake_ha();
  return {200, "scheduled switchover deleted"};
}

}  // namespace pgwarden::api
