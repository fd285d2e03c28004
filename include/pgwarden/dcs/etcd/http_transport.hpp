#pragma once
// Plain HTTP/1.1 POSTs to one etcd endpoint. A call has a connection to itself: a kept-alive
// one from an earlier call when there is one idle (taken under a lock, so threads never share
// one), else a new one; a watch stream (HttpStream) owns its own. Every step is bounded by a
// deadline: asio operations run on the connection's private io_context for at most the
// remaining time and are cancelled after.
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

enum class StreamEnd {
  kStopped,  // on_data asked to stop
  kTimeout,  // the deadline passed
  kWoken,    // the wake signal was set
  kClosed,   // the server ended the response
};

namespace detail {
class Connection;
}

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
