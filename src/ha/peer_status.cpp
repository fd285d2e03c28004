// Peer status check for leader races: reading a member's status document and deciding
// whether I am the healthiest candidate (both pure), plus the concurrent HTTP(S) fetch.
#include "pgwarden/ha/peer_status.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>

#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/log.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::ha {

using nlohmann::json;

namespace {

// Python truthiness, because Patroni tests fields with bool(...) / `if x`.
bool truthy(const json& j) {
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<int64_t>() != 0;
  if (j.is_number_unsigned()) return j.get<uint64_t>() != 0;
  if (j.is_number_float()) return j.get<double>() != 0.0;
  if (j.is_string()) return !j.get<std::string>().empty();
  return !j.empty();
}

// Locations are integers in Patroni's document; anything else (null, text) counts as 0.
int64_t as_int(const json& j) {
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_unsigned()) {
    auto v = j.get<uint64_t>();
    return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                           : static_cast<int64_t>(v);
  }
  if (j.is_number_float()) {
    double d = j.get<double>();
    if (!std::isfinite(d) || d < 0 || d >= 9.2e18) return 0;
    return static_cast<int64_t>(d);
  }
  return 0;
}

int64_t int_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? 0 : as_int(*it);
}

// Same reading as dcs::Member::nofailover(), so a member's DCS tags and its API answer agree.
bool nofailover_tag(const json& doc) {
  auto tags = doc.find("tags");
  if (tags == doc.end() || !tags->is_object()) return false;
  auto nf = tags->find("nofailover");
  if (nf == tags->end()) return false;
  if (nf->is_boolean()) return nf->get<bool>();
  if (nf->is_string()) return nf->get<std::string>() == "true";
  return false;
}

}  // namespace

PeerStatus parse_peer_status(const std::string& name, const std::string& body) {
  PeerStatus st;
  st.name = name;
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return st;  // also covers the "discarded" value of a parse error
  // Patroni accepts "wal" (newer wording) before "xlog"; without either the member is
  // treated as unknown.
  auto wal = doc.find("wal");
  if (wal == doc.end()) wal = doc.find("xlog");
  if (wal == doc.end() || !wal->is_object()) return st;

  st.reachable = true;
  auto loc = wal->find("location");
  // A primary reports only `location`; Patroni tells the roles apart by its truthiness.
  st.in_recovery = loc == wal->end() || !truthy(*loc);
  st.received = int_field(*wal, "received_location");
  st.replayed = int_field(*wal, "replayed_location");
  st.wal_position = st.in_recovery ? std::max(st.received, st.replayed) : as_int(*loc);

  auto tl = doc.find("timeline");
  if (tl != doc.end()) st.timeline = static_cast<int>(as_int(*tl));
  auto seen = doc.find("dcs_last_seen");
  if (seen != doc.end() && seen->is_number()) st.dcs_last_seen = seen->get<double>();
  auto wd = doc.find("watchdog_failed");
  st.watchdog_failed = wd != doc.end() && truthy(*wd);
  st.nofailover = nofailover_tag(doc);
  return st;
}

HealthVerdict is_healthiest(const std::string& me, int64_t my_wal_position, int my_timeline, bool i_am_nofailover,
                            int64_t leader_last_lsn, int64_t maximum_lag_on_failover,
                            const std::vector<PeerStatus>& peers) {
  if (i_am_nofailover) return {false, "I am tagged nofailover"};
  if (leader_last_lsn > 0) {
    int64_t lag = leader_last_lsn - my_wal_position;
    if (lag > maximum_lag_on_failover) {
      return {false, "lag " + std::to_string(lag) + " exceeds maximum_lag_on_failover " +
                         std::to_string(maximum_lag_on_failover)};
    }
  }
  int compared = 0;
  for (const auto& p : peers) {
    // Same filter as Patroni's failover_limitation(): such peers could not promote anyway.
    if (p.name == me || !p.reachable || p.nofailover || p.watchdog_failed) continue;
    ++compared;
    if (!p.in_recovery) return {false, p.name + " is already a primary"};
    if (p.timeline > my_timeline) {
      return {false, p.name + " is on a newer timeline: " + std::to_string(p.timeline) + " vs " +
                         std::to_string(my_timeline)};
    }
    if (p.wal_position > my_wal_position) {
      return {false, p.name + " is ahead: " + postgres::format_lsn(p.wal_position) + " vs " +
                         postgres::format_lsn(my_wal_position)};
    }
    // Equal positions leave both in the race; the DCS create-if-absent picks one.
  }
  return {true, "I am the healthiest (" + postgres::format_lsn(my_wal_position) + ", " + std::to_string(compared) +
                    " peers compared)"};
}

