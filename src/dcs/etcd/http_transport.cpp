#include "pgwarden/dcs/etcd/http_transport.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "pgwarden/util/io_alarms.hpp"
#include "pgwarden/util/tcp_keepalive.hpp"

namespace pgwarden::dcs::etcd {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// Without an eventfd to sleep on, how often a blocked read looks at the wake flag.
constexpr auto kWakeSlice = std::chrono::milliseconds(500);

}  // namespace

namespace detail {

// One connection with its own io_context: async operations are started by the caller and
// driven here so that a deadline (and a wake signal) can interrupt any of them.
class Connection {
 public:
  explicit Connection(const Endpoint& ep) : ep_(ep) {}
  // A stream read may still be queued: end it here, while the socket, buffer and parser it
  // refers to are all still alive.
  ~Connection() {
    if (!stream_ || !stream_->pending) return;
    error_code ignored;
    socket_.close(ignored);
    ioc_.restart();
    while (stream_->pending && ioc_.run_one() > 0) {
    }
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  enum class Wait { kDone, kTimeout, kWoken };

  // Runs the io_context until the pending socket operation sets `done`, the deadline passes
  // or `wake` is set; on the latter two the socket is closed so the operation completes.
  // Between steps it sleeps in poll(2) until the socket is ready for `events` (POLLIN for a
  // read, POLLOUT for a connect or a write): one system call, no timer to arm and cancel.
  Wait run_on_socket(const bool& done, short events, Clock::time_point deadline, const util::WakeSignal* wake) {
    for (;;) {
      ioc_.restart();
      ioc_.poll();
      if (done) return Wait::kDone;
      auto w = wait_for_socket(events, deadline, wake);
      if (w != Wait::kDone) return abort(done, w);
    }
  }

  // As run_on_socket, for operations that are not on the socket (the resolver).
  Wait run(const bool& done, Clock::time_point deadline, const util::WakeSignal* wake) {
    ioc_.restart();
    util::IoAlarms alarms(ioc_, deadline, wake);
    while (!done) {
      switch (alarms.step(kWakeSlice)) {
        case util::IoAlarms::Step::kExpired: return abort(done, Wait::kTimeout);
        case util::IoAlarms::Step::kSignalled: return abort(done, Wait::kWoken);
        case util::IoAlarms::Step::kRan: break;
      }
    }
    return Wait::kDone;
  }

  // `wake` (may be null) interrupts the connect too, reported as a failure; callers that
  // pass it check the flag themselves.
  Status connect(Clock::time_point deadline, const util::WakeSignal* wake = nullptr) {
    bool done = false;
    error_code ec;
    // An IP literal needs no resolver (Asio's async resolver starts a thread per lookup).
    if (auto addr = asio::ip::make_address(ep_.host, ec); !ec) {
      socket_.async_connect(tcp::endpoint(addr, static_cast<unsigned short>(ep_.port)), [&](const error_code& e) {
        ec = e;
        done = true;
      });
      if (run_on_socket(done, POLLOUT, deadline, wake) != Wait::kDone) return fail("timed out connecting");
      if (ec) return fail("cannot connect: " + ec.message());
      socket_.set_option(tcp::no_delay(true), ec);
      return Status::Ok();
    }
    ec.clear();
    tcp::resolver::results_type results;
    resolver_.async_resolve(ep_.host, std::to_string(ep_.port),
                            [&](const error_code& e, tcp::resolver::results_type r) {
                              ec = e;
                              results = std::move(r);
                              done = true;
                            });
    if (run(done, deadline, wake) != Wait::kDone) return fail("timed out resolving");
    if (ec) return fail("cannot resolve: " + ec.message());
    done = false;
    asio::async_connect(socket_, results, [&](const error_code& e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    if (run_on_socket(done, POLLOUT, deadline, wake) != Wait::kDone) return fail("timed out connecting");
    if (ec) return fail("cannot connect: " + ec.message());
    socket_.set_option(tcp::no_delay(true), ec);
    return Status::Ok();
  }

  Status send(const std::string& target, const std::string& body, const std::string& token,
              Clock::time_point deadline) {
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, ep_.str());
    req.set(http::field::content_type, "application/json");
    if (!token.empty()) req.set(http::field::authorization, token);
    req.body() = body;
    req.prepare_payload();
    bool done = false;
    error_code ec;
    http::async_write(socket_, req, [&](const error_code& e, size_t) {
      ec = e;
      done = true;
    });
    if (run_on_socket(done, POLLOUT, deadline, nullptr) != Wait::kDone) return fail("timed out sending request");
    if (ec) {
      closed_by_peer_ = ec == asio::error::broken_pipe || ec == asio::error::connection_reset;
      return fail("cannot send request: " + ec.message());
    }
    return Status::Ok();
  }

  Result<HttpReply> receive(Clock::time_point deadline) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64ull * 1024 * 1024);
    bool done = false;
    error_code ec;
    http::async_read(socket_, buffer_, parser, [&](const error_code& e, size_t) {
      ec = e;
      done = true;
    });
    if (run_on_socket(done, POLLIN, deadline, nullptr) != Wait::kDone) return fail("timed out waiting for the reply");
    if (ec) {
      closed_by_peer_ = !parser.got_some() && (ec == http::error::end_of_stream || ec == asio::error::eof ||
                                               ec == asio::error::connection_reset);
      return fail("cannot read the reply: " + ec.message());
    }
    reusable_ = parser.get().keep_alive() && buffer_.size() == 0 && socket_.is_open();
    HttpReply reply;
    reply.status = static_cast<int>(parser.get().result_int());
    reply.body = std::move(parser.get().body());
    return reply;
  }

