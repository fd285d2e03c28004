#pragma once
// One HTTP/1.1 connection to the Kubernetes API server, plain or TLS, on a private
// io_context: every asynchronous step is driven here for at most the time left before a
// deadline (and stops early when a cancel signal is set), then cancelled by closing the socket.
// Private to the kubernetes client (src/dcs/kubernetes).
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "pgwarden/dcs/kubernetes/kube_config.hpp"
#include "pgwarden/util/status.hpp"
#include "pgwarden/util/wake_signal.hpp"

namespace pgwarden::dcs::k8s::detail {

using Clock = std::chrono::steady_clock;
namespace http = boost::beast::http;

// How often a blocked operation looks at the cancel flag when the WakeSignal has no eventfd
// (otherwise the wait sleeps on it: util/io_alarms.hpp).
inline constexpr auto kCancelSlice = std::chrono::milliseconds(250);

struct IoError {
  enum Kind {
    kNone,
    kConnect,      // resolve / TCP connect failed
    kTls,          // TLS handshake failed for another reason than the certificate
    kCertificate,  // the server's certificate was rejected (not worth retrying)
    kTimeout,      // the deadline passed
    kCancelled,    // the cancel flag was set
    kClosedEarly,  // the connection ended before any byte of the reply (stale keep-alive)
    kIo,           // any other read/write failure
  };
  Kind kind = kNone;
  std::string message;
  explicit operator bool() const { return kind != kNone; }
};

// Builds the TLS context for `server` (CA file / inline PEM / defaults, client certificate).
// Throws boost::system::system_error or std::runtime_error with a message naming the file.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const ApiServer& server);

class Connection {
 public:
  using Parser = http::response_parser<http::string_body>;

  // `tls` null: plain HTTP.
  Connection(const ApiServer& server, std::shared_ptr<boost::asio::ssl::context> tls);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  IoError connect(Clock::time_point deadline, const util::WakeSignal* cancel);
  IoError write(const http::request<http::string_body>& req, Clock::time_point deadline);
  // A whole reply. kClosedEarly when the connection ended before any byte of it.
  IoError read(Parser& parser, Clock::time_point deadline);
  IoError read_header(Parser& parser, Clock::time_point deadline, const util::WakeSignal* cancel);
  // Some more of the body (appended to parser.get().body()); `eof` set when the server ended the
  // connection or the message.
  IoError read_some(Parser& parser, Clock::time_point deadline, const util::WakeSignal* cancel, bool& eof);

  // Requests completed on this connection (a reused one is > 0).
  int uses = 0;
  bool open() const;
  void close();

 private:
  enum class Wait { kDone, kTimeout, kCancelled };
  Wait run(const bool& done, Clock::time_point deadline, const util::WakeSignal* cancel);
  Wait abort(const bool& done, Wait why);
  boost::asio::ip::tcp::socket& lowest();
  IoError waited(Wait w, const char* what);
  IoError tls_failure(const boost::system::error_code& ec);

  const ApiServer& server_;
  std::shared_ptr<boost::asio::ssl::context> tls_ctx_;
  boost::asio::io_context ioc_{1};
  boost::asio::ip::tcp::resolver resolver_{ioc_};
  boost::asio::ip::tcp::socket plain_{ioc_};
  std::unique_ptr<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> tls_;
  boost::beast::flat_buffer buffer_;
  bool host_mismatch_ = false;
};

}  // namespace pgwarden::dcs::k8s::detail