// --- api_url parsing and the HTTP(S) fetch.

std::optional<ApiUrl> parse_api_url(const std::string& url) {
  auto sep = url.find("://");
  if (sep == std::string::npos) return std::nullopt;
  ApiUrl u;
  u.scheme = url.substr(0, sep);
  std::transform(u.scheme.begin(), u.scheme.end(), u.scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (u.scheme != "http" && u.scheme != "https") return std::nullopt;

  std::string rest = url.substr(sep + 3);
  auto end = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, end);
  u.target = end == std::string::npos ? "/" : rest.substr(end);
  if (auto hash = u.target.find('#'); hash != std::string::npos) u.target.erase(hash);
  if (u.target.empty() || u.target[0] != '/') u.target.insert(0, "/");
  if (auto at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);

  std::string port_text;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    u.host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return std::nullopt;
      port_text = after.substr(1);
    }
  } else {
    auto colon = authority.find(':');
    if (colon != authority.rfind(':')) return std::nullopt;  // unbracketed IPv6 is ambiguous
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty()) return std::nullopt;
  if (port_text.empty()) {
    u.port = u.scheme == "https" ? 443 : 80;
  } else {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), [](unsigned char c) { return std::isdigit(c); })) return std::nullopt;
    u.port = std::stoi(port_text);
    if (u.port < 1 || u.port > 65535) return std::nullopt;
  }
  return u;
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMaxBody = 1 << 20;  // a status document is a few kB

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

bool ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string openssl_error() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    if (!out.empty()) out += "; ";
    const char* reason = ERR_reason_error_string(e);
    out += reason ? reason : "error " + std::to_string(e);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// One GET on its own io_context, every step bounded by the same absolute deadline.
// `Stream` is beast::tcp_stream (http) or TlsStream (https).
template <class Stream>
class Getter {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Getter(ApiUrl url, Clock::time_point deadline)
    requires(!kTls)
      : url_(std::move(url)), deadline_(deadline), stream_(ioc_) {}
  Getter(ApiUrl url, Clock::time_point deadline, asio::ssl::context& tls, bool verify_host)
    requires(kTls)
      : url_(std::move(url)), deadline_(deadline), stream_(ioc_, tls), verify_host_(verify_host) {}

