// watch()/wake() of the etcd backend: one streaming /v3/watch over the cluster prefix on its
// own connection, opened right after the revision of the last load_cluster() and then kept
// for as long as etcd keeps it. Events the last load already saw are skipped.
#include <thread>

#include "pgwarden/dcs/etcd/cluster_builder.hpp"
#include "pgwarden/dcs/etcd/etcd3_dcs.hpp"
#include "pgwarden/util/log.hpp"

namespace pgwarden::dcs::etcd {

using nlohmann::json;

namespace {
constexpr auto kSlice = std::chrono::milliseconds(100);
}

// Patroni's rules (etcd3.py KVCache._process_event), so that our own writes do not wake
// us every cycle: wake on any change of the leader key; on a status/optime change only
// when somebody else leads (replicas follow the leader's LSN); on a config change only
// when it is modified (not created or deleted). Beyond Patroni: a member key that appears
// (created, not updated) wakes the leader, so the new member's replication slot exists
// before it starts streaming instead of a loop_wait later.
bool Etcd3Dcs::event_wakes(const json& event, std::map<std::string, std::string>& seen) const {
  auto kvj = event.find("kv");
  if (kvj == event.end()) return false;
  KeyValue kv;
  if (!decode_kv(*kvj, kv)) return false;
  bool deleted = event.value("type", std::string()) == "DELETE";
  std::string rel = kv.key.substr(std::min(kv.key.size(), prefix_.size()));
  bool is_leader = rel == kLeaderKey;
  bool is_status = rel == kStatusKey || rel == kLegacyOptimeKey;
  bool is_config = rel == kConfigKey;
  if (rel.rfind(kMembersDir, 0) == 0) {
    bool created = !deleted && kv.create_revision == kv.mod_revision;
    auto leader = seen.find(key(kLeaderKey));
    bool i_lead = leader != seen.end() && leader->second == name_;
    return created && i_lead && kv.key != member_key();
  }
  if (!is_leader && !is_status && !is_config) return false;

  std::optional<std::string> old_value;
  if (auto it = seen.find(kv.key); it != seen.end()) old_value = it->second;
  std::optional<std::string> new_value;
  if (!deleted) new_value = kv.value;
  if (new_value) seen[kv.key] = *new_value;
  else seen.erase(kv.key);

  bool changed = old_value != new_value &&
                 (is_leader || (is_status && new_value) || (is_config && old_value && new_value));
  if (!changed) return false;
  if (is_status) {
    auto leader = seen.find(key(kLeaderKey));
    return leader == seen.end() || leader->second != name_;
  }
  spdlog::debug("{} changed", kv.key);
  return true;
}

bool Etcd3Dcs::watch(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (wake_.take()) return true;

  int64_t from = 0;
  std::map<std::string, std::string> seen;
  {
    std::lock_guard lk(mu_);
    from = loaded_revision_;
    seen = watched_values_;
  }
  const int64_t loaded_at = from;

  bool changed = false, broken = false;
  // Every message of a chunk is taken (the stream goes on after this call); the read stops
  // after the chunk that brought a change.
  auto on_data = [&](std::string_view chunk) {
    for (const auto& msg : watch_messages_.feed(chunk)) {
      if (msg.contains("error")) {
        spdlog::warn("etcd watch error: {}", msg["error"].dump());
        changed = broken = true;  // cannot tell what we missed: let the HA loop reload
        continue;
      }
      const json& res = msg.contains("result") ? msg["result"] : msg;
      if (json_int64(res, "compact_revision") > 0 || res.value("canceled", false)) {
        changed = broken = true;  // our start revision is gone; a reload catches up
        continue;
      }
      auto events = res.find("events");
      if (events == res.end() || !events->is_array()) continue;
      for (const auto& ev : *events) {
        auto kvj = ev.find("kv");
        if (kvj == ev.end()) continue;
        int64_t rev = json_int64(*kvj, "mod_revision");
        // The last load (or an earlier watch) saw it. A txn's events share one revision, and
        // etcd sends a revision's events in one message, which is taken whole.
        if (rev <= loaded_at) continue;
        from = std::max(from, rev);
        if (event_wakes(ev, seen)) changed = true;
      }
    }
    return changed;
  };

  while (!changed) {
    if (Clock::now() >= deadline) break;
    if (!watch_stream_.is_open()) {
      json create = {{"key", base64_encode(prefix_)}, {"range_end", base64_encode(prefix_range_end(prefix_))}};
      if (from > 0) create["start_revision"] = std::to_string(from + 1);
      watch_messages_ = JsonObjectStream();
      if (auto s = client_.open_watch(watch_stream_, json{{"create_request", create}}, deadline, &wake_); !s.ok()) {
        if (wake_.is_set()) break;
        spdlog::debug("etcd watch failed: {}", s.message());
        // etcd is unreachable: sleep out the timeout (a wake ends it) rather than spin.
        wake_.wait_for(std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
        break;
      }
    }
    auto r = watch_stream_.read(deadline, &wake_, on_data);
    if (broken) watch_stream_.close();
    if (r.ok() && *r == StreamEnd::kClosed) {  // server ended the stream: resume from `from`
      std::this_thread::sleep_for(kSlice);
      continue;
    }
    if (!r.ok()) {
      spdlog::debug("etcd watch failed: {}", r.status().message());
      wake_.wait_for(std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
    }
    break;
  }

  {
    // Remember what was consumed so a second watch without a reload does not fire again.
    std::lock_guard lk(mu_);
    if (loaded_revision_ == loaded_at) {
      loaded_revision_ = from;
      watched_values_ = std::move(seen);
    }
  }
  if (wake_.take()) return true;
  return changed;
}

void Etcd3Dcs::wake() { wake_.set(); }

}  // namespace pgwarden::dcs::etcd
