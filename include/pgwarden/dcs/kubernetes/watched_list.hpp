#pragma once
// A local copy of one collection of Kubernetes objects (say, the cluster's pods), kept current
// by LIST then WATCH on a background thread, as client-go's informers and Patroni's
// ObjectCache do. Reads never touch the API server; a broken watch re-lists.
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "pgwarden/dcs/kubernetes/api_client.hpp"

namespace pgwarden::dcs::k8s {

class WatchedList {
 public:
  // Called on the watch thread for every change to the cache: the object before (null when
  // new) and after (null when deleted). Must be quick and must not call back into this list.
  using OnChange = std::function<void(const nlohmann::json& before, const nlohmann::json& after)>;

  // `collection`: e.g. /api/v1/namespaces/ns/pods; `selector`: URL-encoded label selector.
  WatchedList(ApiClient& client, std::string collection, std::string selector, OnChange on_change);
  ~WatchedList();
  WatchedList(const WatchedList&) = delete;
  WatchedList& operator=(const WatchedList&) = delete;

  void start();
  void stop();

  // Waits until the cache reflects a successful LIST whose WATCH is still running; false on
  // timeout (the API server is unreachable or refusing us).
  bool wait_ready(std::chrono::milliseconds timeout);
  bool ready() const;

  std::optional<nlohmann::json> get(const std::string& name) const;
  std::map<std::string, nlohmann::json> items() const;

  // Puts the result of our own write into the cache at once (only if it is newer than what
  // the cache holds), so the next decision does not act on the state before it.
  void put(const nlohmann::json& object);

  // Drops the current watch and re-lists (after a 409 that suggests the cache is stale).
  void resync();

 private:
  void run();
  // Replaces the cache by a LIST; returns the list's resourceVersion, or nullopt.
  std::optional<std::string> relist();
  // Applies one watch event; returns false when the stream must be re-listed (ERROR / 410).
  bool apply(const nlohmann::json& event, std::string& rv);
  void store_locked(const nlohmann::json& object, bool deleted);
  void sleep_interruptible(std::chrono::milliseconds d);

  ApiClient& client_;
  const std::string collection_;
  const std::string selector_;
  OnChange on_change_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, nlohmann::json> items_;
  bool ready_ = false;
  bool stopping_ = false;

  std::string last_error_;  // of the last failed LIST (watch thread only)
  util::WakeSignal cancel_;  // ends the current watch (stop, resync)
  std::thread thread_;
};

// Whether resourceVersion `a` is newer than `b`. Both are opaque strings in the API contract;
// the servers in use (etcd-backed, the emulator) use increasing integers, so numbers compare
// as numbers and anything else counts as newer (the server's latest word wins).
bool rv_newer(const std::string& a, const std::string& b);

}  // namespace pgwarden::dcs::k8s
