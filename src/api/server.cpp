// The REST API's HTTP transport: one I/O thread accepting and reading/writing connections
// asynchronously, and a small worker pool running the handlers, because a status request
// queries PostgreSQL and may take seconds. Every read and write has a deadline so a slow or
// silent client only costs its own connection.
#include "pgwarden/api/server.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

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
constexpr uint64_t kBodyLimit = 1024 * 1024;
constexpr uint32_t kHeaderLimit = 16 * 1024;
constexpr size_t kDrainLimit = 64 * 1024 * 1024;
constexpr size_t kWorkers = 2;  // probes and peers are few; each idle thread costs memory

bool is_http_error(const beast::error_code& ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_method).category();
}

// One connection: read a request, hand it to the worker pool, write the answer, repeat
// while the client keeps the connection alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Router& router, net::thread_pool& workers)
      : stream_(std::move(socket)), router_(router), workers_(workers) {}

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->body_limit(kBodyLimit);
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(kReadTimeout);
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
      stream_.expires_after(kWriteTimeout);
      net::async_write(stream_, net::buffer(*msg), [self, msg](beast::error_code wec, size_t) {
        if (wec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(kReadTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    stream_.expires_never();  // the handler may take a while; the write sets its own deadline
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
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    net::post(workers_, [self = shared_from_this(), req = std::move(req)] {
      HttpResponse res = self->router_.handle(req);
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
    stream_.expires_after(kWriteTimeout);
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
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kDrainTimeout);
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

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  const Router& router_;
  net::thread_pool& workers_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  std::array<char, 16 * 1024> drain_buf_{};
  size_t drained_ = 0;
};

// "", "*", "0.0.0.0" mean every IPv4 address; "::" every address (dual stack when the
// kernel allows); anything else is a literal address or a name resolved once.
Result<tcp::endpoint> listen_endpoint(net::io_context& ioc, const config::HostPort& listen) {
  if (listen.port < 0 || listen.port > 65535) return Status::Invalid("restapi.listen: bad port");
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
    return Status::Unavailable("restapi.listen: cannot resolve " + host + ": " + ec.message());
  }
  return results.begin()->endpoint();
}

}  // namespace

struct Server::Impl {
  Impl(config::RestApiConfig c, ServerDeps d) : cfg(c), router(std::move(c), std::move(d)) {}

  void accept() {
    acceptor->async_accept(net::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
      if (ec) {
        // Out of descriptors and the like: back off instead of spinning on the error.
        spdlog::warn("REST API: accept failed: {}", ec.message());
        retry_timer->expires_after(std::chrono::milliseconds(100));
        retry_timer->async_wait([this](beast::error_code tec) {
          if (!tec && acceptor->is_open()) accept();
        });
        return;
      }
      beast::error_code ignored;
      socket.set_option(net::socket_base::keep_alive(true), ignored);
      std::make_shared<Session>(std::move(socket), router, *workers)->start();
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
        spdlog::error("REST API: unexpected error: {}", e.what());
      }
    }
  }

  config::RestApiConfig cfg;
  Router router;
  std::mutex mu;  // start/stop
  std::unique_ptr<net::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> retry_timer;
  std::unique_ptr<net::thread_pool> workers;
  std::thread io_thread;
  int port = 0;
};

Server::Server(config::RestApiConfig cfg, ServerDeps deps)
    : impl_(std::make_unique<Impl>(std::move(cfg), std::move(deps))) {}

Server::~Server() { stop(); }

Status Server::start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->io_thread.joinable()) return Status::Conflict("REST API server already started");
  try {
    auto ioc = std::make_unique<net::io_context>(1);
    auto ep = listen_endpoint(*ioc, impl_->cfg.listen);
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
      return Status::Unavailable("REST API: cannot listen on " + impl_->cfg.listen.to_string() + ": " + ec.message());
    }
    impl_->port = acceptor->local_endpoint().port();
    impl_->retry_timer = std::make_unique<net::steady_timer>(*ioc);
    impl_->acceptor = std::move(acceptor);
    impl_->ioc = std::move(ioc);
    impl_->workers = std::make_unique<net::thread_pool>(kWorkers);
    impl_->accept();
    impl_->io_thread = std::thread([impl = impl_.get()] { impl->run_io(); });
  } catch (const std::exception& e) {
    return Status::Failed(std::string("REST API: cannot start: ") + e.what());
  }
  spdlog::info("REST API listening on port {}", impl_->port);
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
}

int Server::bound_port() const { return impl_->port; }

}  // namespace pgwarden::api
