#pragma once
// An in-process Kubernetes API server emulator for tests: HTTP (or HTTPS) on 127.0.0.1, core/v1
// namespaced endpoints, configmaps, pods and services. Follows the real API semantics for
// get/list (label and field selectors), create (409 AlreadyExists), replace (409 Conflict on a
// stale resourceVersion), merge / strategic-merge / JSON patch, delete (preconditions), watches
// (chunked newline-delimited events, 410 Gone for a too-old resourceVersion), bearer-token auth
// with a per-token (verb, resource) allow-list, validation (422) and fault injection.
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/harness.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace pgwarden::test {

class K8sEmulator {
 public:
  K8sEmulator();
  ~K8sEmulator();
  K8sEmulator(const K8sEmulator&) = delete;
  K8sEmulator& operator=(const K8sEmulator&) = delete;

  // Binds 127.0.0.1:`port` (0: any free port) and starts serving.
  void start(int port = 0);
  // The same over HTTPS (TLS 1.2+, OpenSSL) with the given PEM certificate chain and key, e.g.
  // from support/tls_certs.hpp. Throws std::runtime_error when they cannot be loaded.
  void start_tls(const std::string& cert_pem_file, const std::string& key_pem_file, int port = 0);
  bool tls() const { return ssl_ctx_ != nullptr; }
  // Closes the listener and every open connection; joins all threads. Idempotent.
  void stop();
  int port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

  // ---- auth ----
  // A token with full access. Once any token is configured, requests need a known token (401).
  void add_token(const std::string& token);
  // A token limited to the given (verb, resource) pairs, e.g. {"patch","pods"}; others → 403.
  // Verbs: get, list, watch, create, update, patch, delete.
  void add_token(const std::string& token, std::set<std::pair<std::string, std::string>> allowed);
  void remove_token(const std::string& token);
  void clear_tokens();

  // ---- fault injection (thread-safe) ----
  // Accepted connections are closed at once; when turned on, open connections are cut too.
  void set_refuse_connections(bool refuse);
  // Answer the next `count` requests (-1: until cleared) with `status` (e.g. 500, 503, 429).
  void fail_next(int status, int count = 1);
  void clear_failures();
  // Every answer (including the start of a watch stream) is delayed by `delay`.
  void set_delay(std::chrono::milliseconds delay);
  // Ends every open watch stream (the connections are closed).
  void drop_watches();

  // ---- state helpers ----
  // The stored object, or null json when absent.
  nlohmann::json get(const std::string& ns, const std::string& resource, const std::string& name);
  // Stores `obj` (name from metadata.name) without validation; bumps the resourceVersion, fills in
  // uid/creationTimestamp when missing and emits ADDED/MODIFIED to watchers.
  void put_raw(const std::string& ns, const std::string& resource, nlohmann::json obj);
  // Removes an object directly (emits DELETED). False when absent.
  bool delete_raw(const std::string& ns, const std::string& resource, const std::string& name);
  // Current global resourceVersion.
  std::uint64_t resource_version();
  // How many events the watch history keeps (default 1000); shrinking drops the oldest.
  void set_history_limit(std::size_t n);
  // Number of HTTP requests received (all, including faulted / rejected ones).
  std::uint64_t request_count();
  // Number of TCP connections accepted (including those closed at once by refuse mode).
  std::uint64_t connection_count();
  // Requests received with `Authorization: Bearer <token>` (also faulted / rejected ones), by
  // kind: reads are GET (get, list, and the start of a watch), writes POST/PUT/PATCH/DELETE.
  // An empty token counts requests without a bearer token.
  struct RequestCounts {
    std::uint64_t reads = 0;
    std::uint64_t writes = 0;
  };
  RequestCounts requests_by_token(const std::string& token);

 private:
  struct Event {
    std::uint64_t rv = 0;
    std::string type;  // ADDED, MODIFIED, DELETED
    std::string ns, resource;
    nlohmann::json object;
    nlohmann::json old;  // previous state for MODIFIED
  };
  struct Reply {
    int status = 200;
    nlohmann::json body;
    std::map<std::string, std::string> headers;
  };
  struct Request;
  class Conn;  // one accepted connection: the socket, with a TLS session in TLS mode

  void listen_on(int port);
  void accept_loop();
  void serve_connection(int fd);
  Reply handle(const Request& req);
  void serve_watch(const Request& req, Conn& conn);

  // Under mu_.
  std::uint64_t next_rv_locked();
  void record_locked(Event ev);
  void trim_history_locked();

  mutable std::mutex mu_;  // store, history, auth
  std::condition_variable cv_;
  std::map<std::string, nlohmann::json> store_;  // key: resource/ns/name
  std::deque<Event> history_;
  std::size_t history_limit_ = 1000;
  std::uint64_t rv_ = 1;
  std::uint64_t compacted_rv_ = 0;  // events with rv <= this are gone
  std::uint64_t watch_gen_ = 0;
  bool stopping_ = false;
  std::map<std::string, std::optional<std::set<std::pair<std::string, std::string>>>> tokens_;

  std::mutex fault_mu_;
  bool refuse_ = false;
  int fail_status_ = 0;
  int fail_count_ = 0;
  std::chrono::milliseconds delay_{0};
  std::uint64_t requests_ = 0;
  std::uint64_t connections_ = 0;
  std::map<std::string, RequestCounts> requests_by_token_;

  std::mutex conn_mu_;
  std::set<int> open_fds_;
  std::set<int> watch_fds_;
  std::vector<std::thread> conn_threads_;

  int listen_fd_ = -1;
  std::thread accept_thread_;
  int port_ = 0;
  bool running_ = false;
  ssl_ctx_st* ssl_ctx_ = nullptr;  // set by start_tls, freed by the destructor
};

// A small HTTP client for talking to the emulator with headers (Content-Type, Authorization).
// Reads until the response ends, so a watch needs `timeoutSeconds` (or a drop) to return.
HttpReply k8s_request(int port, const std::string& method, const std::string& target, const std::string& body = "",
                      const std::map<std::string, std::string>& headers = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Splits a watch stream body into its newline-delimited JSON events.
std::vector<nlohmann::json> parse_watch_events(const std::string& body);

}  // namespace pgwarden::test
