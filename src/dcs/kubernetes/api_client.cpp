#include "pgwarden/dcs/kubernetes/api_client.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "pgwarden/version.hpp"
#include "transport.hpp"

namespace pgwarden::dcs::k8s {

using detail::Connection;
using detail::IoError;
namespace http = boost::beast::http;
using std::chrono::milliseconds;

namespace {

constexpr auto kTokenRefresh = std::chrono::seconds(60);
constexpr auto kFirstBackoff = milliseconds(100);
constexpr auto kMaxBackoff = milliseconds(1000);
constexpr std::size_t kMaxIdle = 4;  // idle keep-alive connections kept for concurrent callers

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::optional<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) return std::nullopt;
  std::string t = trim(os.str());
  if (t.empty()) return std::nullopt;
  return t;
}

long long ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<milliseconds>(b - a).count();
}

// "HTTP 500: <message>" for logs and errors; the Status message when there is one.
std::string describe(const ApiReply& r) {
  std::string m = r.message();
  if (m.empty()) {
    m = r.body.substr(0, 200);
    for (auto& c : m)
      if (c == '\n' || c == '\r') c = ' ';
  }
  return "HTTP " + std::to_string(r.status) + (m.empty() ? "" : ": " + m);
}

// Retry-After in seconds (delta form); nullopt when absent or an HTTP date.
std::optional<milliseconds> retry_after(const ApiReply& r) {
  auto it = r.headers.find("retry-after");
  if (it == r.headers.end()) return std::nullopt;
  std::string v = trim(it->second);
  if (v.empty() || v.size() > 6 || !std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return milliseconds(0);  // present but not a number: retriable, with the normal backoff
  return milliseconds(std::stoll(v) * 1000);
}

bool is_write(const std::string& method) { return method != "GET" && method != "HEAD"; }

}  // namespace

// ---- ApiReply ----

nlohmann::json ApiReply::json() const { return nlohmann::json::parse(body, nullptr, false); }

std::string ApiReply::reason() const {
  auto j = json();
  if (j.is_object() && j.contains("reason") && j["reason"].is_string()) return j["reason"].get<std::string>();
  return "";
}

std::string ApiReply::message() const {
  auto j = json();
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return "";
}

// ---- Impl ----

struct ApiClient::Impl {
  Impl(const ApiServer& s, milliseconds timeout, std::set<int> codes)
      : server(s), retry_timeout_ms(timeout.count()), retriable(std::move(codes)) {
    name = s.scheme + "://" + s.authority();
    token = s.token;
    if (!s.token_file.empty()) {
      if (auto t = read_token_file(s.token_file)) token = *t;
      else
        spdlog::warn("Kubernetes API: cannot read the token file {}{}", s.token_file,
                     token.empty() ? "" : "; using the configured token");
      token_read_at = Clock::now();
    }
    if (s.scheme == "https") {
      try {
        tls = detail::make_tls_context(s);
      } catch (const std::exception& e) {
        config_error = Status::Invalid("Kubernetes API " + name + ": " + e.what());
      }
    } else if (s.scheme != "http") {
      config_error = Status::Invalid("Kubernetes API: unsupported scheme \"" + s.scheme + "\"");
    }
  }

  std::string current_token(bool force_reread) {
    std::lock_guard<std::mutex> lk(token_mu);
    if (server.token_file.empty()) return token;
    auto now = Clock::now();
    if (force_reread || now - token_read_at >= kTokenRefresh) {
      token_read_at = now;
      if (auto t = read_token_file(server.token_file)) {
        if (*t != token) spdlog::debug("Kubernetes API: token re-read from {}", server.token_file);
        token = *t;
      } else {
        spdlog::warn("Kubernetes API: cannot read the token file {}; keeping the previous token", server.token_file);
      }
    }
    return token;
  }

