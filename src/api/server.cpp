// The REST API's HTTP transport: one I/O thread accepting and reading/writing connections
// asynchronously, and a small worker pool running the handlers, because a status request
// queries PostgreSQL and may take seconds. Every read and write has a deadline so a slow or
// silent client only costs its own connection. With restapi.certfile every connection is
// TLS (OpenSSL through Asio); the handshake runs on the connection's own strand, so a client
// that fails or stalls it only loses its own connection.
#include "pgwarden/api/server.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>

#include "pgwarden/api/router.hpp"

namespace pgwarden::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr auto kReadTimeout = std::chrono::seconds(30);  // whole request, headers included
constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr auto kDrainTimeout = std::chrono::seconds(5);  // reading the rest of a refused body
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);  // waiting for the client's close_notify
constexpr uint64_t kBodyLimit = 1024 * 1024;
constexpr uint32_t kHeaderLimit = 16 * 1024;
constexpr size_t kDrainLimit = 64 * 1024 * 1024;
constexpr size_t kWorkers = 2;  // probes and peers are few; each idle thread costs memory

bool is_http_error(const beast::error_code& ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_method).category();
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection: (TLS handshake,) read a request, hand it to the worker pool, write the
// answer, repeat while the client keeps the connection alive. `Stream` is beast::tcp_stream
// or TlsStream.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

 public:
  Session(tcp::socket socket, const Server::Handler& handler, net::thread_pool& workers)
    requires(!kTls)
      : stream_(std::move(socket)), handler_(handler), workers_(workers) {}
  Session(tcp::socket socket, std::shared_ptr<net::ssl::context> tls, const Server::Handler& handler,
          net::thread_pool& workers)
    requires(kTls)
      : stream_(std::move(socket), *tls), handler_(handler), workers_(workers), tls_ctx_(std::move(tls)) {}

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->read_header();
      }
    });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void handshake() {
    lowest().expires_after(kHandshakeTimeout);
    stream_.async_handshake(net::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        // Plain HTTP on the TLS port, an unknown CA, a missing client certificate: the
        // client learns it from the alert; only this connection ends.
        beast::error_code ep_ec;
        auto ep = self->lowest().socket().remote_endpoint(ep_ec);
        spdlog::debug("REST API: TLS handshake with {} failed: {}", ep_ec ? std::string("?") : ep.address().to_string(),
                      ec.message());
        return self->close_now();
      }
      self->tls_up_ = true;
      self->read_header();
    });
  }

  void read_header() {
    parser_.emplace();
    parser_->body_limit(kBodyLimit);
    parser_->header_limit(kHeaderLimit);
    lowest().expires_after(kReadTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    // curl sends "Expect: 100-continue" for larger bodies and would otherwise stall a second.
    auto expect = req.find(http::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue") && !parser_->is_done() &&
        req.version() >= 11) {
      auto self = shared_from_this();
      auto msg = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      lowest().expires_after(kWriteTimeout);
      net::async_write(stream_, net::buffer(*msg), [self, msg](beast::error_code wec, size_t) {
        if (wec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    lowest().expires_after(kReadTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    lowest().expires_never();  // the handler may take a while; the write sets its own deadline
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    split_target(req.target, &req.path, &req.query);
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace(std::move(name), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    if constexpr (kTls) {
      req.tls = true;
      // A certificate is only kept by OpenSSL when it verified (verify_client optional or
      // required); unsafe requests without one are refused as Patroni does.
      if (X509* peer = SSL_get1_peer_certificate(stream_.native_handle())) {
        req.client_cert = SSL_get_verify_result(stream_.native_handle()) == X509_V_OK;
        X509_free(peer);
      }
    }
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    net::post(workers_, [self = shared_from_this(), req = std::move(req)] {
      HttpResponse res = self->handler_(req);
      net::post(self->stream_.get_executor(),
                [self, res = std::move(res)]() mutable { self->write(std::move(res), false); });
    });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit) return reply_error(413, "Request Entity Too Large", true);
    if (ec == http::error::header_limit) return reply_error(431, "Request Header Fields Too Large", false);
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) return close();
    if (is_http_error(ec)) return reply_error(400, "Bad request", false);
    // Timeouts, resets and aborts: nobody is listening for an answer.
    close();
  }

  void reply_error(int status, const std::string& message, bool drain) {
    HttpResponse res;
    res.status = status;
    res.content_type = "text/html";
    res.body = message;
    version_ = 11;
    keep_alive_ = false;
    write(std::move(res), drain);
  }

  void write(HttpResponse res, bool drain_after) {
    response_.emplace();
    auto& out = *response_;
    out.version(version_);
    out.result(static_cast<unsigned>(res.status));
    if (!res.status_only) {
      if (!res.content_type.empty()) out.set(http::field::content_type, res.content_type);
      for (const auto& [name, value] : res.headers) out.set(name, value);
      out.body() = std::move(res.body);
    }
    out.keep_alive(keep_alive_);
    out.prepare_payload();
    lowest().expires_after(kWriteTimeout);
    http::async_write(stream_, out, [self = shared_from_this(), drain_after](beast::error_code ec, size_t) {
      self->on_write(ec, drain_after);
    });
  }

  void on_write(beast::error_code ec, bool drain_after) {
    response_.reset();
    if (ec) return close();
    if (drain_after) return start_drain();
    if (!keep_alive_) return close();
    read_header();
  }

  // After refusing a body, read and discard what the client still sends before closing:
  // closing with unread data makes the kernel send RST, and the client may then never see
  // the error response.
  void start_drain() {
    beast::error_code ignored;
    tls_up_ = false;  // the socket is half closed: no close_notify after this
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().expires_after(kDrainTimeout);
    drained_ = buffer_.size();
    buffer_.consume(buffer_.size());
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(drain_buf_), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kDrainLimit) return self->close();
      self->drain();
    });
  }

  // Over TLS the connection ends with a close_notify first (bounded wait for the client's).
  void close() {
    if constexpr (kTls) {
      if (tls_up_) {
        tls_up_ = false;
        lowest().expires_after(kTlsShutdownTimeout);
        stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->close_now(); });
        return;
      }
    }
    close_now();
  }

  void close_now() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }

  Stream stream_;
  const Server::Handler& handler_;
  net::thread_pool& workers_;
  // Keeps the context this connection was made with alive across a reload.
  std::shared_ptr<net::ssl::context> tls_ctx_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  std::array<char, 16 * 1024> drain_buf_{};
  size_t drained_ = 0;
  bool tls_up_ = false;
};

