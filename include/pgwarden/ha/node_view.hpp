#pragma once
// What the HA loop publishes after each cycle for readers (REST API, metrics). Plain data;
// readers get a copy and never touch the loop.
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "pgwarden/dcs/cluster.hpp"

namespace pgwarden::ha {

struct NodeView {
  std::string name;
  std::string scope;
  std::string state = "stopped";   // Patroni's postgres state string (running, starting, ...)
  std::string role = "uninitialized";  // master | replica | demoted | uninitialized | ...
  bool is_leader = false;          // holds the leader lock as of the last cycle
  // Last successful DCS read (null: none), shared with the HA cycle that read it: never changed
  // once published.
  std::shared_ptr<const dcs::Cluster> cluster;
  double dcs_last_seen = 0;        // epoch seconds of that read (0: never)
  bool paused = false;
  int ttl = 30;
  int loop_wait = 10;
  double next_scheduled_run = 0;   // epoch seconds; for /liveness
  nlohmann::json tags = nlohmann::json::object();
  std::string api_url;
  std::string conn_url;
  bool pending_restart = false;
  std::string last_decision;       // one line: what the loop did and why
  std::string problem;             // a state only an operator can fix (see Decision::problem)
};

// Single-writer (HA loop), many-reader board holding the latest NodeView.
class NodeBoard {
 public:
  void publish(NodeView v) {
    std::lock_guard<std::mutex> l(mu_);
    view_ = std::move(v);
  }
  // Changes the view in place (`change(NodeView&)` under the lock): readers see all of the
  // change or none of it.
  template <class Change>
  void update(Change&& change) {
    std::lock_guard<std::mutex> l(mu_);
    change(view_);
  }
  // While a long action runs (a restore, a clone, a start with a long recovery) the loop is
  // busy but alive, as Patroni's is while its async executor works: the state it reports and
  // the next run /liveness judges are kept current without a whole new view.
  void heartbeat(const std::string& state, double next_scheduled_run) {
    std::lock_guard<std::mutex> l(mu_);
    if (!state.empty()) view_.state = state;
    view_.next_scheduled_run = next_scheduled_run;
  }
  NodeView read() const {
    std::lock_guard<std::mutex> l(mu_);
    return view_;
  }

 private:
  mutable std::mutex mu_;
  NodeView view_;
};

}  // namespace pgwarden::ha