  const Endpoint& endpoint() const { return ep_; }
  // The last reply allows another request on this connection (HTTP/1.1 keep-alive).
  bool reusable() const { return reusable_; }
  // The last request failed because the server had closed the connection before reading it
  // (an idle keep-alive connection it dropped): nothing reached etcd, sending again is safe.
  bool closed_by_peer() const { return closed_by_peer_; }

  // Streaming: the response body goes to on_data as it arrives. A read still unfinished when
  // the deadline passes or the wake is set stays queued on the io_context, so the next call
  // resumes exactly where this one stopped and the connection outlives it.
  // `no_wait`: take only what has already arrived (kTimeout once nothing more has).
  Result<StreamEnd> stream(Clock::time_point deadline, const util::WakeSignal* wake,
                           const std::function<bool(std::string_view)>& on_data, bool no_wait = false) {
    if (!stream_) {
      stream_.emplace();
      stream_->parser.body_limit(boost::none);
      // A dead etcd behind the stream is noticed within about 10 + 3 * 5 s instead of never.
      util::enable_tcp_keepalive(socket_.native_handle(), std::chrono::seconds(10), std::chrono::seconds(5), 3);
    }
    StreamRead& st = *stream_;
    for (;;) {
      if (!st.pending && !st.completed) {
        st.pending = true;
        auto handler = [this](const error_code& e, size_t) {
          stream_->ec = e;
          stream_->pending = false;
          stream_->completed = true;
        };
        if (!st.parser.is_header_done()) http::async_read_header(socket_, buffer_, st.parser, handler);
        else http::async_read_some(socket_, buffer_, st.parser, handler);
      }
      if (!st.completed) {
        ioc_.restart();
        ioc_.poll();  // runs the read if the socket has something for it; never sleeps
      }
      if (!st.completed) {
        if (no_wait) return StreamEnd::kTimeout;
        // Nothing yet: sleep in poll(2) until the socket is readable, the wake or the deadline.
        // The read stays queued on the io_context, so the next call resumes it.
        auto w = wait_for_socket(POLLIN, deadline, wake);
        if (w != Wait::kDone) return w == Wait::kTimeout ? StreamEnd::kTimeout : StreamEnd::kWoken;
        continue;
      }
      st.completed = false;
      if (st.ec == http::error::end_of_stream || st.ec == asio::error::eof) return StreamEnd::kClosed;
      if (st.ec) return fail("stream broken: " + st.ec.message());
      const int status = static_cast<int>(st.parser.get().result_int());
      std::string chunk = std::move(st.parser.get().body());
      st.parser.get().body().clear();
      if (status >= 300) {  // collect nothing; reported once the reply is complete
        if (st.parser.is_done()) return Status::Failed("etcd " + ep_.str() + " answered HTTP " + std::to_string(status));
        continue;
      }
      if (!chunk.empty() && on_data(chunk)) return StreamEnd::kStopped;
      if (st.parser.is_done()) return StreamEnd::kClosed;
    }
  }

 private:
  // Sleeps until the socket is ready for `events` (or has an error, or was closed): kDone;
  // until the deadline: kTimeout; until `wake` is set: kWoken. An idle member spends most of
  // its life here, so it is one poll(2) per wake-up: no timer armed and cancelled, no eventfd
  // added to and removed from epoll for every wait.
  Wait wait_for_socket(short events, Clock::time_point deadline, const util::WakeSignal* wake) {
    const int wake_fd = wake ? wake->fd() : -1;
    for (;;) {
      if (wake && wake->is_set()) return Wait::kWoken;
      const auto now = Clock::now();
      if (now >= deadline) return Wait::kTimeout;
      auto sleep = deadline == Clock::time_point::max() ? std::chrono::milliseconds(-1)
                                                        : std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
      if (wake && wake_fd < 0 && (sleep.count() < 0 || sleep > kWakeSlice)) sleep = kWakeSlice;  // poll the flag
      const int fd = socket_.native_handle();
      if (fd < 0) {  // between two connect attempts: let the io_context go on shortly
        std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(10), deadline - now));
        return Wait::kDone;
      }
      pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
      const int n = ::poll(fds, 2, sleep.count() > INT_MAX ? INT_MAX : static_cast<int>(sleep.count()));
      if (n < 0 && errno != EINTR) return Wait::kDone;  // the read reports what is wrong
      if (n > 0 && fds[0].revents != 0) return Wait::kDone;  // ready, closed or in error
      if (n > 0 && fds[1].revents != 0 && !wake->is_set()) wake->drain();  // a wake already taken
    }
  }

  Wait abort(const bool& done, Wait why) {
    error_code ignored;
    resolver_.cancel();
    socket_.close(ignored);
    // Let the cancelled handler run so nothing refers to our stack afterwards.
    ioc_.restart();
    while (!done && ioc_.run_one() > 0) {
    }
    return why;
  }

  Status fail(const std::string& what) const { return Status::Unavailable("etcd " + ep_.str() + ": " + what); }

  // A streamed reply being read; its handler refers to it, so it lives as long as we do.
  struct StreamRead {
    http::response_parser<http::string_body> parser;
    bool pending = false;    // a read is queued on ioc_
    bool completed = false;  // a read finished and its result (ec, parser) is not taken yet
    error_code ec;
  };

  Endpoint ep_;
  bool reusable_ = false, closed_by_peer_ = false;
  std::optional<StreamRead> stream_;
  asio::io_context ioc_{1};
  tcp::resolver resolver_{ioc_};
  tcp::socket socket_{ioc_};
  boost::beast::flat_buffer buffer_;
};

}  // namespace detail

