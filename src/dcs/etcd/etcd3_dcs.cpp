#include "pgwarden/dcs/etcd/etcd3_dcs.hpp"

#include "pgwarden/dcs/etcd/cluster_builder.hpp"
#include "pgwarden/util/log.hpp"

namespace pgwarden::dcs::etcd {

using nlohmann::json;

namespace {

std::chrono::milliseconds seconds_ms(int s) { return std::chrono::milliseconds(int64_t{s} * 1000); }

// An early keep-alive stands for the renewal only if it went out this recently (one sent
// before the sleep: this long after the sleep's end): the lease then runs at most this much
// shorter than a keep-alive sent at renewal time would make it. (A cycle that spent longer
// between loading its view and renewing, say on a PostgreSQL that was slow to answer, sends a
// keep-alive of its own.)
constexpr auto kEarlyKeepAliveValid = std::chrono::milliseconds(500);

// What a leader's call to etcd still gets once the leader should already know whether it
// keeps its lock (leader_decision_deadline_locked).
constexpr auto kLateLeaderCall = std::chrono::milliseconds(250);

// The status key's document: {"optime": lsn}, as Patroni writes it.
std::string status_document(int64_t lsn) { return json{{"optime", lsn}}.dump(); }

// The key-value a txn's failure branch read back with op_range, if the key exists.
std::optional<KeyValue> ranged_kv(const TxnResult& t) {
  for (const auto& resp : t.responses) {
    auto it = resp.find("response_range");
    if (it == resp.end()) continue;
    auto kvs = decode_kvs(*it);
    if (!kvs.empty()) return kvs.front();
  }
  return std::nullopt;
}

}  // namespace

Etcd3Options etcd3_options_from(const config::Config& cfg) {
  Etcd3Options o;
  for (const auto& h : cfg.etcd3.hosts) o.hosts.push_back({h.host.empty() ? "127.0.0.1" : h.host, h.port});
  o.username = cfg.etcd3.username;
  o.password = cfg.etcd3.password;
  o.prefix = cluster_prefix(cfg.namespace_, cfg.scope);
  o.name = cfg.name;
  o.ttl = cfg.dynamic.ttl;
  o.loop_wait = cfg.dynamic.loop_wait;
  o.retry_timeout = cfg.dynamic.retry_timeout;
  return o;
}

Etcd3Dcs::Etcd3Dcs(Etcd3Options opts)
    : client_(std::move(opts.hosts), seconds_ms(opts.retry_timeout), std::move(opts.username), std::move(opts.password)),
      prefix_(std::move(opts.prefix)),
      name_(std::move(opts.name)),
      ttl_(opts.ttl),
      loop_wait_(opts.loop_wait),
      retry_timeout_(opts.retry_timeout),
      cache_(prefix_, name_) {}

int64_t Etcd3Dcs::lease_id() const {
  std::lock_guard lk(mu_);
  return lease_;
}

bool Etcd3Dcs::serves_from_cache() const {
  std::lock_guard lk(mu_);
  return cache_live_;
}

Result<Cluster> Etcd3Dcs::load_cluster() {
  auto c = load_shared_cluster();
  if (!c.ok()) return c.status();
  return **c;
}

Result<SharedCluster> Etcd3Dcs::load_shared_cluster() {
  drain_watch();
  std::unique_lock lk(mu_);
  flush_status_locked();  // left by a cycle that wrote no member key and did not sleep
  // One the last cycle sent before its sleep is this cycle's; one it sent with its view and
  // did not take (it did not renew) is settled now.
  if (!early_from_sleep_) {
    settle_early_keepalive_locked(leader_wait_limit_locked(false));
  }
  early_from_sleep_ = false;
  if (!cache_live_) {
    lk.unlock();
    auto r = client_.range_prefix(prefix_);
    if (!r.ok()) return r.status();
    // An open stream did not start right after this read, so it cannot continue it: the next
    // watch() opens one that does.
    watch_stream_.close();
    lk.lock();
    cache_.reset(r->kvs, r->revision);
    cache_fresh_ = true;
  }
  cluster_ = cache_.cluster();
  const Cluster& c = *cluster_;
  if (c.leader && c.leader->name == name_ && lease_ != 0 && c.leader->session != session_of(lease_))
    spdlog::warn("I am the leader but not owner of the lease");
  view_revision_ = cache_.revision();
  if (c.leader && c.leader->name != name_) leader_on_lease_ = false;  // another member holds it
  const bool leads_on_lease =
      c.leader && c.leader->name == name_ && lease_ != 0 && c.leader->session == session_of(lease_);
  if (!early_keepalive_ && (leads_on_lease || (lease_ != 0 && lease_refresh_due_locked(Clock::now()))))
    start_early_keepalive_locked(kEarlyKeepAliveValid);
  return SharedCluster(cluster_);
}

void Etcd3Dcs::start_early_keepalive_locked(Clock::duration valid_for) {
  auto p = client_.start_lease_keepalive(lease_);
  if (!p.ok()) {  // the renewal sends its own, with retries
    spdlog::debug("etcd: early keep-alive not sent: {}", p.status().message());
    return;
  }
  early_keepalive_ = std::move(*p);
  early_lease_ = lease_;
  early_valid_for_ = valid_for;
}

bool Etcd3Dcs::presleep_keepalive_safe_locked() const {
  // A keep-alive sent at S before the sleep and taken as the renewal on waking (up to a sleep
  // plus kEarlyKeepAliveValid later) is followed by the next one at the end of that cycle;
  // its failure is known a sleep later, or at its retry_timeout if that is later. The leader
  // then still has retry_timeout to demote before S + ttl when
  //   max(2 loop_wait + retry_timeout, loop_wait + 2 retry_timeout) <= ttl,
  // the second term being Patroni's own rule (10/2/4 and 30/10/10 both pass), with the same
  // kEarlyKeepAliveValid of slack a keep-alive sent with the view has.
  return std::max(2 * loop_wait_ + retry_timeout_, loop_wait_ + 2 * retry_timeout_) <= ttl_;
}

void Etcd3Dcs::before_sleep(std::chrono::milliseconds sleep) {
  std::lock_guard lk(mu_);
  flush_status_locked();  // a cycle that renewed its lock but wrote no member key
  keepalives_before_sleep_ = true;
  if (early_keepalive_ || lease_ == 0 || sleep <= std::chrono::milliseconds(0)) return;
  sleep = std::min(sleep, seconds_ms(loop_wait_));
  const auto now = Clock::now();
  bool send = false;
  if (leader_on_lease_) {
    send = presleep_keepalive_safe_locked();
  } else {
    // A member's lease: the keep-alive goes out at the end of the cycle in which it falls
    // due, give or take half a loop, and the next cycle takes its answer. Counted between
    // two such sends, that rounds to whole loops with half a loop of margin either way (a
    // lease trusted for two loops is kept alive every other cycle, not every cycle or every
    // third as timer jitter would have it). The check on waking then allows half a loop more
    // (lease_refresh_due_locked), so that it only catches a keep-alive that did not go out.
    send = now - last_refresh_ + seconds_ms(loop_wait_) / 2 >= lease_trusted_locked();
  }
  if (!send) return;
  start_early_keepalive_locked(sleep + kEarlyKeepAliveValid);
  early_from_sleep_ = early_keepalive_.has_value();
}

Clock::time_point Etcd3Dcs::leader_decision_deadline_locked() const {
  // Once that moment has passed, a call still gets a short try: enough for an etcd that
  // answers, so the leader learns the truth (its key taken, its lease gone) instead of
  // failing without asking, and too short to matter to one that does not.
  return std::max(last_refresh_ + seconds_ms(std::max(1, ttl_ - retry_timeout_)), Clock::now() + kLateLeaderCall);
}

std::optional<Clock::time_point> Etcd3Dcs::leader_wait_limit_locked(bool renewing) const {
  if ((!renewing && !leader_on_lease_) || lease_ == 0) return std::nullopt;
  return leader_decision_deadline_locked();
}

std::optional<Etcd3Dcs::EarlyKeepAlive> Etcd3Dcs::settle_early_keepalive_locked(std::optional<Clock::time_point> cap) {
  if (!early_keepalive_) return std::nullopt;
  EtcdClient::PendingKeepAlive pending = std::move(*early_keepalive_);
  early_keepalive_.reset();
  if (cap) pending.deadline = std::min(pending.deadline, *cap);
  EarlyKeepAlive out{false, pending.deadline};
  auto ka = client_.finish_lease_keepalive(pending);
  if (!ka.ok()) {
    spdlog::debug("etcd: early keep-alive failed: {}", ka.status().message());
    out.failure = ka.status();
    return out;
  }
  // An expired lease (TTL 0) or one replaced meanwhile: the usual refresh deals with it.
  if (ka->ttl <= 0 || early_lease_ != lease_) return out;
  last_refresh_ = pending.sent;
  keepalive_revision_ = ka->revision;
  out.renewed = Clock::now() - pending.sent < early_valid_for_;
  return out;
}

Result<Cluster> Etcd3Dcs::peek_cluster() {
  auto r = client_.range_prefix(prefix_);
  if (!r.ok()) return r.status();
  return build_cluster(r->kvs, prefix_);
}

std::chrono::milliseconds Etcd3Dcs::lease_trusted_locked() const {
  // Patroni keeps the lease alive every loop_wait. Where the TTL is long enough, a keep-alive
  // is skipped while the lease outlives the next loop plus a whole retry_timeout of trying.
  return std::max(seconds_ms(loop_wait_), seconds_ms(ttl_ - loop_wait_ - retry_timeout_));
}

bool Etcd3Dcs::lease_refresh_due_locked(Clock::time_point now) const {
  // With keep-alives sent before the sleep (before_sleep), one is due here only if that
  // did not happen: half a loop late.
  const auto late = keepalives_before_sleep_ ? seconds_ms(loop_wait_) / 2 : std::chrono::milliseconds(0);
  return lease_ == 0 || now - last_refresh_ >= lease_trusted_locked() + late;
}

Status Etcd3Dcs::refresh_lease_locked(bool force) {
  auto now = Clock::now();
  std::optional<Clock::time_point> budget;
  // A leader (renewing, or holding the key on this lease) waits no longer than its lease
  // leaves it time to demote.
  const auto cap = leader_wait_limit_locked(force);
  if (auto early = settle_early_keepalive_locked(cap)) {
    if (early->renewed) return Status::Ok();
    // retry_timeout counts from the early keep-alive: what it used up is gone.
    if (!early->failure.ok() && Clock::now() >= early->budget) return early->failure;
    budget = early->budget;
  }
  if (!force && !lease_refresh_due_locked(now)) return Status::Ok();
  if (cap) budget = budget ? std::min(*budget, *cap) : *cap;
  keepalive_revision_ = 0;
  if (lease_ != 0) {
    auto ka = client_.lease_keepalive(lease_, budget);
    if (!ka.ok()) return ka.status();
    if (ka->ttl <= 0) {
      spdlog::warn("etcd lease {} expired; granting a new one", lease_);
      lease_ = 0;
    } else {
      keepalive_revision_ = ka->revision;
    }
  }
  if (lease_ == 0) {
    auto id = client_.lease_grant(ttl_);
    if (!id.ok()) return id.status();
    lease_ = *id;
  }
  last_refresh_ = now;
  return Status::Ok();
}

Status Etcd3Dcs::touch_member(const json& data) {
  std::lock_guard lk(mu_);
  if (auto s = refresh_lease_locked(false); !s.ok()) return s;
  const std::string session = session_of(lease_);
  if (cluster_) {
    const Member* m = cluster_->member(name_);
    if (m && m->session == session && m->data == data) {
      flush_status_locked();
      return Status::Ok();
    }
  }
  Status s;
  if (pending_status_ && leader_on_lease_) {
    // A leader's member key changes with its WAL position, as the status does: both go in one
    // request (and reach the watchers as one event), not one after the other.
    auto t = client_.txn(json::array(),
                         json::array({EtcdClient::op_put(key(kStatusKey), status_document(*pending_status_)),
                                      EtcdClient::op_put(member_key(), data.dump(), lease_)}),
                         json::array(), leader_wait_limit_locked(false));
    s = t.ok() ? Status::Ok() : t.status();
    if (s.ok()) {
      last_status_ = pending_status_;
      expect_member_answers_locked();
    }
    pending_status_.reset();
  } else {
    s = client_.put(member_key(), data.dump(), lease_, leader_wait_limit_locked(false));
  }
  if (s.code() == Code::kNotFound) {
    spdlog::error("Our lease disappeared from etcd, can not touch_member");
    lease_ = 0;
  }
  if (!s.ok()) return s;
  if (cluster_) {  // so an unchanged second touch before the next load is skipped too
    auto view = std::make_shared<Cluster>(*cluster_);  // the cache's copy stays as etcd said
    Member* m = nullptr;
    for (auto& mm : view->members)
      if (mm.name == name_) m = &mm;
    if (!m) {
      view->members.push_back(Member{name_, 0, session, data});
    } else {
      m->session = session;
      m->data = data;
    }
    cluster_ = std::move(view);
  }
  return Status::Ok();
}

Status Etcd3Dcs::keep_member_alive() {
  std::lock_guard lk(mu_);
  // The leader key rides on the same lease: only the HA cycle renews a leader, so a leader
  // stuck in a long action still loses its lock after ttl.
  const bool view_says_leader = cluster_ && cluster_->leader && cluster_->leader->name == name_;
  if (lease_ == 0 || leader_on_lease_ || view_says_leader) return Status::Ok();
  return refresh_lease_locked(false);
}

Status Etcd3Dcs::attempt_to_acquire_leader() {
  std::lock_guard lk(mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto s = refresh_lease_locked(false); !s.ok()) return s;
    const std::string leader = key(kLeaderKey);
    auto t = client_.txn(json::array({EtcdClient::cmp_create_revision(leader, 0)}),
                         json::array({EtcdClient::op_put(leader, name_, lease_)}),
                         json::array({EtcdClient::op_range(leader)}));
    if (!t.ok()) {
      if (t.status().code() == Code::kNotFound && attempt == 0) {
        spdlog::error("Our lease disappeared from etcd; will get a new one and retry");
        lease_ = 0;
        continue;
      }
      return t.status();
    }
    if (t->succeeded) {
      leader_on_lease_ = true;
      return Status::Ok();
    }
    auto kv = ranged_kv(*t);
    spdlog::info("Could not take out TTL lock");
    return Status::Conflict("leader key is held by " + (kv ? kv->value : std::string("another member")));
  }
  return Status::Unavailable("could not obtain an etcd lease to acquire the leader key");
}

