// The backup API's routing table over a snapshot of the state.
#include <algorithm>
#include <cctype>

#include "pgwarden/backup/backup_api.hpp"

namespace pgwarden::backup {

using nlohmann::json;

namespace {

api::HttpResponse json_response(int status, const json& doc) {
  api::HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = dump_pretty(doc);
  return r;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

std::string location_of(const BackupRecord& b) { return "/backups/backup/" + b.label; }

const BackupRecord* running_backup(const std::vector<BackupRecord>& backups) {
  for (const auto& b : backups)
    if (b.status == BackupStatus::kRunning) return &b;
  return nullptr;
}

std::string not_primary_message(const RoleProbe& role) {
  if (role.role == RoleProbe::Role::kReplica) {
    std::string msg = "this member is a replica; backups run on the primary";
    if (!role.leader.empty()) msg += " (" + role.leader + ")";
    return msg;
  }
  std::string msg = "the role of this member cannot be determined";
  if (!role.detail.empty()) msg += " (" + role.detail + ")";
  return msg + "; backups run on the primary only";
}

api::HttpResponse list(const api::HttpRequest& req, const ApiSnapshot& s) {
  std::vector<const BackupRecord*> items;
  auto filter = req.query.find("status");
  for (const auto& b : s.backups)
    if (filter == req.query.end() || upper(filter->second) == status_name(b.status)) items.push_back(&b);
  std::sort(items.begin(), items.end(),
            [](const BackupRecord* a, const BackupRecord* b) { return a->label < b->label; });
  json out = json::array();
  for (const auto* b : items) out.push_back(render_summary(*b));
  return json_response(200, out);
}

}  // namespace

api::HttpResponse error_response(int status, const std::string& message) {
  return json_response(status, {{"error", message}});
}

api::HttpResponse started_response(const BackupRecord& b, double now) {
  if (b.status == BackupStatus::kRunning) {
    auto r = json_response(202, render_details(b, now));
    r.headers.emplace_back("Location", location_of(b));
    return r;
  }
  return json_response(b.status == BackupStatus::kFinished ? 200 : 500, render_details(b, now));
}

api::HttpResponse conflict_response(const BackupRecord& running) {
  auto r = error_response(409, "backup in progress");
  r.headers.emplace_back("Location", location_of(running));
  return r;
}

Routed route(const api::HttpRequest& req, const ApiSnapshot& s) {
  std::string path = req.path;
  const bool collection = path == "/backups" || path == "/backups/";
  const std::string prefix = "/backups/backup/";
  std::string key;
  if (path.rfind(prefix, 0) == 0) {
    key = path.substr(prefix.size());
    if (!key.empty() && key.back() == '/') key.pop_back();
  }
  if (!collection && key.empty()) return {error_response(404, "not found: " + req.path), std::nullopt};

  if (req.method == "GET") {
    if (collection) return {list(req, s), std::nullopt};
    const BackupRecord* b = find_backup(s.backups, key);
    if (!b) return {error_response(404, "no backup " + key), std::nullopt};
    return {json_response(200, render_details(*b, s.now)), std::nullopt};
  }
  if (req.method == "POST" && collection) {
    BackupRequest parsed = parse_backup_request(req.body);
    if (parsed.status != 0) return {error_response(parsed.status, parsed.error), std::nullopt};
    if (s.role.role != RoleProbe::Role::kPrimary)
      return {error_response(503, not_primary_message(s.role)), std::nullopt};
    if (const BackupRecord* running = running_backup(s.backups)) return {conflict_response(*running), std::nullopt};
    return {api::HttpResponse{}, parsed.type};
  }
  auto r = error_response(405, "method " + req.method + " not allowed on " + req.path);
  r.headers.emplace_back("Allow", collection ? "GET, POST" : "GET");
  return {r, std::nullopt};
}

}  // namespace pgwarden::backup