  http::request<http::string_body> make_request(const std::string& method, const std::string& target,
                                                const std::string& body, const std::string& content_type,
                                                const std::string& tok) const {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    if (req.method() == http::verb::unknown) req.method_string(method);
    req.set(http::field::host, server.authority());
    req.set(http::field::user_agent, std::string("pgwarden/") + kVersion);
    req.set(http::field::accept, "application/json");
    if (!tok.empty()) req.set(http::field::authorization, "Bearer " + tok);
    req.keep_alive(true);
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      req.set(http::field::content_type, content_type);
      req.body() = body;
      req.prepare_payload();
    }
    return req;
  }

  std::unique_ptr<Connection> take_idle() {
    std::lock_guard<std::mutex> lk(pool_mu);
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (c->open()) return c;
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<Connection> c) {
    std::lock_guard<std::mutex> lk(pool_mu);
    if (idle.size() < kMaxIdle) idle.push_back(std::move(c));
  }

  void drop_idle() {
    std::lock_guard<std::mutex> lk(pool_mu);
    idle.clear();
  }

  void count(const std::string& method) {
    if (is_write(method))
      writes.fetch_add(1);
    else
      reads.fetch_add(1);
  }

  void log_warnings(const ApiReply& r) {
    auto it = r.headers.find("warning");
    if (it == r.headers.end()) return;
    std::lock_guard<std::mutex> lk(warn_mu);
    if (seen_warnings.size() < 1000 && seen_warnings.insert(it->second).second)
      spdlog::warn("Kubernetes API {} warns: {}", name, it->second);
  }

  void failed(const std::string& what) {
    if (!failing.exchange(true))
      spdlog::warn("Kubernetes API {}: {} (retrying)", name, what);
    else
      spdlog::debug("Kubernetes API {}: {}", name, what);
  }

  void succeeded() {
    if (failing.exchange(false)) spdlog::info("Kubernetes API {}: reachable again", name);
  }

  struct Attempt {
    IoError error;
    ApiReply reply;
  };

  // One request on a pooled or new connection. A request that fails on a reused connection
  // before any byte of the reply is sent again at once on a new connection.
  Attempt attempt(const std::string& method, const std::string& target, const std::string& body,
                  const std::string& content_type, const std::string& tok, Clock::time_point deadline) {
    auto req = make_request(method, target, body, content_type, tok);
    for (int round = 0; round < 2; ++round) {
      auto conn = take_idle();
      if (!conn) {
        conn = std::make_unique<Connection>(server, tls);
        // A blackholed host must not eat the whole budget: connecting gets half of it (at least 1 s).
        auto budget = std::max<milliseconds>(milliseconds(1000), milliseconds(retry_timeout_ms.load() / 2));
        auto connect_deadline = std::min(deadline, Clock::now() + budget);
        if (auto e = conn->connect(connect_deadline, nullptr)) return {e, {}};
      }
      bool reused = conn->uses > 0;
      count(method);
      auto e = conn->write(req, deadline);
      Connection::Parser parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(64ull * 1024 * 1024);
      if (!e) e = conn->read(parser, deadline);
      if (e) {
        if (reused && e.kind == IoError::kClosedEarly) {
          spdlog::debug("Kubernetes API {}: kept-alive connection was closed ({}); reconnecting", name, e.message);
          drop_idle();  // the others are most likely stale too
          continue;
        }
        return {e, {}};
      }
      auto& res = parser.get();
      Attempt a;
      a.reply.status = static_cast<int>(res.result_int());
      a.reply.body = std::move(res.body());
      for (auto& h : res) {
        std::string n(h.name_string());
        for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto [it, fresh] = a.reply.headers.emplace(n, std::string(h.value()));
        if (!fresh) it->second += ", " + std::string(h.value());
      }
      if (res.keep_alive() && conn->open()) give_back(std::move(conn));
      return a;
    }
    return {{IoError::kIo, "connection closed twice before the reply"}, {}};
  }

  const ApiServer& server;
  std::string name;
  std::atomic<long long> retry_timeout_ms;
  std::set<int> retriable;
  std::shared_ptr<boost::asio::ssl::context> tls;
  Status config_error;

  std::mutex token_mu;
  std::string token;
  Clock::time_point token_read_at{};

  std::mutex pool_mu;
  std::vector<std::unique_ptr<Connection>> idle;

  std::mutex warn_mu;
  std::set<std::string> seen_warnings;

  std::atomic<bool> failing{false};
  std::atomic<uint64_t> reads{0}, writes{0};
};

