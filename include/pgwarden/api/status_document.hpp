#pragma once
// Patroni's status document (GET /patroni and health GETs) and the health-check status-code
// rules, as pure functions of the published node view and a fresh PostgreSQL reading.
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>

#include "pgwarden/ha/node_view.hpp"
#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::api {

// `pg` is nullopt when PostgreSQL could not be queried.
nlohmann::json build_status_document(const ha::NodeView& view, const std::optional<postgres::PgState>& pg);

// True when the document says replica and the DCS `sync` key lists this node (Patroni's
// `sync_standby` field and the /sync, /async rules).
bool is_sync_standby(const ha::NodeView& view, const nlohmann::json& status_document);

// Status code for GET/HEAD/OPTIONS on `path` (no query string) with `query` params, by
// Patroni 3.0.2's rules (substring match on the path, tag_* filters, ?lag=).
int health_status_code(const std::string& path, const std::map<std::string, std::string>& query,
                       const ha::NodeView& view, const nlohmann::json& status_document);

// /liveness and /readiness (status line only).
int liveness_status_code(const ha::NodeView& view, double now_epoch);
int readiness_status_code(const ha::NodeView& view, double now_epoch);

// "16kB", "64MB", "1GB", "1000" -> bytes; nullopt when unparseable.
std::optional<int64_t> parse_size(const std::string& text);

}  // namespace pgwarden::api
