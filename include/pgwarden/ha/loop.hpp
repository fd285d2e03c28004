#pragma once
// The HA loop: every loop_wait (or at once when the DCS changes) it reads the DCS and the
// local PostgreSQL into a Snapshot, asks decide() what to do, has the Executor do it,
// publishes the member key and the NodeView. Stops cleanly on request.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "pgwarden/config/config.hpp"
#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/ha/executor.hpp"
#include "pgwarden/ha/node_view.hpp"
#include "pgwarden/ha/requests.hpp"
#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/callbacks.hpp"

namespace pgwarden::ha {

class HaLoop {
 public:
  // `pg_env`: environment for PostgreSQL and its tools (no PATRONI_*/KUBERNETES_*);
  // `daemon_env`: for callbacks (which drop PATRONI_* themselves).
  // `requests`: operator requests from the REST API (optional; must outlive the loop).
  HaLoop(config::Config cfg, util::Environment pg_env, util::Environment daemon_env, std::unique_ptr<dcs::Dcs> dcs,
         NodeBoard& board, RequestMailbox* requests = nullptr);
  ~HaLoop();

  // Runs until request_stop(); returns the process exit code (0 on a clean stop, 1 when a
  // bootstrap failed).
  int run();

  // Thread-safe; may be called from a signal-handling thread.
  void request_stop();
  void request_reload(config::Config cfg);

 private:
  void cycle();
  // Runs beside the loop: while a long action is under way, keeps the published state and
  // next run current (NodeBoard::heartbeat) so /patroni and /liveness see a busy, live loop.
  void heartbeat_until_stopped();
  void apply_pending_reload();
  // `accept_ahead`: an answer to the state query sent before the sleep stands for a fresh one
  // if it went out at most this long ago (see state_ahead.hpp).
  LocalPostgres read_local(std::optional<postgres::PgState>* state,
                           std::optional<std::chrono::milliseconds> accept_ahead = std::nullopt);
  std::string api_url() const;  // the member key's api_url
  nlohmann::json member_data(const LocalPostgres& local, const std::optional<postgres::PgState>& st,
                             const std::string& role) const;
  // member_data() of every cycle: built again only when what it says changed (an idle
  // member's document is the same cycle after cycle).
  const nlohmann::json& member_document(const LocalPostgres& local, const std::optional<postgres::PgState>& st,
                                        const std::string& role);
  // `cluster`: the DCS view as readers should see it (nullopt when the DCS was not read).
  void publish(const Snapshot& s, const Decision& d, const std::optional<postgres::PgState>& st,
               std::shared_ptr<const dcs::Cluster> cluster);
  void shutdown();

  config::Config cfg_;
  util::Environment pg_env_;
  std::unique_ptr<dcs::Dcs> dcs_;
  NodeBoard& board_;
  RequestMailbox* requests_;
  postgres::Postgres pg_;
  util::CallbackExecutor callbacks_;
  Executor executor_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> long_action_{false};
  // During this long action the heartbeat also keeps our member key alive (never a leader's).
  std::atomic<bool> keep_member_alive_{false};
  std::atomic<int> heartbeat_loop_wait_{10};  // dyn_.loop_wait for the heartbeat thread
  std::mutex heartbeat_mu_;
  std::condition_variable heartbeat_cv_;
  bool heartbeat_stop_ = false;
  // When to next drop start-up code pages from our mappings (util::release_unused_pages).
  std::chrono::steady_clock::time_point next_page_release_{};
  std::mutex reload_mu_;
  std::optional<config::Config> pending_reload_;
  bool reload_requested_ = false;
  // Index of the DCS config key dyn_ was merged from (-1: merge on the next cycle), and a
  // counter that moves whenever dyn_ or the local configuration may have changed.
  int64_t merged_config_index_ = -1;
  uint64_t config_generation_ = 0;
  // effective_parameters(cfg_, dyn_), computed again when config_generation_ moves.
  const nlohmann::json& effective_parameters();
  std::optional<nlohmann::json> effective_parameters_;
  uint64_t effective_for_ = 0;
  // Executor::config_stale compares every parameter: asked again only when the configuration
  // (config_generation_) or the files written from it (Executor::config_writes) changed.
  bool config_stale();
  std::optional<std::pair<uint64_t, uint64_t>> stale_asked_for_;
  bool stale_ = false;
  // command_line_changes() as last asked ("<postmaster start>@<config generation>").
  std::string cmdline_asked_for_;
  std::vector<std::string> cmdline_changes_;
  std::string pending_cmdline_logged_;  // command-line options last reported as changed  // a reload was applied: PostgreSQL reloads on this cycle

  // What member_document() last built its document from, and the document.
  struct MemberDocumentInputs {
    bool running = false, query_ok = false, pause = false, pending_restart = false;
    int64_t wal_position = 0;
    int timeline = 0;
    std::string role;
    uint64_t config_generation = 0;
    bool operator==(const MemberDocumentInputs&) const = default;
  };
  std::optional<MemberDocumentInputs> member_document_for_;
  nlohmann::json member_document_;
  // api_url() and the connection URL for the REST view, as of url_generation_.
  std::string api_url_, conn_url_;
  std::optional<uint64_t> url_generation_;

  // The state query sent before the sleep (state_ahead.hpp): whether this cycle allows it,
  // whether it went out, whether the sleep then ran its course, and the leader the last view
  // named ("" none; nullopt: the DCS was not read).
  bool send_ahead_next_ = false;
  bool sent_ahead_ = false;
  bool woke_on_timer_ = false;
  std::optional<std::string> last_view_leader_;

  bool was_leader_ = false;
  bool bootstrap_allowed_ = true;
  bool fatal_ = false;
  double dcs_last_seen_ = 0;
  config::DynamicConfig dyn_;
  std::string role_ = "uninitialized";
  std::string last_reason_;
  double next_run_ = 0;
};

}  // namespace pgwarden::ha
