#include "transport.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/http/error.hpp>

#include <stdexcept>

#include "pgwarden/util/io_alarms.hpp"
#include "pgwarden/util/tcp_keepalive.hpp"

namespace pgwarden::dcs::k8s::detail {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

template <class F>
void on_stream(std::unique_ptr<ssl::stream<tcp::socket>>& tls, tcp::socket& plain, F&& f) {
  if (tls)
    f(*tls);
  else
    f(plain);
}

// The peer went away (or the socket was closed) rather than sending something wrong.
bool closed_error(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated ||
         ec == http::error::partial_message;
}

bool ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string ca_description(const ApiServer& s) {
  if (s.insecure_skip_tls_verify) return "verification disabled";
  if (!s.ca_pem.empty()) return "CA: inline certificate-authority-data";
  if (!s.ca_file.empty()) return "CA: " + s.ca_file;
  return "CA: system defaults";
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const ApiServer& server) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  auto load = [](const std::string& what, auto&& fn) {
    try {
      fn();
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("cannot load " + what + ": " + e.code().message());
    }
  };
  if (server.insecure_skip_tls_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_verify_mode(ssl::verify_peer);
    if (!server.ca_pem.empty())
      load("the inline certificate authority", [&] { ctx->add_certificate_authority(asio::buffer(server.ca_pem)); });
    else if (!server.ca_file.empty())
      load("the CA file " + server.ca_file, [&] { ctx->load_verify_file(server.ca_file); });
    else
      load("the system's certificate authorities", [&] { ctx->set_default_verify_paths(); });
  }
  if (!server.client_cert_pem.empty())
    load("the inline client certificate", [&] { ctx->use_certificate_chain(asio::buffer(server.client_cert_pem)); });
  else if (!server.client_cert_file.empty())
    load("the client certificate " + server.client_cert_file,
         [&] { ctx->use_certificate_chain_file(server.client_cert_file); });
  if (!server.client_key_pem.empty())
    load("the inline client key",
         [&] { ctx->use_private_key(asio::buffer(server.client_key_pem), ssl::context::pem); });
  else if (!server.client_key_file.empty())
    load("the client key " + server.client_key_file,
         [&] { ctx->use_private_key_file(server.client_key_file, ssl::context::pem); });
  return ctx;
}

Connection::Connection(const ApiServer& server, std::shared_ptr<ssl::context> tls)
    : server_(server), tls_ctx_(std::move(tls)) {}

Connection::~Connection() { close(); }

tcp::socket& Connection::lowest() { return tls_ ? tls_->next_layer() : plain_; }

bool Connection::open() const { return tls_ ? tls_->next_layer().is_open() : plain_.is_open(); }

void Connection::close() {
  error_code ignored;
  lowest().close(ignored);
}

Connection::Wait Connection::run(const bool& done, Clock::time_point deadline, const util::WakeSignal* cancel) {
  ioc_.restart();
  util::IoAlarms alarms(ioc_, deadline, cancel);
  while (!done) {
    switch (alarms.step(kCancelSlice)) {
      case util::IoAlarms::Step::kExpired: return abort(done, Wait::kTimeout);
      case util::IoAlarms::Step::kSignalled: return abort(done, Wait::kCancelled);
      case util::IoAlarms::Step::kRan: break;
    }
  }
  return Wait::kDone;
}

Connection::Wait Connection::abort(const bool& done, Wait why) {
  resolver_.cancel();
  close();
  // Let the cancelled handler run so nothing refers to the caller's stack afterwards.
  ioc_.restart();
  while (!done && ioc_.run_one() > 0) {
  }
  return why;
}

IoError Connection::waited(Wait w, const char* what) {
  if (w == Wait::kCancelled) return {IoError::kCancelled, std::string("cancelled while ") + what};
  return {IoError::kTimeout, std::string("timed out ") + what};
}

IoError Connection::tls_failure(const error_code& ec) {
  if (ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    std::string why;
    if (host_mismatch_) {
      why = "it is not valid for " + server_.host;
    } else {
      long vr = SSL_get_verify_result(tls_->native_handle());
      why = X509_verify_cert_error_string(vr);
    }
    return {IoError::kCertificate,
            "TLS certificate verification failed: " + why + " (" + ca_description(server_) + ")"};
  }
  return {IoError::kTls, "TLS handshake failed: " + ec.message()};
}