Status Etcd3Dcs::update_leader(std::optional<int64_t> last_lsn) {
  std::lock_guard lk(mu_);
  flush_status_locked();  // the last renewal's, if nothing wrote it since
  if (auto s = refresh_lease_locked(true); !s.ok()) return s;
  const std::string leader = key(kLeaderKey);
  // Usual case: the key names us and rides on our lease, which the keep-alive just renewed;
  // nothing to write. Patroni trusts its view for that. We do when etcd's revision at the
  // keep-alive is one the view is complete up to: nothing at all changed since the view, so
  // the key is still ours. Otherwise etcd is asked, atomically.
  const bool view_says_ours = cluster_ && cluster_->leader && cluster_->leader->name == name_ &&
                              cluster_->leader->session == session_of(lease_) && keepalive_revision_ > 0 &&
                              keepalive_revision_ <= view_revision_;
  const auto deadline = leader_decision_deadline_locked();
  TxnResult confirmed;
  confirmed.succeeded = true;
  Result<TxnResult> t = confirmed;
  if (!view_says_ours)
    t = client_.txn(json::array({EtcdClient::cmp_value(leader, name_), EtcdClient::cmp_lease(leader, lease_)}),
                    json::array(), json::array({EtcdClient::op_range(leader)}), deadline);
  if (!t.ok()) return t.status();
  if (!t->succeeded) {
    auto kv = ranged_kv(*t);
    if (kv && kv->value != name_) {
      leader_on_lease_ = false;
      return Status::Conflict("leader key is held by " + kv->value);
    }
    // Still ours but on another lease (the TTL changed or the lease was re-granted), or the
    // key just expired and nobody took it yet: rebind it to our lease, atomically.
    json cmp = kv ? json::array({EtcdClient::cmp_value(leader, name_)})
                  : json::array({EtcdClient::cmp_create_revision(leader, 0)});
    auto t2 = client_.txn(cmp, json::array({EtcdClient::op_put(leader, name_, lease_)}),
                          json::array({EtcdClient::op_range(leader)}), deadline);
    if (!t2.ok()) {
      if (t2.status().code() == Code::kNotFound) lease_ = 0;
      return t2.status();
    }
    if (!t2->succeeded) {
      auto other = ranged_kv(*t2);
      leader_on_lease_ = false;
      return Status::Conflict("leader key is held by " + (other ? other->value : std::string("nobody")));
    }
  }
  leader_on_lease_ = true;
  // Leadership is confirmed. The status goes out with the member key the cycle writes next
  // (touch_member), alone if that key has not changed, at the latest before the sleep; as
  // Patroni, not at all if the LSN has not moved. A lost status write only delays replicas'
  // view of it.
  if (last_lsn && last_status_ != *last_lsn) pending_status_ = *last_lsn;
  return Status::Ok();
}

