#pragma once
// The Kubernetes backend: Patroni's layout on Endpoints (or ConfigMaps) and pod annotations,
// leader election by optimistic concurrency on resourceVersion, expiry judged by our own
// clock. Reads come from two watched caches (pods, and the DCS objects); the API server sees
// one lock write per loop_wait from the leader and a pod patch only when a member's state
// changes (its WAL position at most once per ttl).
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/dcs/kubernetes/api_client.hpp"
#include "pgwarden/dcs/kubernetes/layout.hpp"
#include "pgwarden/dcs/kubernetes/watched_list.hpp"

namespace pgwarden::dcs::k8s {

struct KubernetesOptions {
  Layout layout;
  std::string name;    // this member = its pod's name
  std::string pod_ip;  // kubernetes.pod_ip; empty: the pod's status.podIP
  nlohmann::json ports = nlohmann::json::array();
  int ttl = 30;
  int loop_wait = 10;
  int retry_timeout = 10;
};

KubernetesOptions kubernetes_options_from(const config::Config& cfg);

class KubernetesDcs final : public Dcs {
 public:
  KubernetesDcs(KubernetesOptions opts, std::unique_ptr<ApiClient> client);
  ~KubernetesDcs() override;

  Result<Cluster> load_cluster() override;
  Result<Cluster> peek_cluster() override;
  Status touch_member(const nlohmann::json& data) override;
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
  bool watch(std::chrono::milliseconds timeout) override;
  void wake() override;
  void close() override;
  std::string initialize_location() const override;

  Status set_sync_state_value(const std::string& json, std::optional<int64_t> index);
  ClientCounters api_counters() const { return client_->counters(); }

 private:
  // A write to one DCS object: PATCH when we have seen it (with `rv` as precondition when
  // given), else POST. `cas`: a lost race (409, or AlreadyExists on create) is kConflict
  // rather than being retried without a precondition.
  Result<nlohmann::json> write_object(const std::string& name, const nlohmann::json& annotations,
                                      std::optional<std::string> rv, bool cas,
                                      const std::optional<nlohmann::json>& subsets = std::nullopt);
  Status status_of(const Result<ApiReply>& r, const std::string& what) const;
  Status renew(const std::optional<int64_t>& last_lsn);
  // Builds the view from the caches; `for_decisions` also records the objects the loop's
  // next writes will use as preconditions.
  Result<Cluster> read_view(bool for_decisions);
  // Leader-expiry bookkeeping from a fresh leader object (null when absent).
  void observe_leader(const nlohmann::json& leader_object);
  bool holds_lock();
  void on_object_change(const nlohmann::json& before, const nlohmann::json& after);
  void on_pod_change(const nlohmann::json& before, const nlohmann::json& after);
  void ensure_config_service();
  void signal_wake();

  const KubernetesOptions opts_;
  std::unique_ptr<ApiClient> client_;
  std::unique_ptr<WatchedList> objects_;
  std::unique_ptr<WatchedList> pods_;

  // Never held while calling into the lists (they call back under their own lock).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::atomic<int> ttl_;
  std::atomic<int> retry_timeout_;
  // The leader and config objects as of the last load_cluster(): the decisions taken on
  // that view write with these versions as preconditions.
  std::optional<nlohmann::json> loaded_leader_;
  std::optional<nlohmann::json> loaded_config_;
  nlohmann::json observed_record_ = nlohmann::json::object();
  std::chrono::steady_clock::time_point observed_at_{};
  bool observed_ = false;
  std::set<std::string> warned_;  // malformed-data warnings already logged
  std::optional<std::string> last_status_;  // status annotation we last wrote, minus the position
  std::chrono::steady_clock::time_point last_position_write_{};
  bool config_service_done_ = false;
  std::atomic<bool> closed_{false};
};

}  // namespace pgwarden::dcs::k8s
