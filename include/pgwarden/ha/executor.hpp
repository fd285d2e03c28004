#pragma once
// Performs a Decision's actions against the DCS and PostgreSQL, in order, stopping at the
// first failure. The only HA code that does I/O besides the loop that feeds it.
#include <string>

#include "pgwarden/config/config.hpp"
#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/ha/decision.hpp"
#include "pgwarden/ha/snapshot.hpp"
#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/callbacks.hpp"

namespace pgwarden::ha {

struct Outcome {
  Status status;               // first failure, or Ok
  bool holds_lock = false;     // we own the leader key after these actions
  bool fatal = false;          // the daemon must exit (failed bootstrap), as Patroni does
  bool bootstrap_failed = false;
};

class Executor {
 public:
  Executor(const config::Config& cfg, dcs::Dcs& dcs, postgres::Postgres& pg, util::CallbackExecutor& callbacks)
      : cfg_(cfg), dcs_(dcs), pg_(pg), callbacks_(callbacks) {}

  Outcome execute(const Decision& d, const Snapshot& s);

  // Current Patroni-style postgres state string (running, starting, initializing new
  // cluster, ...), updated while actions run.
  const std::string& pg_state_hint() const { return state_hint_; }

 private:
  Status bootstrap(const Snapshot& s, Outcome& out);
  Status start(bool as_primary, const Snapshot& s);
  Status promote(const Snapshot& s);
  Status demote(const Snapshot& s);
  nlohmann::json parameters_for(bool as_primary, const Snapshot& s) const;
  std::vector<std::string> pg_hba(const Snapshot& s) const;
  std::chrono::milliseconds start_timeout(const Snapshot& s) const;

  const config::Config& cfg_;
  dcs::Dcs& dcs_;
  postgres::Postgres& pg_;
  util::CallbackExecutor& callbacks_;
  std::string state_hint_;
};

// primary_conninfo for following the member whose conn_url is given ("postgres://h:p/db").
std::string primary_conninfo(const config::Config& cfg, const std::string& leader_conn_url);

}  // namespace pgwarden::ha
