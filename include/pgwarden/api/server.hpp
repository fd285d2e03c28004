#pragma once
// The REST API server (Boost.Beast, HTTP/1.0 and 1.1, one thread pool of its own). It reads
// the latest NodeView and asks PostgreSQL for a fresh state per status request; it never
// calls into the HA loop.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "pgwarden/config/config.hpp"
#include "pgwarden/ha/node_view.hpp"
#include "pgwarden/ha/requests.hpp"
#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::api {

struct HttpRequest;   // router.hpp
struct HttpResponse;  // router.hpp

struct ServerDeps {
  const ha::NodeBoard* board = nullptr;
  // Returns a fresh reading, or nullopt if PostgreSQL is not reachable.
  std::function<std::optional<postgres::PgState>()> query_postgres;
  // A fresh read of the cluster from the DCS (GET /cluster, /config, /history and PATCH
  // /config). Unset: the last view the HA loop published is used.
  std::function<Result<dcs::Cluster>()> read_cluster = nullptr;
  // Writes the dynamic configuration (JSON text); with `index`, only if the config is
  // unchanged since that index (compare-and-set). Unset: PATCH/PUT /config answer 503.
  std::function<Status(const std::string& json, std::optional<int64_t> index)> write_config = nullptr;
  // Writes the failover key (POST /switchover, /failover; DELETE /switchover). Unset: 503.
  std::function<Status(const std::string& json, std::optional<int64_t> index)> write_failover = nullptr;
  // Wakes the local HA loop so it acts on a request at once.
  std::function<void()> wake_ha = nullptr;
  // Operator requests to the HA loop (POST/DELETE /restart, POST /reinitialize). Unset: 503.
  ha::RequestMailbox* requests = nullptr;
  // Re-reads the configuration file, as SIGHUP does (POST /reload). Unset: 503.
  std::function<void()> reload_config = nullptr;
};

class Server {
 public:
  // Answers one request; called on the server's worker threads, concurrently.
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // The Patroni REST API (restapi.*: listen, TLS, authentication) routed by api::Router.
  Server(config::RestApiConfig cfg, ServerDeps deps);
  // Another API on the same transport (plain HTTP): every request goes to `handler`; an
  // exception from it is a 500 with a JSON error. `name` prefixes the log lines.
  Server(config::HostPort listen, Handler handler, std::string name);
  ~Server();
  // Binds restapi.listen and starts serving on a background thread. kUnavailable if the
  // address cannot be bound.
  Status start();
  void stop();
  int bound_port() const;  // the actual port (useful when listen port is 0)
  // Reloads the certificate, key, CA and verify_client settings (SIGHUP, as Patroni does when
  // the chart's certificate secret rotates): new connections use them, open ones keep theirs.
  // On error the running settings stay. Switching between HTTP and HTTPS needs a restart.
  Status reload_tls(const config::RestApiConfig& cfg);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwarden::api
