#include "pgwarden/ha/requests.hpp"

#include <algorithm>

#include "pgwarden/util/iso_time.hpp"

namespace pgwarden::ha {

std::string restart_mismatch(const RestartFilters& f, const std::string& role, int server_version,
                             bool pending_restart) {
  // Patroni keeps the last reason that applies; so do we.
  std::string why;
  if (!f.role.empty() && f.role != role) why = "host role mismatch";
  if (f.postgres_version_num > 0 && f.postgres_version_num <= server_version) why = "postgres version mismatch";
  if (f.restart_pending && !pending_restart) why = "pending restart flag is not set";
  return why;
}

nlohmann::json scheduled_restart_json(const ScheduledRestart& r, bool for_status) {
  nlohmann::json j = nlohmann::json::object();
  j["schedule"] = util::format_iso8601(r.at);
  if (!r.filters.role.empty()) j["role"] = r.filters.role;
  if (!r.filters.postgres_version.empty()) j["postgres_version"] = r.filters.postgres_version;
  if (r.filters.restart_pending) j["restart_pending"] = true;
  if (r.filters.timeout > 0) j["timeout"] = r.filters.timeout;
  if (!for_status) j["postmaster_start_time"] = r.postmaster_start_time;
  return j;
}

RequestReply RequestMailbox::submit(OperatorRequest r, std::chrono::milliseconds wait,
                                    const std::function<void()>& wake) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> l(mu_);
    id = r.id = next_id_++;
    pending_.push_back(r);
    replies_.emplace(id, std::nullopt);
  }
  if (wake) wake();
  std::unique_lock<std::mutex> l(mu_);
  done_.wait_for(l, wait, [&] { return replies_.at(id).has_value(); });
  std::optional<RequestReply> reply = std::move(replies_.at(id));
  replies_.erase(id);
  if (reply) return *reply;
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](const OperatorRequest& p) { return p.id == id; });
  if (it != pending_.end()) {
    pending_.erase(it);
    return {503, "the HA loop did not take the request in time; nothing was done"};
  }
  return {503, "the request is still being processed; its outcome is unknown"};
}

bool RequestMailbox::schedule_restart(const ScheduledRestart& r) {
  std::lock_guard<std::mutex> l(mu_);
  if (scheduled_) return false;
  scheduled_ = r;
  return true;
}

bool RequestMailbox::cancel_scheduled_restart() {
  std::lock_guard<std::mutex> l(mu_);
  if (!scheduled_) return false;
  scheduled_.reset();
  return true;
}

std::optional<ScheduledRestart> RequestMailbox::scheduled_restart() const {
  std::lock_guard<std::mutex> l(mu_);
  return scheduled_;
}

std::vector<OperatorRequest> RequestMailbox::take() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<OperatorRequest> out;
  out.swap(pending_);
  return out;
}

bool RequestMailbox::has_pending() const {
  std::lock_guard<std::mutex> l(mu_);
  return !pending_.empty();
}

void RequestMailbox::complete(uint64_t id, RequestReply reply) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = replies_.find(id);
    if (it == replies_.end()) return;  // the caller gave up waiting
    it->second = std::move(reply);
  }
  done_.notify_all();
}

void RequestMailbox::clear_scheduled_restart(double at) {
  std::lock_guard<std::mutex> l(mu_);
  if (scheduled_ && scheduled_->at == at) scheduled_.reset();
}

}  // namespace pgwarden::ha