  Result<std::string> run() {
    req_ = {http::verb::get, url_.target, 11};
    bool v6 = url_.host.find(':') != std::string::npos;
    req_.set(http::field::host, (v6 ? "[" + url_.host + "]" : url_.host) + ":" + std::to_string(url_.port));
    req_.set(http::field::user_agent, "pgwarden");
    req_.set(http::field::accept, "application/json");
    req_.set(http::field::connection, "close");
    parser_.body_limit(kMaxBody);
    resolver_.async_resolve(url_.host, std::to_string(url_.port),
                            [this](const error_code& ec, tcp::resolver::results_type r) { on_resolve(ec, r); });
    // The resolver is the one step tcp_stream's timer does not cover; run_until bounds it.
    ioc_.run_until(deadline_);
    if (!error_.empty()) return Status::Unavailable(error_);
    if (!done_) return Status::Unavailable("timed out");
    // The status code is not checked, like Patroni: health-check paths answer 503 with the
    // same document, and only its content matters.
    return parser_.release().body();
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void on_resolve(const error_code& ec, const tcp::resolver::results_type& results) {
    if (ec) return fail("cannot resolve", ec);
    lowest().expires_at(deadline_);
    lowest().async_connect(results, [this](const error_code& e, const tcp::endpoint&) { on_connect(e); });
  }
  void on_connect(const error_code& ec) {
    if (ec) return fail("cannot connect", ec);
    if constexpr (kTls) {
      SSL* ssl = stream_.native_handle();
      // SNI carries host names only (RFC 6066), never IP literals.
      if (!ip_literal(url_.host)) SSL_set_tlsext_host_name(ssl, url_.host.c_str());
      if (verify_host_) {
        // Matches IP literals against IP SANs and names against DNS SANs (and the CN).
        stream_.set_verify_callback([this, check = asio::ssl::host_name_verification(url_.host)](
                                        bool preverified, asio::ssl::verify_context& vc) mutable {
          bool ok = check(preverified, vc);
          if (preverified && !ok) host_mismatch_ = true;
          return ok;
        });
      }
      lowest().expires_at(deadline_);
      stream_.async_handshake(asio::ssl::stream_base::client, [this](const error_code& e) { on_handshake(e); });
    } else {
      send();
    }
  }
  void on_handshake(const error_code& ec) {
    if constexpr (kTls) {
      if (ec) {
        if (ec == beast::error::timeout) return fail("timed out", ec);
        if (ec.category() == asio::error::get_ssl_category() &&
            ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
          std::string why = host_mismatch_
                                ? "it is not valid for " + url_.host
                                : std::string(X509_verify_cert_error_string(SSL_get_verify_result(stream_.native_handle())));
          error_ = "TLS certificate verification failed: " + why;
          return;
        }
        return fail("TLS handshake failed", ec);
      }
    }
    send();
  }
  void send() {
    lowest().expires_at(deadline_);
    http::async_write(stream_, req_, [this](const error_code& e, std::size_t) { on_write(e); });
  }
  void on_write(const error_code& ec) {
    if (ec) return fail("cannot send", ec);
    lowest().expires_at(deadline_);
    http::async_read(stream_, buffer_, parser_, [this](const error_code& e, std::size_t) { on_read(e); });
  }
  void on_read(const error_code& ec) {
    // A peer that requires a client certificate we lack completes a TLS 1.3 handshake and
    // sends its alert afterwards: it shows up here.
    if (ec) return fail("cannot read reply", ec);
    done_ = true;
    // The reply is complete (Connection: close); no close_notify round trip is needed.
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
  void fail(const char* what, const error_code& ec) {
    error_ = ec == beast::error::timeout ? std::string("timed out") : std::string(what) + ": " + ec.message();
  }

  ApiUrl url_;
  Clock::time_point deadline_;
  asio::io_context ioc_;
  tcp::resolver resolver_{ioc_};
  Stream stream_;
  bool verify_host_ = false;
  bool host_mismatch_ = false;
  http::request<http::empty_body> req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  bool done_ = false;
  std::string error_;
};

// Shared between the caller and the workers. Workers are detached: getaddrinfo cannot be
// cancelled, so a worker stuck resolving a dead DNS name may outlive the call; it then
// writes into this (kept alive by shared_ptr) and nobody reads it.
struct Pending {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<PeerStatus> results;
  std::vector<std::string> errors;  // empty when reachable
  std::vector<bool> done;
  std::size_t left = 0;
};

// `tls` is set for https URLs; the worker keeps it alive.
void fetch_one(const std::shared_ptr<Pending>& state, std::size_t i, const std::string& name, const ApiUrl& url,
               Clock::time_point deadline, const std::shared_ptr<asio::ssl::context>& tls, bool verify_host) {
  PeerStatus st;
  st.name = name;
  std::string error;
  try {
    auto body = tls ? Getter<TlsStream>(url, deadline, *tls, verify_host).run()
                    : Getter<beast::tcp_stream>(url, deadline).run();
    if (!body) {
      error = body.status().message();
    } else {
      st = parse_peer_status(name, *body);
      if (!st.reachable) error = "reply is not a status document with xlog: " + body->substr(0, 200);
    }
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown error";
  }
  std::lock_guard lock(state->mu);
  state->results[i] = std::move(st);
  state->errors[i] = std::move(error);
  state->done[i] = true;
  --state->left;
  state->cv.notify_all();
}

}  // namespace

// The client context shared by one round of fetches (SSL_CTX is safe to share between
// threads once set up).
Result<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context(const PeerTlsOptions& o) {
  namespace asio = boost::asio;
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  if (o.insecure && o.cert_file.empty()) {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    if (!o.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(native, o.ca_file.c_str(), nullptr) != 1)
        return Status::Invalid("cannot load the CA file " + o.ca_file + ": " + openssl_error());
    } else if (SSL_CTX_set_default_verify_paths(native) != 1) {
      return Status::Invalid("cannot load the system's certificate authorities: " + openssl_error());
    }
  }
  if (!o.cert_file.empty()) {
    const std::string& key = o.key_file.empty() ? o.cert_file : o.key_file;
    if (!o.key_password.empty()) {
      ctx->set_password_callback(
          [password = o.key_password](std::size_t, asio::ssl::context::password_purpose) { return password; });
    }
    if (SSL_CTX_use_certificate_chain_file(native, o.cert_file.c_str()) != 1)
      return Status::Invalid("cannot load the client certificate " + o.cert_file + ": " + openssl_error());
    if (SSL_CTX_use_PrivateKey_file(native, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(native) != 1)
      return Status::Invalid("cannot load the client key " + key + ": " + openssl_error());
  }
  ERR_clear_error();
  return ctx;
}


PeerTlsOptions peer_tls_options(const config::Config& cfg) {
  auto ctl_value = [&](const char* key) -> std::string {
    auto ctl = cfg.raw.find("ctl");
    if (ctl == cfg.raw.end() || !ctl->is_object()) return "";
    auto v = ctl->find(key);
    return v != ctl->end() && v->is_string() ? v->get<std::string>() : "";
  };
  PeerTlsOptions o;
  // Patroni: config['ctl'].get(name) or config['restapi'].get(name).
  auto pick = [&](const char* ctl_key, const std::string& restapi_value) {
    std::string v = ctl_value(ctl_key);
    return v.empty() ? restapi_value : v;
  };
  o.ca_file = pick("cacert", cfg.restapi.cafile);
  o.cert_file = pick("certfile", cfg.restapi.certfile);
  o.key_file = pick("keyfile", cfg.restapi.keyfile);
  o.key_password = pick("keyfile_password", cfg.restapi.keyfile_password);
  auto ctl = cfg.raw.find("ctl");
  if (ctl != cfg.raw.end() && ctl->is_object()) {
    auto ins = ctl->find("insecure");
    if (ins != ctl->end()) {
      if (ins->is_boolean()) o.insecure = ins->get<bool>();
      if (ins->is_string()) {
        std::string v = ins->get<std::string>();
        std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
        o.insecure = v == "true" || v == "yes" || v == "on" || v == "1";
      }
    }
  }
  return o;
}

std::vector<PeerStatus> fetch_peer_statuses(const std::vector<dcs::Member>& members,
                                            std::chrono::milliseconds timeout, const PeerTlsOptions& tls_options) {
  const auto deadline = Clock::now() + timeout;
  const std::size_t n = members.size();
  auto state = std::make_shared<Pending>();
  state->results.resize(n);
  state->errors.resize(n);
  state->done.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) state->results[i].name = members[i].name;