IoError Connection::connect(Clock::time_point deadline, const util::WakeSignal* cancel) {
  if (tls_ctx_) tls_ = std::make_unique<ssl::stream<tcp::socket>>(ioc_, *tls_ctx_);
  tcp::socket& sock = lowest();
  bool done = false;
  error_code ec;
  // An IP literal needs no resolver (Asio's async resolver starts a thread per lookup).
  if (auto addr = asio::ip::make_address(server_.host, ec); !ec) {
    sock.async_connect(tcp::endpoint(addr, static_cast<unsigned short>(server_.port)), [&](const error_code& e) {
      ec = e;
      done = true;
    });
    if (auto w = run(done, deadline, cancel); w != Wait::kDone) return waited(w, "connecting");
    if (ec) return {IoError::kConnect, "cannot connect: " + ec.message()};
  } else {
    ec.clear();
    tcp::resolver::results_type results;
    resolver_.async_resolve(server_.host, std::to_string(server_.port),
                            [&](const error_code& e, tcp::resolver::results_type r) {
                              ec = e;
                              results = std::move(r);
                              done = true;
                            });
    if (auto w = run(done, deadline, cancel); w != Wait::kDone) return waited(w, "resolving");
    if (ec) return {IoError::kConnect, "cannot resolve " + server_.host + ": " + ec.message()};
    done = false;
    asio::async_connect(sock, results, [&](const error_code& e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    if (auto w = run(done, deadline, cancel); w != Wait::kDone) return waited(w, "connecting");
    if (ec) return {IoError::kConnect, "cannot connect: " + ec.message()};
  }
  sock.set_option(tcp::no_delay(true), ec);
  // Patroni does the same with its own numbers (idle = loop_wait + retry_timeout,
  // TCP_USER_TIMEOUT = ttl): a dead API server is found within about 30 s.
  util::enable_tcp_keepalive(sock.native_handle(), std::chrono::seconds(15), std::chrono::seconds(5), 3,
                             std::chrono::milliseconds(30000));
  if (!tls_) return {};

  // SNI carries host names only (RFC 6066), never IP literals.
  if (!ip_literal(server_.host)) SSL_set_tlsext_host_name(tls_->native_handle(), server_.host.c_str());
  if (!server_.insecure_skip_tls_verify) {
    // host_name_verification matches IP literals against the IP SANs and names against DNS SANs.
    tls_->set_verify_callback(
        [this, check = ssl::host_name_verification(server_.host)](bool preverified, ssl::verify_context& vc) mutable {
          bool ok = check(preverified, vc);
          if (preverified && !ok) host_mismatch_ = true;
          return ok;
        });
  }
  done = false;
  tls_->async_handshake(ssl::stream_base::client, [&](const error_code& e) {
    ec = e;
    done = true;
  });
  if (auto w = run(done, deadline, cancel); w != Wait::kDone) return waited(w, "in the TLS handshake");
  if (ec) return tls_failure(ec);
  return {};
}

IoError Connection::write(const http::request<http::string_body>& req, Clock::time_point deadline) {
  bool done = false;
  error_code ec;
  on_stream(tls_, plain_, [&](auto& s) {
    http::async_write(s, req, [&](const error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
  });
  if (auto w = run(done, deadline, nullptr); w != Wait::kDone) return waited(w, "sending the request");
  if (ec) {
    // Nothing of the reply was read yet: a peer that closed the connection is a stale one.
    if (closed_error(ec)) return {IoError::kClosedEarly, "connection closed while sending: " + ec.message()};
    return {IoError::kIo, "cannot send the request: " + ec.message()};
  }
  return {};
}

IoError Connection::read(Parser& parser, Clock::time_point deadline) {
  bool done = false;
  error_code ec;
  on_stream(tls_, plain_, [&](auto& s) {
    http::async_read(s, buffer_, parser, [&](const error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
  });
  if (auto w = run(done, deadline, nullptr); w != Wait::kDone) return waited(w, "waiting for the reply");
  if (ec) {
    if (!parser.got_some() && closed_error(ec))
      return {IoError::kClosedEarly, "connection closed before the reply: " + ec.message()};
    return {IoError::kIo, "cannot read the reply: " + ec.message()};
  }
  ++uses;
  return {};
}

IoError Connection::read_header(Parser& parser, Clock::time_point deadline, const util::WakeSignal* cancel) {
  bool done = false;
  error_code ec;
  on_stream(tls_, plain_, [&](auto& s) {
    http::async_read_header(s, buffer_, parser, [&](const error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
  });
  if (auto w = run(done, deadline, cancel); w != Wait::kDone) return waited(w, "waiting for the reply");
  if (ec) {
    if (!parser.got_some() && closed_error(ec))
      return {IoError::kClosedEarly, "connection closed before the reply: " + ec.message()};
    return {IoError::kIo, "cannot read the reply: " + ec.message()};
  }
  return {};
}

IoError Connection::read_some(Parser& parser, Clock::time_point deadline, const util::WakeSignal* cancel,
                              bool& eof) {
  eof = false;
  if (parser.is_done()) {
    eof = true;
    return {};
  }
  bool done = false;
  error_code ec;
  on_stream(tls_, plain_, [&](auto& s) {
    http::async_read_some(s, buffer_, parser, [&](const error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
  });
  if (auto w = run(done, deadline, cancel); w != Wait::kDone) return waited(w, "reading the stream");
  if (ec) {
    if (closed_error(ec)) {
      eof = true;
      return {};
    }
    return {IoError::kIo, "stream broken: " + ec.message()};
  }
  if (parser.is_done()) eof = true;
  return {};
}

}  // namespace pgwarden::dcs::k8s::detail