// ---- ApiClient ----

ApiClient::ApiClient(ApiServer server, milliseconds retry_timeout, std::set<int> retriable)
    : server_(std::move(server)), impl_(std::make_unique<Impl>(server_, retry_timeout, std::move(retriable))) {}

ApiClient::~ApiClient() = default;

void ApiClient::set_retry_timeout(milliseconds t) { impl_->retry_timeout_ms.store(t.count()); }

ClientCounters ApiClient::counters() const { return ClientCounters{impl_->reads.load(), impl_->writes.load()}; }

Result<ApiReply> ApiClient::call(const std::string& method, const std::string& target, const std::string& body,
                                 const std::string& content_type) {
  auto& im = *impl_;
  if (!im.config_error.ok()) return im.config_error;
  const auto start = Clock::now();
  const auto deadline = start + milliseconds(im.retry_timeout_ms.load());
  auto backoff = kFirstBackoff;
  bool reread_after_401 = false;
  int attempts = 0;
  std::string last_error = "no attempt made";
  for (;;) {
    ++attempts;
    std::string tok = im.current_token(false);
    Impl::Attempt a;
    try {
      a = im.attempt(method, target, body, content_type, tok, deadline);
    } catch (const std::exception& e) {
      a.error = {IoError::kIo, e.what()};
    }
    milliseconds wait = backoff;
    if (a.error) {
      last_error = a.error.message;
      if (a.error.kind == IoError::kCertificate) {
        spdlog::error("Kubernetes API {}: {}", im.name, last_error);
        return Status::Unavailable("Kubernetes API " + im.name + ": " + last_error);
      }
      im.failed(method + " " + target + ": " + last_error);
    } else {
      ApiReply& r = a.reply;
      im.log_warnings(r);
      if (r.status == 401 && !reread_after_401 && !im.server.token_file.empty()) {
        // The token may have been rotated: read the file again and retry once, at once.
        reread_after_401 = true;
        spdlog::info("Kubernetes API {}: 401 Unauthorized; re-reading the token file {}", im.name,
                     im.server.token_file);
        im.current_token(true);
        continue;
      }
      auto ra = retry_after(r);
      if (!im.retriable.count(r.status) && !ra) {
        im.succeeded();
        return std::move(r);
      }
      last_error = describe(r);
      im.failed(method + " " + target + ": " + last_error);
      if (ra && ra->count() > 0) wait = *ra;
    }
    auto now = Clock::now();
    if (now + wait >= deadline) break;
    std::this_thread::sleep_for(wait);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
  return Status::Unavailable("Kubernetes API " + im.name + ": " + method + " " + target + ": " + last_error +
                             " (gave up after " + std::to_string(attempts) + " attempt" + (attempts == 1 ? "" : "s") +
                             " in " + std::to_string(ms_between(start, Clock::now())) + " ms)");
}

Result<WatchEnd> ApiClient::watch(const std::string& target, const std::function<bool(const nlohmann::json&)>& on_event,
                                  const util::WakeSignal* cancel) {
  auto& im = *impl_;
  if (!im.config_error.ok()) return im.config_error;
  auto unavailable = [&](const std::string& what) {
    return Status::Unavailable("Kubernetes API " + im.name + ": watch " + target + ": " + what);
  };
  const auto deadline = Clock::now() + milliseconds(im.retry_timeout_ms.load());
  for (int round = 0;; ++round) {
    try {
      Connection conn(im.server, im.tls);
      if (auto e = conn.connect(deadline, cancel)) {
        if (e.kind == IoError::kCancelled) return WatchEnd::kCancelled;
        return unavailable(e.message);
      }
      auto req = im.make_request("GET", target, "", "", im.current_token(false));
      im.count("GET");
      if (auto e = conn.write(req, deadline)) return unavailable(e.message);
      Connection::Parser parser;
      parser.header_limit(64 * 1024);
      // A number, not boost::none: Boost 1.74 compares Content-Length against the optional and
      // then rejects every sized body when it is empty.
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      if (auto e = conn.read_header(parser, deadline, cancel)) {
        if (e.kind == IoError::kCancelled) return WatchEnd::kCancelled;
        return unavailable(e.message);
      }
      const int status = static_cast<int>(parser.get().result_int());
      if (status != 200) {
        // Read the (short) error body for its message, within the same budget.
        bool eof = false;
        while (!eof) {
          if (auto e = conn.read_some(parser, deadline, cancel, eof)) break;
        }
        ApiReply r;
        r.status = status;
        r.body = parser.get().body();
        if (status == 401 && round == 0 && !im.server.token_file.empty()) {
          spdlog::info("Kubernetes API {}: watch got 401 Unauthorized; re-reading the token file {}", im.name,
                       im.server.token_file);
          im.current_token(true);
          continue;
        }
        return Status::Failed(describe(r));
      }
      im.succeeded();
      std::string pending;
      // An ERROR event (a Status, e.g. 410 Expired for a too-old resourceVersion) ends the watch
      // like a non-200 answer would: the caller re-lists either way.
      std::optional<Status> error_event;
      auto is_error_event = [&](const nlohmann::json& ev) {
        if (!ev.is_object() || ev.value("type", "") != "ERROR") return false;
        ApiReply r;
        const auto& obj = ev.contains("object") ? ev["object"] : nlohmann::json();
        r.status = obj.is_object() && obj.contains("code") && obj["code"].is_number_integer() ? obj["code"].get<int>() : 500;
        r.body = obj.dump();
        error_event = Status::Failed(describe(r));
        return true;
      };
      auto deliver = [&](bool final) -> bool {  // false: on_event asked to stop
        std::size_t start = 0;
        for (;;) {
          auto nl = pending.find('\n', start);
          if (nl == std::string::npos) break;
          std::string line = pending.substr(start, nl - start);
          start = nl + 1;
          if (trim(line).empty()) continue;
          auto ev = nlohmann::json::parse(line, nullptr, false);
          if (ev.is_discarded()) {
            spdlog::warn("Kubernetes API {}: skipping a malformed watch event: {}", im.name, line.substr(0, 200));
            continue;
          }
          if (is_error_event(ev)) return false;
          if (!on_event(ev)) return false;
        }
        pending.erase(0, start);
        if (final && !trim(pending).empty()) {
          auto ev = nlohmann::json::parse(pending, nullptr, false);
          pending.clear();
          if (ev.is_discarded()) {
            spdlog::warn("Kubernetes API {}: skipping a truncated watch event at the end of the stream", im.name);
          } else if (is_error_event(ev) || !on_event(ev)) {
            return false;
          }
        }
        return true;
      };
      for (;;) {
        bool eof = false;
        auto e = conn.read_some(parser, Clock::time_point::max(), cancel, eof);
        pending += parser.get().body();
        parser.get().body().clear();
        if (!deliver(eof)) {
          if (error_event) return *error_event;
          return WatchEnd::kStopped;
        }
        if (e) {
          if (e.kind == IoError::kCancelled) return WatchEnd::kCancelled;
          spdlog::debug("Kubernetes API {}: watch {} ended: {}", im.name, target, e.message);
          return WatchEnd::kClosed;
        }
        if (eof) return WatchEnd::kClosed;
        if (cancel && cancel->is_set()) return WatchEnd::kCancelled;
      }
    } catch (const std::exception& e) {
      return unavailable(e.what());
    }
  }
}

}  // namespace pgwarden::dcs::k8s
