#pragma once
// The monitoring and dynamic-configuration endpoints' logic as pure functions: Patroni
// 3.0.2's cluster_as_json (GET /cluster), the Prometheus text of GET /metrics, patch_config
// (PATCH /config) and the checks a new dynamic configuration must pass.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "pgwarden/dcs/cluster.hpp"
#include "pgwarden/ha/node_view.hpp"
#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::api {

// GET /cluster: {scope, members: [...], pause?, scheduled_switchover?}; members sorted by name.
nlohmann::json cluster_as_json(const dcs::Cluster& cluster, const std::string& scope);

// GET /metrics body (Prometheus text format 0.0.4) from the node view and the status
// document of the same request.
std::string render_metrics(const ha::NodeView& view, const nlohmann::json& status_document);

// pgwarden's own metrics appended to GET /metrics: WAL archiving from pg_stat_archiver
// (archive_command failures show as pgwarden_postgres_archiver_failed_count), with the same
// labels as Patroni's. `pg` null (PostgreSQL not reachable): every value 0.
std::string render_archiver_metrics(const ha::NodeView& view, const postgres::PgState* pg);

// Patroni's patch_config: merges `patch` into `config` recursively; null deletes a key, a
// scalar replaces the old value when their text differs. True when `config` changed.
bool patch_config(nlohmann::json& config, const nlohmann::json& patch);

// Problems that make `doc` unusable as (part of) the dynamic configuration, one message
// each (e.g. "ttl: expected an integer between 1 and ..."); empty when acceptable.
std::vector<std::string> validate_dynamic_config(const nlohmann::json& doc);

// "2023-08-30 13:23:45.123456+00:00" (PostgreSQL / Python str(datetime)) or ISO 8601 with
// 'T' -> epoch seconds; nullopt when unparseable. Without a zone, UTC is assumed.
std::optional<double> timestamp_to_epoch(const std::string& text);

// An ISO 8601 timestamp as Python's datetime.isoformat() writes it after dateutil parsed
// it ("2016-01-14T10:09:57.1394Z" -> "2016-01-14T10:09:57.139400+00:00"); the input
// unchanged when it cannot be parsed.
std::string python_isoformat(const std::string& text);

}  // namespace pgwarden::api
