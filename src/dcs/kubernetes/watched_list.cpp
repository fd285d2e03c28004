#include "pgwarden/dcs/kubernetes/watched_list.hpp"

#include <charconv>

#include "pgwarden/util/log.hpp"

namespace pgwarden::dcs::k8s {

using nlohmann::json;

namespace {

// Pause before re-listing after an error: Patroni's one second, so a dead API server costs
// one request per second per list, not a busy loop.
constexpr auto kRelistPause = std::chrono::seconds(1);

std::optional<uint64_t> as_number(const std::string& s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return v;
  return std::nullopt;
}

std::string name_of(const json& o) { return o.value("/metadata/name"_json_pointer, std::string()); }
std::string rv_of(const json& o) { return o.value("/metadata/resourceVersion"_json_pointer, std::string()); }

}  // namespace

bool rv_newer(const std::string& a, const std::string& b) {
  if (b.empty()) return true;
  auto x = as_number(a), y = as_number(b);
  if (x && y) return *x > *y;
  return a != b;
}

WatchedList::WatchedList(ApiClient& client, std::string collection, std::string selector, OnChange on_change)
    : client_(client), collection_(std::move(collection)), selector_(std::move(selector)),
      on_change_(std::move(on_change)) {}

WatchedList::~WatchedList() { stop(); }

void WatchedList::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lk(mu_);
    stopping_ = false;
  }
  cancel_.take();
  thread_ = std::thread([this] { run(); });
}

void WatchedList::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    ready_ = false;
  }
  cancel_.set();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool WatchedList::wait_ready(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return ready_ || stopping_; }) && ready_;
}

bool WatchedList::ready() const {
  std::lock_guard lk(mu_);
  return ready_;
}

std::optional<json> WatchedList::get(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = items_.find(name);
  if (it == items_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, json> WatchedList::items() const {
  std::lock_guard lk(mu_);
  return items_;
}

void WatchedList::put(const json& object) {
  std::lock_guard lk(mu_);
  store_locked(object, false);
}

void WatchedList::resync() { cancel_.set(); }

void WatchedList::store_locked(const json& object, bool deleted) {
  std::string name = name_of(object);
  if (name.empty()) return;
  auto it = items_.find(name);
  json before = it == items_.end() ? json() : it->second;
  if (deleted) {
    if (it == items_.end()) return;
    items_.erase(it);
    if (on_change_) on_change_(before, json());
    return;
  }
  if (it != items_.end() && !rv_newer(rv_of(object), rv_of(it->second))) return;
  items_[name] = object;
  if (on_change_) on_change_(before, object);
}

void WatchedList::sleep_interruptible(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [&] { return stopping_; });
}

std::optional<std::string> WatchedList::relist() {
  auto r = client_.call("GET", collection_ + "?labelSelector=" + selector_);
  std::string why;
  if (!r.ok()) why = r.status().message();
  else if (r->status == 401) why = "the API server rejected our credentials (HTTP 401: " + r->message() + ")";
  else if (r->status == 403) why = "permission denied (HTTP 403: " + r->message() + ")";
  else if (r->status != 200) why = "HTTP " + std::to_string(r->status) + ": " + r->message();
  json list;
  if (why.empty()) {
    list = r->json();
    if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) why = "the reply is not a list";
  }
  if (!why.empty()) {
    // Once per distinct failure, not once per second while the API server is away.
    if (why != last_error_) spdlog::warn("kubernetes: cannot list {}: {}", collection_, why);
    last_error_ = why;
    return std::nullopt;
  }
  last_error_.clear();
  std::lock_guard lk(mu_);
  std::map<std::string, json> fresh;
  for (auto& item : list["items"])
    if (auto n = name_of(item); !n.empty()) fresh[n] = std::move(item);
  for (auto it = items_.begin(); it != items_.end();) {
    if (!fresh.count(it->first)) {
      json before = it->second;
      it = items_.erase(it);
      if (on_change_) on_change_(before, json());
    } else {
      ++it;
    }
  }
  for (auto& [n, obj] : fresh) {
    auto it = items_.find(n);
    json before = it == items_.end() ? json() : it->second;
    if (it != items_.end() && rv_of(it->second) == rv_of(obj)) continue;
    items_[n] = obj;
    if (on_change_) on_change_(before, obj);
  }
  ready_ = true;
  cv_.notify_all();
  return list.value("/metadata/resourceVersion"_json_pointer, std::string());
}

bool WatchedList::apply(const json& event, std::string& rv) {
  if (!event.is_object()) return true;
  std::string type = event.value("type", "");
  const json& obj = event.contains("object") ? event["object"] : json();
  if (type == "ERROR") {
    int code = obj.is_object() ? obj.value("code", 0) : 0;
    if (code != 410) spdlog::warn("kubernetes: watch of {} ended with an error: {}", collection_, obj.dump());
    return false;
  }
  if (!obj.is_object()) return true;
  if (auto v = rv_of(obj); !v.empty()) rv = v;
  if (type == "BOOKMARK") return true;
  std::lock_guard lk(mu_);
  if (type == "ADDED" || type == "MODIFIED") store_locked(obj, false);
  else if (type == "DELETED") store_locked(obj, true);
  return true;
}

void WatchedList::run() {
  bool failing = false;
  while (true) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
    }
    cancel_.take();
    auto rv = relist();
    if (!rv) {
      std::lock_guard lk(mu_);
      ready_ = false;
    }
    if (!rv) {
      failing = true;
      sleep_interruptible(kRelistPause);
      continue;
    }
    if (failing) spdlog::info("kubernetes: {} is readable again", collection_);
    failing = false;
    // Watch from the list's version; a stream the server ends cleanly resumes from the last
    // version seen, anything else re-lists.
    while (true) {
      std::string target = collection_ + "?labelSelector=" + selector_ + "&watch=1&allowWatchBookmarks=true" +
                           "&resourceVersion=" + *rv;
      bool relist_needed = false;
      auto end = client_.watch(
          target,
          [&](const json& ev) {
            if (!apply(ev, *rv)) {
              relist_needed = true;
              return false;
            }
            return true;
          },
          &cancel_);
      {
        std::lock_guard lk(mu_);
        if (stopping_) return;
      }
      if (end.ok() && *end == WatchEnd::kClosed && !relist_needed) continue;
      if (!end.ok()) {
        const auto& msg = end.status().message();
        if (msg.rfind("HTTP 410", 0) != 0) {
          spdlog::warn("kubernetes: watch of {} failed: {}", collection_, msg);
          std::lock_guard lk(mu_);
          ready_ = false;
        }
        if (end.status().code() == Code::kUnavailable) sleep_interruptible(kRelistPause);
      }
      break;
    }
  }
}

}  // namespace pgwarden::dcs::k8s
