// watch()/wake() of the etcd backend: one streaming /v3/watch over the cluster prefix on its
// own connection, kept for as long as etcd keeps it. Its events go into the KvCache (which
// decides what wakes the HA loop), so an HA cycle's view costs no request while the stream
// that started right after the cache's range read is still open.
#include <thread>

#include "pgwarden/dcs/etcd/cluster_builder.hpp"
#include "pgwarden/dcs/etcd/etcd3_dcs.hpp"
#include "pgwarden/util/log.hpp"

namespace pgwarden::dcs::etcd {

using nlohmann::json;

namespace {
constexpr auto kSlice = std::chrono::milliseconds(100);
}

Etcd3Dcs::WatchNews Etcd3Dcs::take_watch_data(std::string_view chunk) {
  WatchNews news;
  for (const auto& msg : watch_messages_.feed(chunk)) {
    if (msg.contains("error")) {
      spdlog::warn("etcd watch error: {}", msg["error"].dump());
      news.broken = true;  // cannot tell what we missed
      continue;
    }
    const json& res = msg.contains("result") ? msg["result"] : msg;
    if (json_int64(res, "compact_revision") > 0 || res.value("canceled", false)) {
      news.broken = true;  // our start revision is gone, or etcd dropped the watcher
      continue;
    }
    auto events = res.find("events");
    if (events == res.end()) continue;
    std::lock_guard lk(mu_);
    if (cache_.apply(*events)) news.wake = true;
  }
  return news;
}

void Etcd3Dcs::drain_watch() {
  if (!watch_stream_.is_open()) return;
  bool broken = false;
  auto r = watch_stream_.read_ready([&](std::string_view chunk) {
    broken = take_watch_data(chunk).broken || broken;
    return false;
  });
  if (broken) watch_stream_.close();
  if (!watch_stream_.is_open()) {
    std::lock_guard lk(mu_);
    cache_live_ = false;
  }
  if (!r.ok()) spdlog::debug("etcd watch failed: {}", r.status().message());
}

bool Etcd3Dcs::watch(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (wake_.take()) return true;
  {
    // A leader's status write comes back as its own echo and then as one member-key write per
    // replica, tens of milliseconds apart: reading each as it comes is a wake-up apiece. None
    // of them wakes a leader, and nothing a leader hears on the watch needs it within the
    // window (its lock rides on its own lease; a new member's slot or a configuration change
    // can wait that long), so it lets them gather and reads them together. A wake() (REST
    // request, reload, shutdown) still ends the wait at once.
    std::unique_lock lk(mu_);
    const auto rest_until = std::min(deadline, watch_rest_until_);
    watch_rest_until_ = {};
    lk.unlock();
    const auto now = Clock::now();
    if (now < rest_until && wake_.wait_for(std::chrono::ceil<std::chrono::milliseconds>(rest_until - now)))
      return wake_.take();
  }

  bool changed = false;
  while (!changed) {
    if (Clock::now() >= deadline) break;
    if (!watch_stream_.is_open()) {
      int64_t from = 0;
      {
        std::lock_guard lk(mu_);
        cache_live_ = false;
        from = cache_.revision();
      }
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
      std::lock_guard lk(mu_);
      cache_live_ = cache_fresh_ && from > 0;
      cache_fresh_ = false;
    }
    bool broken = false;
    // Every message of a chunk is taken (the stream goes on after this call); the read stops
    // after the chunk that brought a change.
    auto r = watch_stream_.read(deadline, &wake_, [&](std::string_view chunk) {
      auto news = take_watch_data(chunk);
      broken = broken || news.broken;
      changed = changed || news.wake || news.broken;  // after a break, let the HA loop reload
      return changed;
    });
    if (broken) watch_stream_.close();
    if (r.ok() && *r == StreamEnd::kClosed) {  // server ended the stream: watch on from where it was
      std::this_thread::sleep_for(kSlice);
      continue;
    }
    if (!r.ok()) {
      spdlog::debug("etcd watch failed: {}", r.status().message());
      wake_.wait_for(std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
    }
    break;
  }
  if (!watch_stream_.is_open()) {
    std::lock_guard lk(mu_);
    cache_live_ = false;
  }
  if (wake_.take()) return true;
  return changed;
}

void Etcd3Dcs::wake() { wake_.set(); }

}  // namespace pgwarden::dcs::etcd
