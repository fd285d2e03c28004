// Whether this member may run a backup: from the HA loop's NodeView in the daemon, from the
// local REST API (GET /patroni) in a sidecar.
#include <nlohmann/json.hpp>

#include "pgwarden/backup/service.hpp"
#include "pgwarden/ctl/http.hpp"

namespace pgwarden::backup {

namespace {

using Role = RoleProbe::Role;

RoleProbe from_role_name(const std::string& role) {
  RoleProbe p;
  if (role == "master" || role == "primary") {
    p.role = Role::kPrimary;
  } else if (role == "replica" || role == "standby_leader" || role == "standby-leader") {
    p.role = Role::kReplica;
  } else {
    p.detail = role.empty() ? "no role reported" : "role " + role;
  }
  return p;
}

}  // namespace

RoleProbe role_from_view(const ha::NodeView& view) {
  RoleProbe p = from_role_name(view.role);
  if (view.cluster && view.cluster->leader) p.leader = view.cluster->leader->name;
  // A member that says master without holding the lock is being demoted.
  if (p.role == Role::kPrimary && !view.is_leader) {
    p.role = Role::kUnknown;
    p.detail = "role master without the leader lock";
  }
  return p;
}

RoleProbe role_from_status(const std::string& body) {
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_object()) {
    RoleProbe p;
    p.detail = "the status document is not a JSON object";
    return p;
  }
  auto it = doc.find("role");
  return from_role_name(it != doc.end() && it->is_string() ? it->get<std::string>() : "");
}

RoleProbe probe_role_over_http(const std::string& api_url, std::chrono::milliseconds timeout) {
  ctl::HttpOptions options;
  options.timeout = timeout;
  options.tls.insecure = true;  // the local member's own certificate; the sidecar only reads its role
  auto res = ctl::request_member(api_url, "GET", "/patroni", std::nullopt, options);
  if (!res) {
    RoleProbe p;
    p.detail = "cannot reach " + api_url + ": " + res.status().message();
    return p;
  }
  RoleProbe p = role_from_status(res->body);
  if (p.role != Role::kReplica) return p;
  // The leader's name for the answer, best effort.
  auto cluster = ctl::request_member(api_url, "GET", "/cluster", std::nullopt, options);
  if (!cluster) return p;
  auto doc = nlohmann::json::parse(cluster->body, nullptr, false);
  if (!doc.is_object() || !doc.contains("members") || !doc["members"].is_array()) return p;
  for (const auto& m : doc["members"])
    if (m.is_object() && m.value("role", "") == "leader") p.leader = m.value("name", "");
  return p;
}

}  // namespace pgwarden::backup
