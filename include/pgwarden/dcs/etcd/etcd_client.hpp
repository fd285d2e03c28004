#pragma once
// A small etcd v3 client over the HTTP/JSON gateway (/v3/...), with fail-over between the
// configured hosts. Thread-safe: a request has a connection to itself (a kept-alive one taken
// from the transport's pool, or a new one); the only shared state (preferred host, auth token,
// timeouts, the pool) is behind a mutex or atomic.
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/dcs/etcd/codec.hpp"
#include "pgwarden/dcs/etcd/http_transport.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::dcs::etcd {

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // store revision the read saw
};

struct KeepAliveResult {
  int64_t ttl = 0;       // remaining TTL; 0 when the lease is gone
  int64_t revision = 0;  // store revision when etcd answered (0 if it did not say)
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
  nlohmann::json responses = nlohmann::json::array();  // raw ResponseOp list
};

class EtcdClient {
 public:
  EtcdClient(std::vector<Endpoint> hosts, std::chrono::milliseconds retry_timeout, std::string username = "",
             std::string password = "");

  // Bounds every call (all hosts and retries included).
  void set_retry_timeout(std::chrono::milliseconds t) { retry_timeout_ms_ = t.count(); }
  std::chrono::milliseconds retry_timeout() const { return std::chrono::milliseconds(retry_timeout_ms_.load()); }

  // POSTs `body` to /v3/<path> with fail-over; returns the (first) JSON object of the reply.
  // kUnavailable naming the hosts when none answered in time; etcd errors as kNotFound
  // (e.g. lease not found) or kFailed with etcd's message.
  // `deadline`: finish by then instead of within retry_timeout from now.
  Result<nlohmann::json> call(const std::string& path, const nlohmann::json& body,
                              std::optional<Clock::time_point> deadline = std::nullopt);

  Result<RangeResult> range_prefix(const std::string& prefix);
  Result<RangeResult> range(const std::string& key);
  // `deadline`, as for call().
  Status put(const std::string& key, const std::string& value, int64_t lease = 0,
             std::optional<Clock::time_point> deadline = std::nullopt);
  Status delete_key(const std::string& key);
  Result<TxnResult> txn(const nlohmann::json& compare, const nlohmann::json& success,
                        const nlohmann::json& failure = nlohmann::json::array(),
                        std::optional<Clock::time_point> deadline = std::nullopt);

  Result<int64_t> lease_grant(int ttl_seconds);           // lease id
  Result<KeepAliveResult> lease_keepalive(int64_t id, std::optional<Clock::time_point> deadline = std::nullopt);
  // A keep-alive sent now and answered later, so the HA cycle queries PostgreSQL while etcd
  // answers (one wait for both instead of one each). Only the preferred host is asked, with
  // the time a call would give one host; whoever finishes it falls back to lease_keepalive()
  // on any failure.
  struct PendingKeepAlive {
    HttpExchange exchange;
    Endpoint host;
    Clock::time_point sent{};
    Clock::time_point deadline{};  // for the reply, and for a fallback's retries
  };
  Result<PendingKeepAlive> start_lease_keepalive(int64_t id);
  Result<KeepAliveResult> finish_lease_keepalive(PendingKeepAlive& pending);
  Status lease_revoke(int64_t id);

  // Opens `stream` as a /v3/watch with `body` on the preferred host (then the others when
  // one cannot be reached). The caller reads it (HttpStream::read) for as long as it likes.
  Status open_watch(HttpStream& stream, const nlohmann::json& body, Clock::time_point deadline,
                    const util::WakeSignal* wake);

  // Builders for txn compare/op entries (keys and values are raw bytes, encoded here).
  static nlohmann::json cmp_create_revision(const std::string& key, int64_t rev);
  static nlohmann::json cmp_mod_revision(const std::string& key, int64_t rev);
  static nlohmann::json cmp_value(const std::string& key, const std::string& value);
  static nlohmann::json cmp_lease(const std::string& key, int64_t lease);
  static nlohmann::json op_put(const std::string& key, const std::string& value, int64_t lease = 0);
  static nlohmann::json op_delete(const std::string& key);
  static nlohmann::json op_range(const std::string& key);

  std::string hosts_string() const;

 private:
  enum class Outcome { kDone, kRetryElsewhere, kAuthExpired };
  std::chrono::milliseconds per_host_budget(std::chrono::milliseconds total) const;
  Outcome interpret(const Endpoint& ep, const std::string& path, const HttpReply& reply, Result<nlohmann::json>& out);
  Status authenticate(const Endpoint& ep, Clock::time_point deadline);
  std::string token() const;

  std::vector<Endpoint> hosts_;
  std::atomic<int64_t> retry_timeout_ms_;
  std::atomic<size_t> preferred_{0};
  std::string username_, password_;
  mutable std::mutex token_mu_;
  std::string token_;
};

// The first JSON object in a (possibly streamed) reply body; discarded json if none.
nlohmann::json first_json_object(const std::string& body);

}  // namespace pgwarden::dcs::etcd
