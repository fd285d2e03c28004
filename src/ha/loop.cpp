#include "pgwarden/ha/loop.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "pgwarden/ha/decide.hpp"
#include "pgwarden/ha/peer_status.hpp"
#include "pgwarden/ha/state_ahead.hpp"
#include "pgwarden/postgres/recovery.hpp"
#include "pgwarden/util/memory.hpp"
#include "pgwarden/version.hpp"

namespace pgwarden::ha {
namespace {

// Start-up pages are dropped once the member has settled (bootstrap or clone done, a few
// cycles run), then again now and then for code that ran in between (a failover, a restore).
constexpr auto kFirstPageRelease = std::chrono::seconds(30);
constexpr auto kPageReleaseInterval = std::chrono::minutes(10);

double epoch_now() {
  using namespace std::chrono;
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

HaLoop::HaLoop(config::Config cfg, util::Environment pg_env, util::Environment daemon_env,
               std::unique_ptr<dcs::Dcs> dcs, NodeBoard& board, RequestMailbox* requests)
    : cfg_(std::move(cfg)),
      pg_env_(std::move(pg_env)),
      dcs_(std::move(dcs)),
      board_(board),
      requests_(requests),
      pg_(cfg_, pg_env_),
      callbacks_(cfg_.postgresql.callbacks, std::move(daemon_env), cfg_.scope),
      executor_(cfg_, pg_env_, *dcs_, pg_, callbacks_),
      dyn_(cfg_.dynamic) {
  executor_.set_stop_check([this] { return stop_.load(); });
  // Who we are is known before the first cycle ends, and never changes (a reload keeps it): a
  // REST reader during a long first action (a clone, a standby start) gets our name and scope
  // (GET /cluster reads the DCS afresh and names the scope from the view).
  board_.update([this](NodeView& v) {
    v.name = cfg_.name;
    v.scope = cfg_.scope;
  });
}

HaLoop::~HaLoop() = default;

void HaLoop::request_stop() {
  stop_ = true;
  dcs_->wake();
}

void HaLoop::request_reload(config::Config cfg) {
  {
    std::lock_guard<std::mutex> l(reload_mu_);
    pending_reload_ = std::move(cfg);
  }
  dcs_->wake();
}

void HaLoop::apply_pending_reload() {
  std::optional<config::Config> next;
  {
    std::lock_guard<std::mutex> l(reload_mu_);
    next.swap(pending_reload_);
  }
  if (!next) return;
  // Identity and placement never change under a running daemon.
  next->name = cfg_.name;
  next->scope = cfg_.scope;
  next->postgresql.data_dir = cfg_.postgresql.data_dir;
  cfg_ = std::move(*next);
  pg_.set_config(cfg_);
  callbacks_.set_commands(cfg_.postgresql.callbacks);
  merged_config_index_ = -1;  // merge the DCS configuration into the new local one
  ++config_generation_;
  spdlog::info("{}: configuration reloaded", cfg_.name);
  // decide() has the files rewritten (with the recovery settings a replica needs) and
  // PostgreSQL reloaded, as Patroni does on SIGHUP.
  reload_requested_ = true;
}

const nlohmann::json& HaLoop::effective_parameters() {
  if (effective_for_ != config_generation_ || !effective_parameters_) {
    effective_parameters_ = config::effective_parameters(cfg_, dyn_);
    effective_for_ = config_generation_;
  }
  return *effective_parameters_;
}

bool HaLoop::config_stale() {
  const std::pair<uint64_t, uint64_t> asked_for{config_generation_, executor_.config_writes()};
  if (stale_asked_for_ != asked_for) {
    stale_ = executor_.config_stale(dyn_, effective_parameters());
    stale_asked_for_ = asked_for;
  }
  return stale_;
}

LocalPostgres HaLoop::read_local(std::optional<postgres::PgState>* state,
                                 std::optional<std::chrono::milliseconds> accept_ahead) {
  LocalPostgres l;
  l.running = pg_.is_running();
  // A live postmaster owns an initialized directory: no need to look for PG_VERSION.
  l.initialized = l.running || pg_.is_initialized();
  l.data_dir_empty = !l.initialized && pg_.data_directory_empty();  // PG_VERSION is in it
  if (l.running) {
    auto st = pg_.query_state(accept_ahead);
    if (st) {
      l.query_ok = true;
      l.in_recovery = st->in_recovery;
      l.wal_position = st->wal_position;
      l.timeline = st->timeline;
      l.server_version = st->server_version;
      l.postmaster_start_time = st->postmaster_start_time;
      l.pending_restart = st->pending_restart;
      l.physical_slots = st->physical_slots;
      if (!st->system_identifier.empty()) l.sysid = st->system_identifier;
      *state = std::move(*st);
    }
  }
  if (l.running) {
    // Options on the postmaster command line (max_connections, wal_level, ...) change only
    // with a restart; pg_settings cannot tell, postmaster.opts can. The answer stands while
    // the postmaster (its start time) and the configuration stay the same.
    const std::string asked_for = l.postmaster_start_time + "@" + std::to_string(config_generation_);
    if (l.postmaster_start_time.empty() || asked_for != cmdline_asked_for_) {
      cmdline_changes_ = pg_.command_line_changes(effective_parameters());
      cmdline_asked_for_ = asked_for;
    }
    const auto& changed = cmdline_changes_;
    if (!changed.empty()) {
      l.pending_restart = true;
      std::string names;
      for (const auto& n : changed) names += (names.empty() ? "" : ", ") + n;
      if (names != pending_cmdline_logged_) spdlog::info("{}: changed {} (restart required)", cfg_.name, names);
      pending_cmdline_logged_ = names;
    } else {
      pending_cmdline_logged_.clear();
    }
  }
  // pg_controldata only when SQL cannot tell (it is a process per call).
  if (l.initialized && !l.query_ok) {
    auto control = postgres::read_control_data(cfg_, pg_env_);
    l.sysid = control.system_identifier;
    l.former_primary = control.was_primary();
    if (l.timeline == 0) l.timeline = control.timeline;
  }
  return l;
}

namespace {

// PostgreSQL needs a restart for a setting: by our own comparison or by its own word.
bool restart_pending(const LocalPostgres& local, const std::optional<postgres::PgState>& st) {
  return local.pending_restart || (st && st->pending_restart);
}

}  // namespace

std::string HaLoop::api_url() const {
  std::string api = cfg_.restapi.connect_address.empty() ? cfg_.restapi.listen.to_string()
                                                           : cfg_.restapi.connect_address;
  return (cfg_.restapi.certfile.empty() ? "http://" : "https://") + api + "/patroni";
}

nlohmann::json HaLoop::member_data(const LocalPostgres& local, const std::optional<postgres::PgState>& st,
                                   const std::string& role) const {
  nlohmann::json d = {{"conn_url", pg_.connection_url()},
                      {"api_url", api_url()},
                      {"state", "stopped"},
                      {"role", role},
                      {"version", kPatroniCompatVersion}};
  if (local.running && local.query_ok) {
    d["state"] = "running";
    d["xlog_location"] = local.wal_position;
    if (local.timeline > 0) d["timeline"] = local.timeline;
  } else if (local.running) {
    d["state"] = "starting";
  } else {
    d["state"] = "stopped";
  }
  if (!cfg_.tags_json.empty()) d["tags"] = cfg_.tags_json;
  // As Patroni: `patronictl pause --wait` looks for it in every member's data.
  if (dyn_.pause) d["pause"] = true;
  if (restart_pending(local, st)) d["pending_restart"] = true;
  if (requests_) {
    if (auto sr = requests_->scheduled_restart()) d["scheduled_restart"] = scheduled_restart_json(*sr, false);
  }
  return d;
}

const nlohmann::json& HaLoop::member_document(const LocalPostgres& local, const std::optional<postgres::PgState>& st,
                                              const std::string& role) {
  const bool scheduled = requests_ && requests_->scheduled_restart();
  MemberDocumentInputs in;
  in.running = local.running;
  in.query_ok = local.query_ok;
  in.pause = dyn_.pause;
  in.pending_restart = restart_pending(local, st);
  in.wal_position = local.wal_position;
  in.timeline = local.timeline;
  in.role = role;
  in.config_generation = config_generation_;
  // A scheduled restart is rare: its document is built every time.
  if (scheduled || !member_document_for_ || !(*member_document_for_ == in)) {
    member_document_ = member_data(local, st, role);
    if (scheduled) member_document_for_.reset();
    else member_document_for_ = std::move(in);
  }
  return member_document_;
}

void HaLoop::publish(const Snapshot& s, const Decision& d, const std::optional<postgres::PgState>& st,
                     std::shared_ptr<const dcs::Cluster> cluster) {
  if (url_generation_ != config_generation_) {
    api_url_ = api_url();
    conn_url_ = pg_.connection_url();
    url_generation_ = config_generation_;
  }
  // In place: assigning an equal string reuses its buffer, so an idle cycle allocates nothing
  // here (a new view every cycle did, and freed the old one).
  board_.update([&](NodeView& v) {  // name and scope: set once, in the constructor
    v.state = s.pg.running ? (s.pg.query_ok ? "running" : "starting") : "stopped";
    v.role = role_;
    v.is_leader = was_leader_;
    v.cluster = std::move(cluster);
    v.dcs_last_seen = dcs_last_seen_;
    v.paused = dyn_.pause;
    v.ttl = dyn_.ttl;
    v.loop_wait = dyn_.loop_wait;
    v.next_scheduled_run = next_run_;
    if (v.tags != cfg_.tags_json) v.tags = cfg_.tags_json;
    v.api_url = api_url_;
    v.conn_url = conn_url_;
    v.pending_restart = restart_pending(s.pg, st);
    v.last_decision = d.reason;
    v.problem = d.problem;
  });
}

void HaLoop::cycle() {
  const uint64_t generation_before = config_generation_;
  apply_pending_reload();
  Snapshot s;
  s.me = cfg_.name;
  s.now = epoch_now();
  s.initialize_location = dcs_->initialize_location();
  auto cluster = dcs_->load_shared_cluster();
  s.dcs_ok = cluster.ok();
  if (cluster) {
    s.cluster = std::move(*cluster);
    dcs_last_seen_ = s.now;
    // The same config key (same index) merged into the same local configuration gives the
    // same result: merge again only when either changed.
    if (s.cluster->config && (s.cluster->config_index == 0 || s.cluster->config_index != merged_config_index_)) {
      std::vector<std::string> errors;
      auto dyn = config::merge_dynamic(cfg_.dynamic, *s.cluster->config, &errors);
      for (const auto& e : errors) spdlog::warn("ignoring invalid dynamic configuration: {}", e);
      if (dyn.ttl != dyn_.ttl) dcs_->set_ttl(dyn.ttl);
      if (dyn.retry_timeout != dyn_.retry_timeout) dcs_->set_retry_timeout(dyn.retry_timeout);
      if (dyn.loop_wait != dyn_.loop_wait) dcs_->set_loop_wait(dyn.loop_wait);
      dyn_ = dyn;
      merged_config_index_ = s.cluster->config_index;
      ++config_generation_;
    }
  } else {
    spdlog::error("{}: DCS is not accessible: {}", cfg_.name, cluster.status().message());
  }
  // The answer to a query sent before the sleep stands only in a steady cluster.
  const bool switchover_requested = s.cluster->failover && s.cluster->failover->is_object() &&
                                    (!s.cluster->failover->value("member", "").empty() ||
                                     !s.cluster->failover->value("leader", "").empty());
  CycleStart start;
  start.sent_ahead = sent_ahead_;
  start.woke_on_timer = woke_on_timer_;
  start.dcs_ok = s.dcs_ok;
  const std::string view_leader = s.dcs_ok && s.cluster->leader ? s.cluster->leader->name : "";
  start.leader_unchanged = s.dcs_ok && last_view_leader_ == view_leader;
  start.failover_requested = switchover_requested;
  start.requests_pending = requests_ && requests_->has_pending();
  start.reload_requested = reload_requested_;
  start.config_changed = config_generation_ != generation_before;
  sent_ahead_ = false;
  woke_on_timer_ = false;
  if (s.dcs_ok) last_view_leader_ = view_leader;
  else last_view_leader_.reset();
  std::optional<postgres::PgState> st;
  s.pg = read_local(&st, state_ahead_window(start, dyn_.loop_wait));
  // Register at once on our first cycle, so the leader keeps the slot a base backup is about
  // to create for us; later cycles refresh the key after acting.
  // (On Kubernetes our pod is a member from the start, with no data until we write it.)
  if (s.dcs_ok && (!s.cluster->member(cfg_.name) || s.cluster->member(cfg_.name)->conn_url().empty())) {
    if (auto ts = dcs_->touch_member(member_data(s.pg, st, role_)); !ts)
      spdlog::warn("{}: could not register the member key: {}", cfg_.name, ts.message());
  }
  s.dyn = dyn_;
  s.nofailover = cfg_.tags.count("nofailover") && cfg_.tags.at("nofailover") == "true";
  s.was_leader = was_leader_;
  s.bootstrap_allowed = bootstrap_allowed_;
  s.following = executor_.following();
  s.use_pg_rewind = cfg_.postgresql.use_pg_rewind.value_or(dyn_.use_pg_rewind);
  s.remove_data_on_rewind_failure = cfg_.postgresql.remove_data_directory_on_rewind_failure;
  s.rewind_failed = executor_.rewind_failed();
  s.replica_creation_failed = s.now < executor_.replica_retry_after();
  s.reload_requested = reload_requested_;
  reload_requested_ = false;
  s.config_stale = s.pg.running && config_stale();
  if (requests_) {
    s.requests = requests_->take();
    s.scheduled_restart = requests_->scheduled_restart();
  }
  for (const auto& [name, method] : cfg_.postgresql.replica_methods)
    s.can_clone_without_leader = s.can_clone_without_leader || method.no_master;
  // A leader with a switchover request asks the candidate(s) how far they are.
  if (s.dcs_ok && switchover_requested && s.cluster->leader && s.cluster->leader->name == s.me && s.pg.query_ok &&
      !s.pg.in_recovery) {
    std::string candidate = s.cluster->failover->value("member", "");
    std::vector<dcs::Member> others;
    for (const auto& m : s.cluster->members)
      if (m.name != s.me && (candidate.empty() || m.name == candidate)) others.push_back(m);
    s.peers = fetch_peer_statuses(others, std::chrono::seconds(2), peer_tls_options(cfg_));
    s.peers_fetched = true;
  }
  // A leader race: ask the others over their REST APIs how far they are.
  if (s.dcs_ok && !s.cluster->leader && s.pg.running && s.pg.query_ok && !s.nofailover && !s.dyn.pause) {
    std::vector<dcs::Member> others;
    for (const auto& m : s.cluster->members)
      if (m.name != s.me) others.push_back(m);
    s.peers = fetch_peer_statuses(others, std::chrono::seconds(2), peer_tls_options(cfg_));
    s.peers_fetched = true;
  }

  Decision d = decide(s);
  if (!d.problem.empty()) {
    if (d.reason != last_reason_) spdlog::error("{}: {}", cfg_.name, d.reason);
  } else if (d.reason != last_reason_ || !std::all_of(d.actions.begin(), d.actions.end(), routine_upkeep)) {
    spdlog::info("{}: {}", cfg_.name, d.reason);
  }
  last_reason_ = d.reason;
  // Answers known before acting (refusals, "reinitialize started") go out at once.
  std::vector<uint64_t> answered;
  if (requests_) {
    for (const auto& [id, reply] : d.replies) {
      spdlog::info("{}: operator request answered {}: {}", cfg_.name, reply.status, reply.body);
      requests_->complete(id, reply);
      answered.push_back(id);
    }
    if (d.restart_request) answered.push_back(d.restart_request);
    for (const auto& r : s.requests)
      if (std::find(answered.begin(), answered.end(), r.id) == answered.end())
        requests_->complete(r.id, {503, "request not handled: " + d.reason});
  }
  const bool long_action = std::any_of(d.actions.begin(), d.actions.end(), [](Action a) {
    switch (a) {
      case Action::kBootstrap: case Action::kCreateReplica: case Action::kReclone: case Action::kReinitialize:
      case Action::kRewind: case Action::kStartPrimary: case Action::kStartReplica: case Action::kRestart:
        return true;
      default:
        return false;
    }
  });
  heartbeat_loop_wait_ = dyn_.loop_wait;
  if (long_action) {
    // A member that is not the leader keeps its key while it clones, rewinds or starts, so
    // the leader keeps the slot it will stream from (a standby start can wait for that very
    // stream). A leader's lock is renewed by its cycles only.
    const bool leader_is_me = s.dcs_ok && s.cluster->leader && s.cluster->leader->name == cfg_.name;
    keep_member_alive_ = s.dcs_ok && !was_leader_ && !leader_is_me;
    {
      std::lock_guard<std::mutex> l(heartbeat_mu_);
      long_action_ = true;
    }
    heartbeat_cv_.notify_all();
  }
  Outcome out = executor_.execute(d, s);
  long_action_ = false;
  keep_member_alive_ = false;
  if (requests_ && d.drop_scheduled_restart && s.scheduled_restart)
    requests_->clear_scheduled_restart(s.scheduled_restart->at);
  if (requests_ && d.restart_request) {
    RequestReply reply{503, "restart failed"};
    if (out.restart_status && out.restart_status->ok()) reply = {200, "restarted successfully"};
    else if (out.restart_status && out.restart_status->code() == Code::kUnavailable) reply = {503, "postgres is still starting"};
    spdlog::info("{}: restart request answered {}: {}", cfg_.name, reply.status, reply.body);
    requests_->complete(d.restart_request, reply);
  }
  was_leader_ = out.holds_lock;
  // Readers (REST API) see the lock as it is after our actions, not as read before them.
  // (The snapshot's view is shared with them, not copied; a change makes it our own first.)
  std::shared_ptr<const dcs::Cluster> readers_cluster;
  if (s.dcs_ok) {
    if (out.holds_lock && (!s.cluster->leader || s.cluster->leader->name != cfg_.name))
      s.cluster.edit().leader = dcs::Leader{cfg_.name, 0, ""};
    else if (!out.holds_lock && s.cluster->leader && s.cluster->leader->name == cfg_.name)
      s.cluster.edit().leader.reset();
    readers_cluster = s.cluster.share();
  }
  if (out.bootstrap_failed) bootstrap_allowed_ = false;
  if (out.fatal) {
    spdlog::critical("{}: {}", cfg_.name, out.status.message());
    fatal_ = true;
  }
  // The role is what PostgreSQL is now, read back after actions that may have changed it
  // (a leader's every cycle renews its lock and syncs slots: no second read for those).
  std::optional<postgres::PgState> after;
  const bool pg_untouched =
      out.status.ok() && std::all_of(d.actions.begin(), d.actions.end(), leaves_postgres_alone);
  if (!pg_untouched) s.pg = read_local(&after);
  else after = std::move(st);
  role_ = !s.pg.running ? (s.pg.initialized ? role_ : "uninitialized")
                        : (s.pg.query_ok ? (s.pg.in_recovery ? "replica" : "master") : role_);
  if (s.dcs_ok || cluster.ok()) {
    if (auto ts = dcs_->touch_member(member_document(s.pg, after, role_)); !ts)
      spdlog::warn("{}: could not update the member key: {}", cfg_.name, ts.message());
  }
  next_run_ = epoch_now() + dyn_.loop_wait;
  CycleEnd end;
  end.pg_running = s.pg.running;
  end.pg_query_ok = s.pg.query_ok;
  end.routine_only = pg_untouched && std::all_of(d.actions.begin(), d.actions.end(), routine_upkeep);
  end.synchronous_mode = dyn_.synchronous_mode;
  end.restart_scheduled = requests_ && requests_->scheduled_restart();
  send_ahead_next_ = send_state_ahead(end);
  publish(s, d, after, std::move(readers_cluster));
}

int HaLoop::run() {
  spdlog::info("{}: starting pgwarden {} for scope {}", cfg_.name, kVersion, cfg_.scope);
  next_page_release_ = std::chrono::steady_clock::now() + kFirstPageRelease;
  std::thread heartbeat([this] { heartbeat_until_stopped(); });
  while (!stop_ && !fatal_) {
    auto started = std::chrono::steady_clock::now();
    cycle();
    if (stop_ || fatal_) break;
    if (started >= next_page_release_) {
      // Most of an idle member's resident set is code that ran once (library set-up,
      // bootstrap); dropping our mappings of it costs a minor fault if it runs again.
      auto r = util::release_unused_pages();
      spdlog::debug("{}: dropped {} read-only ranges ({} kB mapped) of {} objects", cfg_.name, r.ranges,
                    r.bytes / 1024, r.objects);
      next_page_release_ = started + kPageReleaseInterval;
    }
    auto deadline = started + std::chrono::seconds(std::max(1, dyn_.loop_wait));
    // A scheduled restart runs on time, not up to loop_wait late.
    if (requests_) {
      if (auto sr = requests_->scheduled_restart(); sr && sr->at > epoch_now()) {
        auto due = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>((sr->at - epoch_now()) * 1000) + 50);
        deadline = std::min(deadline, due);
      }
    }
    // What the next cycle will ask goes out now and is answered while we sleep: one wake-up
    // a cycle instead of two (state_ahead.hpp; etcd's lease keep-alive likewise).
    const auto sleep =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (send_ahead_next_ && sleep.count() > 0) {
      pg_.send_state_query();
      sent_ahead_ = true;
    }
    dcs_->before_sleep(sleep);
    woke_on_timer_ = true;
    // Wake early on a DCS change, but not more often than every 500 ms: our own writes
    // also count as changes.
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      if (dcs_->watch(left)) {
        // The watch reports others' changes only; a short pause still bounds a storm.
        woke_on_timer_ = false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        break;
      }
      if (requests_ && requests_->has_pending()) {
        woke_on_timer_ = false;
        break;
      }
      std::lock_guard<std::mutex> l(reload_mu_);
      if (pending_reload_) {
        woke_on_timer_ = false;
        break;
      }
    }
  }
  {
    std::lock_guard<std::mutex> l(heartbeat_mu_);
    heartbeat_stop_ = true;
  }
  heartbeat_cv_.notify_all();
  heartbeat.join();
  shutdown();
  return fatal_ ? 1 : 0;
}

void HaLoop::heartbeat_until_stopped() {
  std::unique_lock<std::mutex> l(heartbeat_mu_);
  while (!heartbeat_stop_) {
    // Idle members sleep here until a long action starts: no wake-ups in the steady state.
    if (!long_action_) {
      heartbeat_cv_.wait(l, [this] { return heartbeat_stop_ || long_action_; });
      continue;
    }
    if (heartbeat_cv_.wait_for(l, std::chrono::seconds(1), [this] { return heartbeat_stop_; })) break;
    if (long_action_) board_.heartbeat(executor_.pg_state_hint(), epoch_now() + heartbeat_loop_wait_);
    if (long_action_ && keep_member_alive_) {
      // The lease is kept alive only as often as the TTL needs (the DCS decides); not under
      // our lock, so the loop is never held up by a slow DCS here.
      l.unlock();
      if (auto st = dcs_->keep_member_alive(); !st)
        spdlog::debug("{}: could not keep the member key alive: {}", cfg_.name, st.message());
      l.lock();
    }
  }
}

void HaLoop::shutdown() {
  spdlog::info("{}: shutting down", cfg_.name);
  if (requests_)
    for (const auto& r : requests_->take()) requests_->complete(r.id, {503, "pgwarden is shutting down"});
  if (dyn_.pause) {
    spdlog::info("{}: cluster is paused: leaving PostgreSQL running and the leader key in place", cfg_.name);
    callbacks_.stop_all();
    return;
  }
  if (pg_.is_running()) {
    auto st = pg_.stop("fast", std::chrono::seconds(std::max(10, cfg_.postgresql.pg_ctl_timeout)));
    if (!st) {
      spdlog::error("{}: fast stop failed: {}; stopping immediately", cfg_.name, st.message());
      pg_.stop("immediate", std::chrono::seconds(30));
    }
    callbacks_.fire("on_stop", role_);
  }
  if (was_leader_) {
    auto control = postgres::read_control_data(cfg_, pg_env_);
    if (auto st = dcs_->delete_leader(control.checkpoint_location); !st)
      spdlog::error("{}: could not release the leader lock: {}", cfg_.name, st.message());
    else
      spdlog::info("{}: leader lock released", cfg_.name);
  }
  // Say we are stopped, so nothing keeps routing to us (on Kubernetes the role label goes).
  if (auto st = dcs_->touch_member(member_data(LocalPostgres{}, std::nullopt, role_)); !st)
    spdlog::warn("{}: could not publish the stopped state: {}", cfg_.name, st.message());
  dcs_->close();
  // Give the on_stop callback a moment to run before the process goes away.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  callbacks_.stop_all();
}

}  // namespace pgwarden::ha
