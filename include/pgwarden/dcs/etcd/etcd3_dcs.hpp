#pragma once
// The etcd v3 backend, with Patroni's key layout under <namespace>/<scope>/ so that a
// Patroni cluster and pgwarden see the same data. One lease of `ttl` seconds carries our
// member key and, while we lead, the leader key: when we stop renewing, both vanish.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/dcs/etcd/etcd_client.hpp"
#include "pgwarden/dcs/etcd/kv_cache.hpp"

namespace pgwarden::dcs::etcd {

struct Etcd3Options {
  std::vector<Endpoint> hosts;
  std::string username, password;
  std::string prefix;  // already normalised, ends with '/'
  std::string name;    // this member
  int ttl = 30;
  int loop_wait = 10;
  int retry_timeout = 10;
};

// Options from a Patroni-style config (hosts, namespace/scope, name, dynamic timings).
Etcd3Options etcd3_options_from(const config::Config& cfg);

class Etcd3Dcs final : public Dcs {
 public:
  // How long a leader's watch lets the replicas' answers to its status write gather (watch()),
  // with room: each replica wakes on the status event, pauses 20 ms, runs a cycle and writes
  // its member key.
  static constexpr auto kMemberAnswerWindow = std::chrono::milliseconds(100);

  explicit Etcd3Dcs(Etcd3Options opts);
  ~Etcd3Dcs() override = default;

  Result<Cluster> load_cluster() override;
  Result<SharedCluster> load_shared_cluster() override;
  Result<Cluster> peek_cluster() override;
  Status touch_member(const nlohmann::json& data) override;
  Status keep_member_alive() override;
  Status attempt_to_acquire_leader() override;
  Status update_leader(std::optional<int64_t> last_lsn) override;
  Status delete_leader(std::optional<int64_t> last_lsn) override;
  Status initialize(bool create_new, const std::string& sysid) override;
  Status cancel_initialization() override;
  Status set_config_value(const std::string& json, std::optional<int64_t> index) override;
  Status set_history_value(const std::string& json) override;
  Status set_failover_value(const std::string& json, std::optional<int64_t> index) override;
  void set_ttl(int ttl_seconds) override;
  void set_retry_timeout(int seconds) override;
  void set_loop_wait(int seconds) override;
  void before_sleep(std::chrono::milliseconds sleep) override;
  bool watch(std::chrono::milliseconds timeout) override;
  void wake() override;
  void close() override;
  std::string initialize_location() const override { return "etcd key " + prefix_ + "initialize"; }

  // Beyond the Dcs interface (used by tests and tools).
  Status set_sync_state_value(const std::string& json, std::optional<int64_t> index);
  const std::string& prefix() const { return prefix_; }
  int64_t lease_id() const;
  // load_cluster() answers from the watch-fed cache (else it reads etcd).
  bool serves_from_cache() const;

