#pragma once
// A small Kubernetes API client: JSON requests over HTTP/1.1 (TLS verified with OpenSSL),
// bearer token authentication, retries with backoff inside a deadline, and watch streams.
// It knows nothing of pgwarden's objects: paths and bodies come from the caller.
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "pgwarden/dcs/kubernetes/kube_config.hpp"
#include "pgwarden/util/status.hpp"
#include "pgwarden/util/wake_signal.hpp"

namespace pgwarden::dcs::k8s {

using Clock = std::chrono::steady_clock;

struct ApiReply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  // The body parsed as JSON; a discarded (null) value when it is not JSON.
  nlohmann::json json() const;
  // For error replies: the Status object's reason ("Conflict", "AlreadyExists", ...) and message.
  std::string reason() const;
  std::string message() const;
};

enum class WatchEnd {
  kStopped,  // on_event returned false
  kClosed,   // the server ended the stream (timeoutSeconds, restart)
  kCancelled,  // *cancel became true
};

struct ClientCounters {
  uint64_t reads = 0;   // GET requests sent, watches included
  uint64_t writes = 0;  // POST, PUT, PATCH, DELETE requests sent
};

class ApiClient {
 public:
  // `retry_timeout` bounds each call() including its retries. `retriable` are the HTTP codes
  // retried besides any reply carrying Retry-After (Patroni: 500, 503, 504).
  ApiClient(ApiServer server, std::chrono::milliseconds retry_timeout, std::set<int> retriable = {500, 503, 504});
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // One request with retries until retry_timeout: connection failures, the retriable codes and
  // replies with Retry-After (429) are retried with a backoff from 100 ms doubling to at most
  // 1 s (Retry-After is honoured within the deadline); a 401 re-reads the token file and is
  // retried once. Any other reply (2xx, 4xx, ...) is returned as is. kUnavailable, naming the
  // server and the last error, when no usable reply came before the deadline. Thread-safe;
  // calls from one thread reuse one keep-alive connection.
  Result<ApiReply> call(const std::string& method, const std::string& target, const std::string& body = "",
                        const std::string& content_type = "application/json");

  // GET `target` (which carries watch=1&resourceVersion=...) and hands every complete
  // newline-delimited event object to on_event until it returns false, the server ends the
  // stream, or `cancel` is set (at once: the read sleeps on its eventfd). A non-200 answer is
  // returned as kFailed with the HTTP code in Status::message() prefixed "HTTP <code>: " (410
  // included, so the caller re-lists); no reply at all is kUnavailable. Connecting is bounded
  // by retry_timeout; the stream itself has no read timeout. Uses its own connection.
  // An ERROR event in the stream (a Status object, e.g. 410 Expired for a too-old
  // resourceVersion, which the API server sends inside a 200 stream as often as a 410 answer)
  // is not handed to on_event: it ends the watch as kFailed "HTTP <code>: <message>" too.
  Result<WatchEnd> watch(const std::string& target, const std::function<bool(const nlohmann::json&)>& on_event,
                         const util::WakeSignal* cancel);

  void set_retry_timeout(std::chrono::milliseconds t);
  const ApiServer& server() const { return server_; }
  ClientCounters counters() const;

 private:
  struct Impl;
  ApiServer server_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwarden::dcs::k8s
