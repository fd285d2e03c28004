// The status document Patroni 3.0.2 serves on GET /patroni and on health-check GETs
// (reference section 3). Peers read it during leader races, so its shape must match.
#include "pgwarden/api/status_document.hpp"

#include <cstdint>
#include <string>

namespace pgwarden::api {

namespace {

// The version string peers and patronictl see; we stand in for this Patroni release.
constexpr const char* kPatroniVersion = "3.0.2";

bool cluster_unlocked(const ha::NodeView& view) {
  // Patroni: `not cluster or cluster.is_unlocked()`, and is_unlocked means no leader name.
  return !view.cluster || !view.cluster->leader || view.cluster->leader->name.empty();
}

// Sync standbys are a comma-separated list in the `sync` key (SyncState.members).
bool listed_as_sync_standby(const ha::NodeView& view) {
  if (!view.cluster || !view.cluster->sync || !view.cluster->sync->is_object()) return false;
  auto it = view.cluster->sync->find("sync_standby");
  if (it == view.cluster->sync->end() || !it->is_string()) return false;
  const std::string list = it->get<std::string>();
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos && item.substr(first, last - first + 1) == view.name) return true;
    start = comma + 1;
  }
  return false;
}

void add_postgres_fields(nlohmann::json& doc, const ha::NodeView& view, const postgres::PgState& pg) {
  doc["postmaster_start_time"] = pg.postmaster_start_time;
  if (pg.in_recovery) {
    // In a standby cluster Patroni reports its internal role for the standby leader.
    doc["role"] = view.role == "standby_leader" ? "standby_leader" : "replica";
  } else {
    doc["role"] = "master";
  }
  doc["server_version"] = pg.server_version;
  if (pg.in_recovery) {
    nlohmann::json ts = pg.replayed_timestamp ? nlohmann::json(*pg.replayed_timestamp) : nlohmann::json(nullptr);
    // Patroni falls back to the replayed position when nothing was received (restore_command).
    const int64_t received = pg.received_location != 0 ? pg.received_location : pg.replayed_location;
    doc["xlog"] = {{"received_location", received},
                   {"replayed_location", pg.replayed_location},
                   {"replayed_timestamp", ts},
                   {"paused", pg.replay_paused}};
  } else {
    doc["xlog"] = {{"location", pg.wal_position}};
  }
  if (doc["role"] == "replica" && listed_as_sync_standby(view)) doc["sync_standby"] = true;
  doc["timeline"] = pg.timeline;
  auto replication = nlohmann::json::parse(pg.replication_json, nullptr, false);
  if (replication.is_array() && !replication.empty()) doc["replication"] = std::move(replication);
}

}  // namespace

bool is_sync_standby(const ha::NodeView& view, const nlohmann::json& status_document) {
  return status_document.value("role", "") == "replica" && listed_as_sync_standby(view);
}

nlohmann::json build_status_document(const ha::NodeView& view, const std::optional<postgres::PgState>& pg) {
  nlohmann::json doc = nlohmann::json::object();
  if (pg) {
    doc["state"] = view.state;
    add_postgres_fields(doc, view, *pg);
  } else {
    // Patroni only calls the state "unknown" when it believed PostgreSQL was running.
    doc["state"] = view.state == "running" ? "unknown" : view.state;
    doc["role"] = view.role;
  }
  if (cluster_unlocked(view)) doc["cluster_unlocked"] = true;
  doc["dcs_last_seen"] = static_cast<int64_t>(view.dcs_last_seen);
  // Not a Patroni key: clients that do not know it ignore it.
  if (!view.problem.empty()) doc["problem"] = view.problem;
  if (view.tags.is_object() && !view.tags.empty()) doc["tags"] = view.tags;
  if (pg && !pg->system_identifier.empty()) doc["database_system_identifier"] = pg->system_identifier;
  if (view.pending_restart || (pg && pg->pending_restart)) doc["pending_restart"] = true;
  doc["patroni"] = {{"version", kPatroniVersion}, {"scope", view.scope}};
  if (view.paused) doc["pause"] = true;
  return doc;
}

}  // namespace pgwarden::api