// "", "*", "0.0.0.0" mean every IPv4 address; "::" every address (dual stack when the
// kernel allows); anything else is a literal address or a name resolved once.
// `key` names the setting in messages (restapi.listen, backup_api.listen).
Result<tcp::endpoint> listen_endpoint(net::io_context& ioc, const config::HostPort& listen, const std::string& key) {
  if (listen.port < 0 || listen.port > 65535) return Status::Invalid(key + ": bad port");
  const auto port = static_cast<unsigned short>(listen.port);
  std::string host = listen.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "*" || host == "0.0.0.0") return tcp::endpoint(net::ip::address_v4::any(), port);
  if (host == "::") return tcp::endpoint(net::ip::address_v6::any(), port);
  beast::error_code ec;
  auto addr = net::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(addr, port);
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec || results.empty()) {
    return Status::Unavailable(key + ": cannot resolve " + host + ": " + ec.message());
  }
  return results.begin()->endpoint();
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  std::string out;
  while (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += ERR_reason_error_string(e) ? ERR_reason_error_string(e) : buf;
    e = ERR_get_error();
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// Names the file and why it cannot be used, before OpenSSL's less precise errors.
Status check_readable(const std::string& key, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0)
    return Status::Invalid("restapi." + key + " " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

Result<std::shared_ptr<net::ssl::context>> make_server_tls_context(const config::RestApiConfig& cfg) {
  if (cfg.certfile.empty()) return Status::Invalid("restapi.certfile is not set");
  const std::string keyfile = cfg.keyfile.empty() ? cfg.certfile : cfg.keyfile;
  const std::string key_key = cfg.keyfile.empty() ? "certfile" : "keyfile";
  std::string verify = cfg.verify_client;
  for (auto& c : verify) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!verify.empty() && verify != "none" && verify != "optional" && verify != "required")
    return Status::Invalid("restapi.verify_client: expected none, optional or required, got " + cfg.verify_client);
  if (auto st = check_readable("certfile", cfg.certfile); !st) return st;
  if (auto st = check_readable(key_key, keyfile); !st) return st;
  if (!cfg.cafile.empty()) {
    if (auto st = check_readable("cafile", cfg.cafile); !st) return st;
  }

  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ERR_clear_error();
  // Python's default server context: TLS 1.2 or newer, no compression, fresh (EC)DH keys.
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_compression |
                   net::ssl::context::single_dh_use);
  if (!cfg.ciphers.empty() && SSL_CTX_set_cipher_list(native, cfg.ciphers.c_str()) != 1)
    return Status::Invalid("restapi.ciphers " + cfg.ciphers + ": " + openssl_error());
  if (!cfg.keyfile_password.empty()) {
    ctx->set_password_callback(
        [password = cfg.keyfile_password](std::size_t, net::ssl::context::password_purpose) { return password; });
  }
  if (SSL_CTX_use_certificate_chain_file(native, cfg.certfile.c_str()) != 1)
    return Status::Invalid("restapi.certfile " + cfg.certfile + ": cannot load the certificate: " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(native, keyfile.c_str(), SSL_FILETYPE_PEM) != 1)
    return Status::Invalid("restapi." + key_key + " " + keyfile + ": cannot load the private key: " + openssl_error());
  if (SSL_CTX_check_private_key(native) != 1)
    return Status::Invalid("restapi." + key_key + " " + keyfile + ": the key does not match restapi.certfile " +
                           cfg.certfile + ": " + openssl_error());

  // As in Patroni: without verify_client no certificate is asked for; "optional" asks and
  // verifies one if sent; "required" ends the handshake without a valid one.
  if (verify == "optional" || verify == "required") {
    if (!cfg.cafile.empty()) {
      if (SSL_CTX_load_verify_locations(native, cfg.cafile.c_str(), nullptr) != 1)
        return Status::Invalid("restapi.cafile " + cfg.cafile + ": " + openssl_error());
      // Tells clients which CA to pick a certificate for.
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.cafile.c_str())) {
        SSL_CTX_set_client_CA_list(native, names);
      }
    } else if (SSL_CTX_set_default_verify_paths(native) != 1) {
      return Status::Invalid("restapi: cannot load the system's certificate authorities: " + openssl_error());
    }
    int mode = SSL_VERIFY_PEER;
    if (verify == "required") mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(native, mode, nullptr);
    // Session resumption with client verification needs an id context.
    static const unsigned char kSessionContext[] = "pgwarden-restapi";
    SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  } else if (!cfg.cafile.empty()) {
    if (SSL_CTX_load_verify_locations(native, cfg.cafile.c_str(), nullptr) != 1)
      return Status::Invalid("restapi.cafile " + cfg.cafile + ": " + openssl_error());
  }
  ERR_clear_error();
  return ctx;
}

}  // namespace