  // Built once per round, and only when some peer advertises https.
  std::shared_ptr<asio::ssl::context> tls;
  std::string tls_error;
  auto tls_context = [&]() -> std::shared_ptr<asio::ssl::context> {
    if (!tls && tls_error.empty()) {
      try {
        auto ctx = make_client_tls_context(tls_options);
        if (ctx) {
          tls = std::move(*ctx);
        } else {
          tls_error = ctx.status().message();
        }
      } catch (const std::exception& e) {
        tls_error = std::string("cannot set up TLS: ") + e.what();
      }
    }
    return tls;
  };
  const bool verify_host = !tls_options.insecure;

  for (std::size_t i = 0; i < n; ++i) {
    const std::string api_url = members[i].api_url();
    auto url = parse_api_url(api_url);
    std::shared_ptr<asio::ssl::context> ctx;
    if (url && url->scheme == "https") ctx = tls_context();  // before taking the lock: it reads files
    std::lock_guard lock(state->mu);
    if (!url) {
      state->errors[i] = api_url.empty() ? "no api_url" : "invalid api_url";
      state->done[i] = true;
      continue;
    }
    if (url->scheme == "https") {
      if (!ctx) {
        state->errors[i] = tls_error;
        state->done[i] = true;
        continue;
      }
    }
    try {
      std::thread(fetch_one, state, i, members[i].name, *url, deadline, ctx, verify_host).detach();
      ++state->left;
    } catch (const std::exception& e) {
      state->errors[i] = std::string("cannot start request thread: ") + e.what();
      state->done[i] = true;
    }
  }

  std::vector<PeerStatus> out;
  std::vector<std::string> errors;
  {
    std::unique_lock lock(state->mu);
    state->cv.wait_until(lock, deadline, [&] { return state->left == 0; });
    out = state->results;
    errors = state->errors;
    for (std::size_t i = 0; i < n; ++i) {
      if (!state->done[i]) errors[i] = "timed out";
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      out[i] = PeerStatus{};
      out[i].name = members[i].name;
      spdlog::warn("Request failed to {}: GET {} ({})", members[i].name, members[i].api_url(), errors[i]);
    } else {
      spdlog::info("Got response from {} {}: wal_position={} timeline={} in_recovery={}", out[i].name,
                   members[i].api_url(), out[i].wal_position, out[i].timeline, out[i].in_recovery);
    }
  }
  return out;
}

}  // namespace pgwarden::ha