 private:
  std::string key(const char* rel) const { return prefix_ + rel; }
  std::string member_key() const { return prefix_ + "members/" + name_; }
  // Keeps our lease alive, granting a new one if there is none or it expired. Without
  // `force`, a lease refreshed recently enough to outlive one more loop plus retry_timeout is
  // trusted as is. Caller holds mu_.
  Status refresh_lease_locked(bool force);
  // Whether refresh_lease_locked(false) would send a keep-alive now. Caller holds mu_.
  bool lease_refresh_due_locked(Clock::time_point now) const;
  // How long after a keep-alive a member's lease is trusted without another. Caller holds mu_.
  std::chrono::milliseconds lease_trusted_locked() const;
  // The keep-alive of a leader, or of a member whose lease is due, goes out as soon as its
  // view is loaded, and etcd answers it while the HA cycle queries PostgreSQL: the renewal
  // (update_leader, touch_member) then takes that answer instead of sending and waiting
  // again (one wait for both round trips). Caller holds mu_.
  // `valid_for`: how long after it went out its answer still stands for a renewal.
  void start_early_keepalive_locked(Clock::duration valid_for);
  // Whether a leader's keep-alive may go out before the sleep: its answer is then read a
  // sleep later, so a failure is known up to a loop later than with a keep-alive sent on
  // waking. Only where that still leaves retry_timeout to demote before the lease runs out.
  bool presleep_keepalive_safe_locked() const;
  // Takes the answer of the early keep-alive, if one is out. `renewed`: it kept the lease
  // alive recently enough to stand for a keep-alive sent now (last_refresh_ and
  // keepalive_revision_ are set as refresh_lease_locked sets them); otherwise a keep-alive
  // of the usual kind is due, within `budget` (what is left of the early one's retry_timeout).
  struct EarlyKeepAlive {
    bool renewed = false;
    Clock::time_point budget{};
    Status failure = Status::Ok();  // why it did not renew, when it failed
  };
  // `cap`: give up waiting for the answer by then (a leader's decision deadline).
  std::optional<EarlyKeepAlive> settle_early_keepalive_locked(std::optional<Clock::time_point> cap = std::nullopt);
  // By when a leader must know whether it can keep its lock: the lease, counted from the
  // last keep-alive that kept it, then still leaves retry_timeout to demote. Every etcd call
  // a leader waits on gives up by then, so that a DCS that stops answering after a renewal
  // cannot hold the cycle (a status write, the member key, the next renewal) past the point
  // where demoting in time is still possible. Past that moment, a call gets a short try
  // (kLateLeaderCall) rather than none. Caller holds mu_.
  Clock::time_point leader_decision_deadline_locked() const;
  // That deadline for a call made while we hold the leader key on our lease, or while
  // `renewing` it; nullopt (the usual retry_timeout) otherwise. Caller holds mu_.
  std::optional<Clock::time_point> leader_wait_limit_locked(bool renewing) const;
  // Writes the status document (unless it already says `lsn`); a pending one is then done.
  Status write_status_locked(int64_t lsn, std::optional<Clock::time_point> deadline);
  // A leader that wrote its status hears the echo, then each replica's member key (the
  // replicas wake on a status change and write their new WAL position): see watch().
  void expect_member_answers_locked();
  // Writes the status update_leader left pending, if we still lead on our lease.
  void flush_status_locked();
  Status put_cas(const char* rel, const std::string& value, std::optional<int64_t> index);
  // Feeds a piece of the watch stream to the cache. `wake`: a change should wake the HA
  // loop; `broken`: etcd ended or cancelled the watch, so the cache may have missed events.
  struct WatchNews {
    bool wake = false, broken = false;
  };
  WatchNews take_watch_data(std::string_view chunk);
  // Applies what the watch stream has already delivered, without waiting (HA thread only).
  void drain_watch();

  EtcdClient client_;
  const std::string prefix_;
  const std::string name_;

  mutable std::mutex mu_;  // lease and cached state; held across the calls that use them
  int ttl_;
  int loop_wait_;
  int retry_timeout_;
  int64_t lease_ = 0;
  Clock::time_point last_refresh_{};
  int64_t keepalive_revision_ = 0;         // store revision the last keep-alive reported
  // Sent by load_cluster() or, for the next cycle, by before_sleep().
  std::optional<EtcdClient::PendingKeepAlive> early_keepalive_;
  int64_t early_lease_ = 0;                // the lease it keeps alive
  Clock::duration early_valid_for_{};      // its answer stands for a renewal this long after sending
  bool early_from_sleep_ = false;          // sent by before_sleep(), for the cycle after the sleep
  bool keepalives_before_sleep_ = false;   // the HA loop calls before_sleep(): due keep-alives go out then
  std::shared_ptr<const Cluster> cluster_; // last load_cluster(), with our own writes since
  int64_t view_revision_ = 0;              // revision that view is complete up to
  std::optional<int64_t> last_status_;     // optime of the last status document we wrote
  std::optional<int64_t> pending_status_;  // optime update_leader confirmed, not yet written
  // We may have put the leader key on our lease (acquired or renewed it, and neither released
  // nor lost it since): keep_member_alive() must not renew that lease.
  bool leader_on_lease_ = false;
  // Until then the watch lets what arrives wait (watch()); set by expect_member_answers_locked.
  Clock::time_point watch_rest_until_{};

  // The cluster prefix as etcd last reported it. `cache_live_`: the open watch stream started
  // right after the range read that filled it, so the cache is complete and load_cluster()
  // answers from it. Any end of that stream ends this: the next load reads etcd again (etcd
  // may have been replaced, or compacted what the stream missed). `cache_fresh_`: filled by
  // a range read that no stream has continued yet.
  KvCache cache_;
  bool cache_live_ = false;
  bool cache_fresh_ = false;

  // Set by wake() and set_ttl() from any thread; the watch sleeps on it.
  util::WakeSignal wake_;

  // The watch stream, kept open across HA cycles (used by the HA loop's thread only): one
  // etcd watcher and one connection for the daemon's life instead of one per cycle.
  HttpStream watch_stream_;
  JsonObjectStream watch_messages_;  // a message may span reads
};

}  // namespace pgwarden::dcs::etcd