using detail::Connection;

namespace {

// Idle keep-alive connections per endpoint. An HA cycle makes several requests to the same
// etcd; a new TCP connection (and io_context) for each was a good part of an idle leader's
// CPU. A pooled connection the server closed meanwhile fails at once, and the request goes out
// again on a fresh one.
class ConnectionPool {
 public:
  std::unique_ptr<Connection> take(const Endpoint& ep) {
    std::lock_guard lk(mu_);
    auto it = idle_.find(ep.str());
    if (it == idle_.end() || it->second.empty()) return nullptr;
    auto c = std::move(it->second.back());
    it->second.pop_back();
    return c;
  }
  void give_back(std::unique_ptr<Connection> c) {
    std::lock_guard lk(mu_);
    auto& list = idle_[c->endpoint().str()];
    if (list.size() < kMaxIdlePerEndpoint) list.push_back(std::move(c));
  }

 private:
  static constexpr size_t kMaxIdlePerEndpoint = 2;  // the HA loop, plus a REST-triggered call
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
};

ConnectionPool& pool() {
  static ConnectionPool p;
  return p;
}

}  // namespace

Result<HttpReply> http_post(const Endpoint& ep, const std::string& target, const std::string& body,
                            const std::string& auth_token, Clock::time_point deadline) {
  try {
    for (int attempt = 0;; ++attempt) {
      auto c = attempt == 0 ? pool().take(ep) : nullptr;
      const bool reused = c != nullptr;
      if (!c) {
        c = std::make_unique<Connection>(ep);
        if (auto s = c->connect(deadline); !s.ok()) return s;
      }
      auto sent = c->send(target, body, auth_token, deadline);
      Result<HttpReply> reply = sent.ok() ? c->receive(deadline) : Result<HttpReply>(sent);
      if (reply.ok()) {
        if (c->reusable()) pool().give_back(std::move(c));
        return reply;
      }
      if (!reused || !c->closed_by_peer()) return reply;
    }
  } catch (const std::exception& e) {
    return Status::Unavailable("etcd " + ep.str() + ": " + e.what());
  }
}

HttpStream::HttpStream() = default;
HttpStream::~HttpStream() = default;
HttpStream::HttpStream(HttpStream&&) noexcept = default;
HttpStream& HttpStream::operator=(HttpStream&&) noexcept = default;

Status HttpStream::open(const Endpoint& ep, const std::string& target, const std::string& body,
                        const std::string& auth_token, Clock::time_point deadline, const util::WakeSignal* wake) {
  conn_.reset();
  try {
    auto c = std::make_unique<Connection>(ep);
    if (auto s = c->connect(deadline, wake); !s.ok()) return s;
    if (auto s = c->send(target, body, auth_token, deadline); !s.ok()) return s;
    conn_ = std::move(c);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable("etcd " + ep.str() + ": " + e.what());
  }
}

Result<StreamEnd> HttpStream::read(Clock::time_point deadline, const util::WakeSignal* wake,
                                   const std::function<bool(std::string_view)>& on_data) {
  return read_some(deadline, wake, on_data, false);
}

Result<StreamEnd> HttpStream::read_ready(const std::function<bool(std::string_view)>& on_data) {
  return read_some(Clock::time_point::max(), nullptr, on_data, true);
}

Result<StreamEnd> HttpStream::read_some(Clock::time_point deadline, const util::WakeSignal* wake,
                                        const std::function<bool(std::string_view)>& on_data, bool no_wait) {
  if (!conn_) return Status::Unavailable("etcd: the stream is not open");
  Result<StreamEnd> r = Status::Unavailable("etcd: stream not read");
  try {
    r = conn_->stream(deadline, wake, on_data, no_wait);
  } catch (const std::exception& e) {
    r = Status::Unavailable("etcd " + conn_->endpoint().str() + ": " + e.what());
  }
  if (!r.ok() || *r == StreamEnd::kClosed) conn_.reset();
  return r;
}

void HttpStream::close() { conn_.reset(); }

}  // namespace pgwarden::dcs::etcd
