#pragma once
// Plain HTTP/1.1 POSTs to one etcd endpoint. A call has a connection to itself: a kept-alive
// one from an earlier call when there is one idle (taken under a lock, so threads never share
// one), else a new one; a watch stream (HttpStream) owns its own. Every step is bounded by a
// deadline: connecting runs on the connection's private io_context and is cancelled when the
// time is up; requests and replies are Beast's synchronous operations on the non-blocking
// socket, sleeping in poll(2) whenever it is not ready.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "pgwarden/util/status.hpp"
#include "pgwarden/util/wake_signal.hpp"

namespace pgwarden::dcs::etcd {

using Clock = std::chrono::steady_clock;

struct Endpoint {
  std::string host;
  int port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
};

struct HttpReply {
  int status = 0;
  std::string body;
};

// kUnavailable (message names the endpoint) on resolve/connect/IO failure or timeout.
Result<HttpReply> http_post(const Endpoint& ep, const std::string& target, const std::string& body,
                            const std::string& auth_token, Clock::time_point deadline);

namespace detail {
class Connection;
}

// One POST sent now and answered later, so that the caller can do other work (query
// PostgreSQL) while the server answers. The request goes out on a kept-alive connection when
// one is idle (again on a new one when the server had closed it), else on a new one; the
// connection is the exchange's own until the reply is read, then it goes back to the pool.
// Destroying an exchange whose reply was not read closes its connection.
class HttpExchange {
 public:
  HttpExchange();
  ~HttpExchange();
  HttpExchange(HttpExchange&&) noexcept;
  HttpExchange& operator=(HttpExchange&&) noexcept;

  // kUnavailable naming the endpoint when it cannot be reached or the request not sent.
  Status send(const Endpoint& ep, const std::string& target, const std::string& body, const std::string& auth_token,
              Clock::time_point deadline);
  // The reply to what send() sent (kUnavailable on failure or at the deadline). Either way
  // the exchange is over afterwards.
  Result<HttpReply> receive(Clock::time_point deadline);
  bool pending() const { return conn_ != nullptr; }

 private:
  std::unique_ptr<detail::Connection> conn_;
};

enum class StreamEnd {
  kStopped,  // on_data asked to stop
  kTimeout,  // the deadline passed
  kWoken,    // the wake signal was set
  kClosed,   // the server ended the response
};

// A streamed POST reply (etcd's /v3/watch) read in slices over a connection of its own. The
// connection lives until the server ends the reply, an error, close() or destruction, so one
// watch can serve many HA cycles instead of a new connection (and etcd watcher) per cycle.
class HttpStream {
 public:
  HttpStream();
  ~HttpStream();
  HttpStream(HttpStream&&) noexcept;
  HttpStream& operator=(HttpStream&&) noexcept;

  // Connects and sends the request (a wake interrupts the connect). kUnavailable naming the
  // endpoint when that fails; the stream is then closed.
  Status open(const Endpoint& ep, const std::string& target, const std::string& body, const std::string& auth_token,
              Clock::time_point deadline, const util::WakeSignal* wake);
  bool is_open() const { return conn_ != nullptr; }

  // Hands body bytes to on_data as they arrive, until on_data returns true (kStopped), the
  // deadline passes (kTimeout), `wake` is set (kWoken, at once: the wait sleeps on its
  // eventfd) or the server ends the reply (kClosed). The stream stays open after kStopped,
  // kTimeout and kWoken: the next read() goes on where this one stopped. After kClosed or an
  // error (kUnavailable; a non-2xx status is kFailed) it is closed.
  Result<StreamEnd> read(Clock::time_point deadline, const util::WakeSignal* wake,
                         const std::function<bool(std::string_view)>& on_data);
  // As read(), but only what has already arrived: kTimeout once nothing more has, without
  // sleeping.
  Result<StreamEnd> read_ready(const std::function<bool(std::string_view)>& on_data);
  void close();

 private:
  Result<StreamEnd> read_some(Clock::time_point deadline, const util::WakeSignal* wake,
                              const std::function<bool(std::string_view)>& on_data, bool no_wait);

  std::unique_ptr<detail::Connection> conn_;
};

}  // namespace pgwarden::dcs::etcd