struct Server::Impl {
  Impl(config::RestApiConfig c, ServerDeps d) : cfg(c), router(std::in_place, std::move(c), std::move(d)) {
    handler = [this](const HttpRequest& req) { return router->handle(req); };
  }
  // Another API (the backup API) on the same transport: plain HTTP, its own handler, which
  // must not throw past this wrapper.
  Impl(config::HostPort listen, Handler h, std::string server_name) : name(std::move(server_name)) {
    cfg.listen = std::move(listen);
    listen_key = name + " listen address";
    handler = [h = std::move(h), this](const HttpRequest& req) {
      try {
        return h(req);
      } catch (const std::exception& e) {
        spdlog::error("{}: handler failed: {}", name, e.what());
      } catch (...) {
        spdlog::error("{}: handler failed", name);
      }
      HttpResponse res;
      res.status = 500;
      res.content_type = "application/json";
      res.body = R"({"error": "internal error"})";
      return res;
    };
  }

  void accept() {
    acceptor->async_accept(net::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
      if (ec) {
        // Out of descriptors and the like: back off instead of spinning on the error.
        spdlog::warn("{}: accept failed: {}", name, ec.message());
        retry_timer->expires_after(std::chrono::milliseconds(100));
        retry_timer->async_wait([this](beast::error_code tec) {
          if (!tec && acceptor->is_open()) accept();
        });
        return;
      }
      beast::error_code ignored;
      socket.set_option(net::socket_base::keep_alive(true), ignored);
      std::shared_ptr<net::ssl::context> ctx;
      {
        std::lock_guard<std::mutex> lock(tls_mu);
        ctx = tls;
      }
      if (ctx) {
        std::make_shared<Session<TlsStream>>(std::move(socket), std::move(ctx), handler, *workers)->start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(std::move(socket), handler, *workers)->start();
      }
      accept();
    });
  }

  void run_io() {
    // A handler that throws must not end the loop and leave the port dead.
    for (;;) {
      try {
        ioc->run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("{}: unexpected error: {}", name, e.what());
      }
    }
  }

  config::RestApiConfig cfg;
  std::string name = "REST API";            // in log lines
  std::string listen_key = "restapi.listen";  // in messages about the address
  std::optional<Router> router;   // the Patroni REST API; unset for a custom handler
  Handler handler;
  std::mutex mu;  // start/stop
  std::unique_ptr<net::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> retry_timer;
  std::unique_ptr<net::thread_pool> workers;
  std::mutex tls_mu;                        // guards tls (reload_tls swaps it)
  std::shared_ptr<net::ssl::context> tls;  // set when restapi.certfile is
  std::thread io_thread;
  int port = 0;
};

