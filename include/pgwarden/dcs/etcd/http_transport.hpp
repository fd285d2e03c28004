#pragma once
// Plain HTTP/1.1 POSTs to one etcd endpoint. A call has a connection to itself: a kept-alive
// one from an earlier call when there is one idle (taken under a lock, so threads never share
// one), else a new one; a watch stream always opens its own. Every step is bounded by a
// deadline: asio operations run on the connection's private io_context for at most the
// remaining time and are cancelled after.
#include <atomic>
#include <chrono>
#include <functional>
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

// Streams the response body of a POST (e.g. /v3/watch) to on_data as bytes arrive, until
// on_data returns true, the deadline passes, `wake` is set (at once: the wait sleeps on its
// eventfd), or the server closes. kUnavailable if the connection/request could not be made; a non-2xx
// status is kFailed with the body in the message.
Result<StreamEnd> http_post_stream(const Endpoint& ep, const std::string& target, const std::string& body,
                                   const std::string& auth_token, Clock::time_point deadline,
                                   const util::WakeSignal* wake,
                                   const std::function<bool(std::string_view)>& on_data);

}  // namespace pgwarden::dcs::etcd
