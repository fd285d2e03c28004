#pragma once
// Internal (src/postgres only): short-lived libpq connections with explicit keyword/value
// parameters, for the modules that need rows back (slots, rewind). Same parameters as
// connection.cpp uses for the local superuser connection.
#include <libpq-fe.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::postgres::pq {

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;
using Params = std::vector<std::pair<std::string, std::string>>;

// Unavailable with libpq's message (which never contains the password) on failure.
Result<ConnPtr> connect(const Params& params);

// The local superuser connection of `pg`: socket directory or address, port, password,
// superuser extra keywords, connect_timeout=3.
Params local_superuser_params(const Postgres& pg);

bool ok(PGresult* r);
// Only the primary message: the full text can quote the statement.
std::string error(PGresult* r);

// Runs `sql` with text parameters; Failed with the server's message when it fails.
Result<ResultPtr> exec(PGconn* c, const std::string& sql, const std::vector<std::string>& args = {});

}  // namespace pgwarden::postgres::pq