Status Etcd3Dcs::write_status_locked(int64_t lsn, std::optional<Clock::time_point> deadline) {
  pending_status_.reset();
  if (last_status_ == lsn) return Status::Ok();  // as Patroni: no write (and no wake-ups) if unchanged
  auto s = client_.put(key(kStatusKey), status_document(lsn), 0, deadline);
  if (s.ok()) {
    last_status_ = lsn;
    expect_member_answers_locked();
  }
  return s;
}

void Etcd3Dcs::expect_member_answers_locked() {
  if (leader_on_lease_) watch_rest_until_ = Clock::now() + kMemberAnswerWindow;
}

void Etcd3Dcs::flush_status_locked() {
  if (!pending_status_) return;
  if (!leader_on_lease_) {  // leadership ended since: the status is no longer ours to write
    pending_status_.reset();
    return;
  }
  if (auto s = write_status_locked(*pending_status_, leader_wait_limit_locked(false)); !s.ok())
    spdlog::warn("could not write status: {}", s.message());
}

Status Etcd3Dcs::delete_leader(std::optional<int64_t> last_lsn) {
  std::lock_guard lk(mu_);
  if (last_lsn) {
    if (auto s = write_status_locked(*last_lsn, std::nullopt); !s.ok())
      spdlog::warn("could not write status: {}", s.message());
  } else {
    flush_status_locked();  // the last renewal's, if nothing wrote it since
  }
  const std::string leader = key(kLeaderKey);
  auto t = client_.txn(json::array({EtcdClient::cmp_value(leader, name_)}), json::array({EtcdClient::op_delete(leader)}),
                       json::array({EtcdClient::op_range(leader)}));
  if (!t.ok()) return t.status();
  if (!t->succeeded) {
    auto kv = ranged_kv(*t);
    if (kv) {
      leader_on_lease_ = false;
      return Status::Conflict("leader key is held by " + kv->value);
    }
  }
  leader_on_lease_ = false;
  if (cluster_ && cluster_->leader) {
    auto view = std::make_shared<Cluster>(*cluster_);
    view->leader.reset();
    cluster_ = std::move(view);
  }
  return Status::Ok();
}

