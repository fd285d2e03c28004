#pragma once
// What the HA logic needs from a distributed configuration store, whatever the backend
// (etcd v3, Kubernetes). Every call is bounded by the retry_timeout given at construction
// and reports failure as a Status: kUnavailable when the store could not be reached,
// kConflict when another writer won, kInvalid for contents we refuse to trust.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "pgwarden/config/config.hpp"
#include "pgwarden/dcs/cluster.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::dcs {

class Dcs {
 public:
  virtual ~Dcs() = default;

  // Reads the whole cluster (one range read / list). Malformed values are skipped with a
  // warning rather than failing the read, as Patroni does.
  virtual Result<Cluster> load_cluster() = 0;
  // load_cluster() for the HA loop, shared rather than copied where the backend keeps the view
  // anyway (etcd's watch-fed cache).
  virtual Result<SharedCluster> load_shared_cluster() {
    auto c = load_cluster();
    if (!c.ok()) return c.status();
    return SharedCluster(std::move(*c));
  }

  // The same view for readers other than the HA loop (REST API, ctl): it changes nothing the
  // loop relies on (no cached decision basis, no watch bookkeeping). Thread-safe.
  virtual Result<Cluster> peek_cluster() = 0;

  // Publishes this member's data (JSON object) under members/<name>, bound to our session
  // so it disappears when we stop renewing.
  virtual Status touch_member(const nlohmann::json& data) = 0;

  // Keeps this member's key from expiring while the HA loop is busy with a long action (a
  // clone, a rewind, a standby start that must stream before it accepts connections), as
  // Patroni's loop keeps touching its member while its async executor works: without it the
  // key would expire after ttl and the leader would drop the replication slot the member is
  // about to stream from. Never renews a leader lock (a busy leader keeps the usual expiry);
  // callable from another thread than the HA loop's. Backends whose member data does not
  // expire (Kubernetes pods) do nothing.
  virtual Status keep_member_alive() { return Status::Ok(); }

  // Creates the leader key with our name only if absent, bound to a lease of `ttl`.
  // kConflict if somebody holds it.
  virtual Status attempt_to_acquire_leader() = 0;

  // Renews our leadership: keeps the lease alive and checks that the key still names us.
  // Also records `last_lsn` (status.optime) when given: at once, or (etcd) with the member key
  // the cycle writes next, at the latest by its sleep or the next call. kConflict if the key
  // is not ours.
  virtual Status update_leader(std::optional<int64_t> last_lsn) = 0;

  // Deletes the leader key if it is ours (after writing last_lsn when given).
  virtual Status delete_leader(std::optional<int64_t> last_lsn) = 0;

  // Writes the initialize key. create_new: only if absent (the bootstrap race).
  virtual Status initialize(bool create_new, const std::string& sysid) = 0;
  virtual Status cancel_initialization() = 0;

  // Writes the dynamic config; with `index`, only if unchanged since then (CAS).
  virtual Status set_config_value(const std::string& json, std::optional<int64_t> index) = 0;
  virtual Status set_history_value(const std::string& json) = 0;
  virtual Status set_failover_value(const std::string& json, std::optional<int64_t> index) = 0;

  // Changes the lease TTL used from now on (dynamic config changed).
  virtual void set_ttl(int ttl_seconds) = 0;
  virtual void set_retry_timeout(int seconds) = 0;
  virtual void set_loop_wait(int /*seconds*/) {}

  // Called by the HA loop just before it sleeps for `sleep` (at most loop_wait). A backend may
  // send now what the next cycle will need, so that the answer is waiting when the loop wakes
  // instead of costing it a second wait (etcd: the lease keep-alive, when the timings leave
  // room for it). Backends with nothing to send ahead do nothing.
  virtual void before_sleep(std::chrono::milliseconds /*sleep*/) {}

  // Blocks until something under the cluster prefix changes or `timeout` passes, or
  // wake() is called. Returns true if woken by a change.
  virtual bool watch(std::chrono::milliseconds timeout) = 0;
  virtual void wake() = 0;

  // Releases the session (lease) on clean shutdown so our member key goes at once.
  virtual void close() = 0;

  // Names where the `initialize` mark lives (key or object), for an operator who must
  // delete a leftover cluster state.
  virtual std::string initialize_location() const = 0;
};

// Builds the backend the config names (etcd3 or kubernetes). Invalid if none is configured.
Result<std::unique_ptr<Dcs>> make_dcs(const config::Config& cfg);

}  // namespace pgwarden::dcs
