#include "support/https_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>

namespace pgwarden::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct HttpsConnection::Impl {
  Impl(std::string h, int p, TlsClientOptions o, std::chrono::milliseconds t)
      : host(std::move(h)), port(p), opts(std::move(o)), timeout(t) {}

  std::string host;
  int port;
  TlsClientOptions opts;
  std::chrono::milliseconds timeout;
  net::io_context ioc;
  ssl::context ctx{ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
};

HttpsConnection::HttpsConnection(const std::string& host, int port, TlsClientOptions opts,
                                 std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(host, port, std::move(opts), timeout)) {}

HttpsConnection::~HttpsConnection() = default;

bool HttpsConnection::connect() {
  auto& i = *impl_;
  try {
    if (!i.opts.ca_file.empty()) {
      i.ctx.load_verify_file(i.opts.ca_file);
      i.ctx.set_verify_mode(ssl::verify_peer);
    } else {
      i.ctx.set_verify_mode(ssl::verify_none);
    }
    if (!i.opts.cert_file.empty()) {
      i.ctx.use_certificate_chain_file(i.opts.cert_file);
      i.ctx.use_private_key_file(i.opts.key_file.empty() ? i.opts.cert_file : i.opts.key_file, ssl::context::pem);
    }
    i.stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(i.ioc, i.ctx);
    if (!i.opts.ca_file.empty()) i.stream->set_verify_callback(ssl::host_name_verification(i.host));
    auto& low = beast::get_lowest_layer(*i.stream);
    low.expires_after(i.timeout);
    low.connect(tcp::endpoint(net::ip::make_address(i.host), static_cast<unsigned short>(i.port)));
    low.expires_after(i.timeout);
    i.stream->handshake(ssl::stream_base::client);
    return true;
  } catch (const std::exception& e) {
    error_ = e.what();
    return false;
  }
}

HttpReply HttpsConnection::request(const std::string& method, const std::string& target, const std::string& body) {
  auto& i = *impl_;
  HttpReply reply;
  if (!i.stream) {
    error_ = "not connected";
    return reply;
  }
  try {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, i.host + ":" + std::to_string(i.port));
    req.keep_alive(true);
    if (!body.empty()) {
      req.body() = body;
      req.prepare_payload();
    }
    beast::get_lowest_layer(*i.stream).expires_after(i.timeout);
    http::write(*i.stream, req);
    http::response_parser<http::string_body> parser;
    parser.skip(method == "HEAD");
    parser.body_limit(64 * 1024 * 1024);
    http::read(*i.stream, i.buffer, parser);
    auto& res = parser.get();
    reply.status = static_cast<int>(res.result_int());
    reply.body = res.body();
    for (auto& h : res) {
      std::string name(h.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(h.value());
    }
  } catch (const std::exception& e) {
    error_ = e.what();
    reply = HttpReply{};
  }
  return reply;
}

HttpReply https_request(const std::string& method, const std::string& host, int port, const std::string& target,
                        const TlsClientOptions& opts, std::string* error, std::chrono::milliseconds timeout) {
  HttpsConnection c(host, port, opts, timeout);
  HttpReply r;
  if (c.connect()) r = c.request(method, target);
  if (error) *error = c.error();
  return r;
}

}  // namespace pgwarden::test