Status Etcd3Dcs::initialize(bool create_new, const std::string& sysid) {
  const std::string k = key(kInitializeKey);
  if (!create_new) return client_.put(k, sysid);
  auto t = client_.txn(json::array({EtcdClient::cmp_create_revision(k, 0)}), json::array({EtcdClient::op_put(k, sysid)}),
                       json::array({EtcdClient::op_range(k)}));
  if (!t.ok()) return t.status();
  if (!t->succeeded) return Status::Conflict("cluster is already initialized (initialize key exists)");
  return Status::Ok();
}

Status Etcd3Dcs::cancel_initialization() { return client_.delete_key(key(kInitializeKey)); }

Status Etcd3Dcs::put_cas(const char* rel, const std::string& value, std::optional<int64_t> index) {
  const std::string k = key(rel);
  if (!index) return client_.put(k, value);
  auto t = client_.txn(json::array({EtcdClient::cmp_mod_revision(k, *index)}), json::array({EtcdClient::op_put(k, value)}));
  if (!t.ok()) return t.status();
  if (!t->succeeded) return Status::Conflict(k + " was modified since index " + std::to_string(*index));
  return Status::Ok();
}

Status Etcd3Dcs::set_config_value(const std::string& value, std::optional<int64_t> index) {
  return put_cas(kConfigKey, value, index);
}

