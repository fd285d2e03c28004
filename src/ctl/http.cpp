// One HTTP(S) request to a member's REST API, bounded by a deadline (Beast on a private
// io_context, like ha/peer_status's fetches).
#include "pgwarden/ctl/http.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <type_traits>

#include "pgwarden/version.hpp"

namespace pgwarden::ctl {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

bool ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

template <class Stream>
class Exchange {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Exchange(ha::ApiUrl url, http::request<http::string_body> req, Clock::time_point deadline)
    requires(!kTls)
      : url_(std::move(url)), req_(std::move(req)), deadline_(deadline), stream_(ioc_) {}
  Exchange(ha::ApiUrl url, http::request<http::string_body> req, Clock::time_point deadline, asio::ssl::context& tls,
           bool verify_host)
    requires(kTls)
      : url_(std::move(url)), req_(std::move(req)), deadline_(deadline), stream_(ioc_, tls), verify_host_(verify_host) {}

  Result<HttpResponse> run() {
    parser_.body_limit(8 << 20);
    resolver_.async_resolve(url_.host, std::to_string(url_.port),
                            [this](const error_code& ec, tcp::resolver::results_type r) { on_resolve(ec, r); });
    ioc_.run_until(deadline_);
    if (!error_.empty()) return Status::Unavailable(error_);
    if (!done_) return Status::Unavailable("timed out");
    auto res = parser_.release();
    return HttpResponse{static_cast<int>(res.result_int()), res.body()};
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  void on_resolve(const error_code& ec, const tcp::resolver::results_type& results) {
    if (ec) return fail("cannot resolve " + url_.host, ec);
    lowest().expires_at(deadline_);
    lowest().async_connect(results, [this](const error_code& e, const tcp::endpoint&) { on_connect(e); });
  }
  void on_connect(const error_code& ec) {
    if (ec) return fail("cannot connect", ec);
    if constexpr (kTls) {
      SSL* ssl = stream_.native_handle();
      if (!ip_literal(url_.host)) SSL_set_tlsext_host_name(ssl, url_.host.c_str());
      if (verify_host_) stream_.set_verify_callback(asio::ssl::host_name_verification(url_.host));
      lowest().expires_at(deadline_);
      stream_.async_handshake(asio::ssl::stream_base::client, [this](const error_code& e) {
        if (e) {
          if (e.category() == asio::error::get_ssl_category() &&
              ERR_GET_REASON(static_cast<unsigned long>(e.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            error_ = std::string("TLS certificate verification failed: ") +
                     X509_verify_cert_error_string(SSL_get_verify_result(stream_.native_handle()));
            return;
          }
          return fail("TLS handshake failed", e);
        }
        send();
      });
    } else {
      send();
    }
  }
  void send() {
    lowest().expires_at(deadline_);
    http::async_write(stream_, req_, [this](const error_code& e, std::size_t) {
      if (e) return fail("cannot send", e);
      lowest().expires_at(deadline_);
      http::async_read(stream_, buffer_, parser_, [this](const error_code& e2, std::size_t) {
        if (e2) return fail("cannot read the reply", e2);
        done_ = true;
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    });
  }
  void fail(const std::string& what, const error_code& ec) {
    error_ = ec == beast::error::timeout ? std::string("timed out") : what + ": " + ec.message();
  }

  ha::ApiUrl url_;
  http::request<http::string_body> req_;
  Clock::time_point deadline_;
  asio::io_context ioc_;
  tcp::resolver resolver_{ioc_};
  Stream stream_;
  bool verify_host_ = false;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  bool done_ = false;
  std::string error_;
};

std::string auth_of(const nlohmann::json& section) {
  if (!section.is_object()) return "";
  auto a = section.find("authentication");
  if (a == section.end() || !a->is_object()) return "";
  auto text = [&](const char* k) {
    auto v = a->find(k);
    return v != a->end() && v->is_string() ? v->get<std::string>() : std::string();
  };
  std::string user = text("username"), password = text("password");
  return user.empty() && password.empty() ? "" : user + ":" + password;
}

}  // namespace

HttpOptions http_options(const config::Config& cfg, bool insecure) {
  HttpOptions o;
  o.tls = ha::peer_tls_options(cfg);
  if (insecure) o.tls.insecure = true;
  auto ctl = cfg.raw.find("ctl");
  if (ctl != cfg.raw.end()) o.basic_auth = auth_of(*ctl);
  if (o.basic_auth.empty() && (!cfg.restapi.username.empty() || !cfg.restapi.password.empty()))
    o.basic_auth = cfg.restapi.username + ":" + cfg.restapi.password;
  return o;
}

Result<HttpResponse> request_member(const std::string& api_url, const std::string& method, const std::string& path,
                                    const std::optional<std::string>& body, const HttpOptions& options) {
  auto url = ha::parse_api_url(api_url);
  if (!url) return Status::Invalid("unusable api_url \"" + api_url + "\"");
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) return Status::Invalid("unknown HTTP method " + method);
  http::request<http::string_body> req{verb, path, 11};
  bool v6 = url->host.find(':') != std::string::npos;
  req.set(http::field::host, (v6 ? "[" + url->host + "]" : url->host) + ":" + std::to_string(url->port));
  req.set(http::field::user_agent, std::string("pgwarden-ctl/") + kVersion);
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (!options.basic_auth.empty()) req.set(http::field::authorization, "Basic " + base64(options.basic_auth));
  if (body) {
    req.set(http::field::content_type, "application/json");
    req.body() = *body;
  }
  req.prepare_payload();
  const auto deadline = Clock::now() + options.timeout;
  try {
    if (url->scheme == "https") {
      auto tls = ha::make_client_tls_context(options.tls);
      if (!tls) return tls.status();
      return Exchange<TlsStream>(*url, std::move(req), deadline, **tls, !options.tls.insecure).run();
    }
    return Exchange<beast::tcp_stream>(*url, std::move(req), deadline).run();
  } catch (const std::exception& e) {
    return Status::Unavailable(e.what());
  }
}

}  // namespace pgwarden::ctl
