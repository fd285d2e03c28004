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
#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::api {

struct ServerDeps {
  const ha::NodeBoard* board = nullptr;
  // Returns a fresh reading, or nullopt if PostgreSQL is not reachable.
  std::function<std::optional<postgres::PgState>()> query_postgres;
};

class Server {
 public:
  Server(config::RestApiConfig cfg, ServerDeps deps);
  ~Server();
  // Binds restapi.listen and starts serving on a background thread. kUnavailable if the
  // address cannot be bound.
  Status start();
  void stop();
  int bound_port() const;  // the actual port (useful when listen port is 0)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwarden::api