Status Etcd3Dcs::set_history_value(const std::string& value) { return put_cas(kHistoryKey, value, std::nullopt); }

Status Etcd3Dcs::set_failover_value(const std::string& value, std::optional<int64_t> index) {
  return put_cas(kFailoverKey, value, index);
}

Status Etcd3Dcs::set_sync_state_value(const std::string& value, std::optional<int64_t> index) {
  return put_cas(kSyncKey, value, index);
}

void Etcd3Dcs::set_ttl(int ttl_seconds) {
  std::lock_guard lk(mu_);
  if (ttl_seconds == ttl_) return;
  ttl_ = ttl_seconds;
  // The old lease keeps our keys alive until it runs out; the next refresh grants one with
  // the new TTL and update_leader/touch_member rebind the keys to it. Run the HA loop
  // promptly so that happens well before the old lease expires.
  lease_ = 0;
  early_keepalive_.reset();
  early_from_sleep_ = false;
  wake_.set();
}

void Etcd3Dcs::set_retry_timeout(int seconds) {
  std::lock_guard lk(mu_);
  retry_timeout_ = seconds;
  client_.set_retry_timeout(seconds_ms(seconds));
}

void Etcd3Dcs::set_loop_wait(int seconds) {
  std::lock_guard lk(mu_);
  loop_wait_ = seconds;
}

void Etcd3Dcs::close() {
  std::lock_guard lk(mu_);
  flush_status_locked();
  early_keepalive_.reset();
  early_from_sleep_ = false;
  if (lease_ == 0) return;
  if (auto s = client_.lease_revoke(lease_); !s.ok() && s.code() != Code::kNotFound)
    spdlog::warn("could not revoke etcd lease {}: {}", lease_, s.message());
  lease_ = 0;
  cluster_.reset();
  cache_live_ = false;
}

}  // namespace pgwarden::dcs::etcd