Server::Server(config::RestApiConfig cfg, ServerDeps deps)
    : impl_(std::make_unique<Impl>(std::move(cfg), std::move(deps))) {}

Server::Server(config::HostPort listen, Handler handler, std::string name)
    : impl_(std::make_unique<Impl>(std::move(listen), std::move(handler), std::move(name))) {}

Server::~Server() { stop(); }

Status Server::start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->io_thread.joinable()) return Status::Conflict(impl_->name + " server already started");
  try {
    std::shared_ptr<net::ssl::context> tls;
    if (!impl_->cfg.certfile.empty()) {
      auto ctx = make_server_tls_context(impl_->cfg);
      if (!ctx) return ctx.status();
      tls = std::move(*ctx);
    }
    auto ioc = std::make_unique<net::io_context>(1);
    auto ep = listen_endpoint(*ioc, impl_->cfg.listen, impl_->listen_key);
    if (!ep) return ep.status();
    auto acceptor = std::make_unique<tcp::acceptor>(*ioc);
    beast::error_code ec;
    acceptor->open(ep->protocol(), ec);
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec && ep->address().is_v6()) {
      beast::error_code ignored;  // dual stack is best effort, as in Patroni
      acceptor->set_option(net::ip::v6_only(false), ignored);
    }
    if (!ec) acceptor->bind(*ep, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::Unavailable(impl_->name + ": cannot listen on " + impl_->cfg.listen.to_string() + ": " +
                                 ec.message());
    }
    impl_->port = acceptor->local_endpoint().port();
    impl_->retry_timer = std::make_unique<net::steady_timer>(*ioc);
    impl_->acceptor = std::move(acceptor);
    impl_->ioc = std::move(ioc);
    impl_->workers = std::make_unique<net::thread_pool>(kWorkers);
    impl_->tls = std::move(tls);
    impl_->accept();
    impl_->io_thread = std::thread([impl = impl_.get()] { impl->run_io(); });
  } catch (const std::exception& e) {
    return Status::Failed(impl_->name + ": cannot start: " + e.what());
  }
  spdlog::info("{} listening on port {}{}", impl_->name, impl_->port, impl_->tls ? " (HTTPS)" : "");
  return Status::Ok();
}

Status Server::reload_tls(const config::RestApiConfig& cfg) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  bool running_tls;
  {
    std::lock_guard<std::mutex> tl(impl_->tls_mu);
    running_tls = impl_->tls != nullptr;
  }
  if (cfg.certfile.empty() != !running_tls)
    return Status::Invalid("restapi: switching between HTTP and HTTPS needs a restart");
  if (!running_tls) return Status::Ok();
  auto ctx = make_server_tls_context(cfg);
  if (!ctx) return ctx.status();
  std::lock_guard<std::mutex> tl(impl_->tls_mu);
  impl_->tls = std::move(*ctx);
  spdlog::info("REST API: TLS certificate and settings reloaded");
  return Status::Ok();
}

void Server::stop() {
  if (!impl_) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->io_thread.joinable()) return;
  impl_->ioc->stop();
  impl_->io_thread.join();
  // Queued requests are dropped; a handler already running finishes its PostgreSQL query.
  impl_->workers->stop();
  impl_->workers->join();
  impl_->workers.reset();
  beast::error_code ignored;
  impl_->acceptor->close(ignored);
  impl_->acceptor.reset();
  impl_->retry_timer.reset();
  // Destroying the context destroys the pending handlers, and with them every session,
  // which closes the client connections.
  impl_->ioc.reset();
  impl_->tls.reset();
}

int Server::bound_port() const { return impl_->port; }

}  // namespace pgwarden::api
