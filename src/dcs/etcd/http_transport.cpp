#include "pgwarden/dcs/etcd/http_transport.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/asio/error.hpp>
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

// A look at the socket this recent stands for a non-blocking read (the HA cycle drains the
// watch stream right after its wait on that stream ended without data).
constexpr auto kFreshLook = std::chrono::milliseconds(1);

// A reply as etcd's gateway sends it: status and body; the header fields are read past, not
// kept. (Beast's response_parser stores every field in a node of its own: seven allocations
// and a tree for each keep-alive answer a leader reads every loop_wait, none of them used.
// Beast itself handles what the fields mean for the framing: Content-Length, chunked,
// Connection.)
class ReplyParser : public http::basic_parser<false> {
 public:
  int status() const { return status_; }
  std::string& body() { return body_; }

 private:
  void on_request_impl(http::verb, boost::beast::string_view, boost::beast::string_view, int, error_code&) override {}
  void on_response_impl(int code, boost::beast::string_view, int, error_code&) override { status_ = code; }
  void on_field_impl(http::field, boost::beast::string_view, boost::beast::string_view, error_code&) override {}
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    // The room a sized body needs, up to a bound (a larger one grows as it arrives).
    if (length) body_.reserve(static_cast<size_t>(std::min<std::uint64_t>(*length, 1u << 20)));
  }
  size_t on_body_impl(boost::beast::string_view data, error_code&) override { return append(data); }
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view data, error_code&) override {
    return append(data);
  }
  void on_finish_impl(error_code&) override {}
  size_t append(boost::beast::string_view data) {
    body_.append(data.data(), data.size());
    return data.size();
  }

  int status_ = 0;
  std::string body_;
};

}  // namespace

namespace detail {

// One connection with its own io_context, which only connecting uses (async, so a deadline
// and a wake can interrupt it). Once connected the socket is non-blocking and requests,
// replies and the watch stream go through Beast's synchronous operations on PolledIo: each
// step that would block sleeps in poll(2) until the socket is ready, the deadline passes or
// the wake is set. No reactor, no completion handler, no timer to arm and cancel: an idle
// member spends most of its life in that one poll(2).
class Connection {
 public:
  // Room for a whole usual reply or watch message in one read: Beast reads as much as the
  // buffer holds, at least 512 bytes, and a watch event with a member key was four reads.
  explicit Connection(const Endpoint& ep) : ep_(ep) { buffer_.reserve(kReadRoom); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  enum class Wait { kDone, kTimeout, kWoken };

  // Beast's SyncReadStream/SyncWriteStream over the connection's socket for one operation.
  // When the deadline passes or the wake is set it fails the step (operation_aborted) and
  // records why in `stopped`; the parser and buffer then stay where they were, so a stream
  // read can go on later. `no_wait`: a read that would block fails at once (would_block).
  class PolledIo {
   public:
    PolledIo(Connection& c, Clock::time_point deadline, const util::WakeSignal* wake, bool no_wait = false)
        : c_(c), deadline_(deadline), wake_(wake), no_wait_(no_wait) {}
    Wait stopped = Wait::kDone;

    template <class Buffers>
    size_t read_some(const Buffers& b, error_code& ec) {
      const size_t room = boost::asio::buffer_size(b);
      const size_t n = step(POLLIN, ec, [&] { return c_.socket_.read_some(b, ec); });
      // A read that left room took all the socket held: another would only fail, so the next
      // read waits in poll first (one system call fewer for every reply and watch message).
      if (!ec && n > 0 && n < room) c_.saw_empty();
      return n;
    }
    template <class Buffers>
    size_t write_some(const Buffers& b, error_code& ec) {
      return step(POLLOUT, ec, [&] { return c_.socket_.write_some(b, ec); });
    }
    template <class Buffers>
    size_t read_some(const Buffers& b) {
      error_code ec;
      size_t n = read_some(b, ec);
      if (ec) throw boost::system::system_error(ec);
      return n;
    }
    template <class Buffers>
    size_t write_some(const Buffers& b) {
      error_code ec;
      size_t n = write_some(b, ec);
      if (ec) throw boost::system::system_error(ec);
      return n;
    }

   private:
    template <class Op>
    size_t step(short events, error_code& ec, const Op& op) {
      const bool reading = events == POLLIN;
      for (;;) {
        // A read of a socket just seen empty would only fail again (a system call an idle
        // member makes twice a cycle otherwise): a waiting read sleeps first, and one that
        // must not wait takes nothing if that look was a moment ago.
        // Past the deadline the read is tried all the same: a reply that has arrived (a
        // keep-alive answered during the sleep) is taken, not timed out.
        const auto now = Clock::now();
        const bool skip_read = reading && c_.seen_empty_ && now < deadline_ &&
                               (!no_wait_ || now - c_.seen_empty_at_ < kFreshLook);
        if (!skip_read) {
          size_t n = op();
          if (ec != asio::error::would_block && ec != asio::error::try_again) {
            if (reading) c_.seen_empty_ = false;
            return n;
          }
          if (reading) c_.saw_empty();
        }
        if (no_wait_) {
          ec = asio::error::would_block;
          return 0;
        }
        if (Wait w = c_.wait_for_socket(events, deadline_, wake_); w != Wait::kDone) {
          stopped = w;
          ec = asio::error::operation_aborted;
          return 0;
        }
      }
    }
    Connection& c_;
    Clock::time_point deadline_;
    const util::WakeSignal* wake_;
    bool no_wait_;
  };

  // Runs the io_context until the pending connect sets `done`, the deadline passes or `wake`
  // is set; on the latter two the socket is closed so the operation completes. Between steps
  // it sleeps in poll(2) until the socket is writable (connected or failed).
  Wait run_on_socket(const bool& done, Clock::time_point deadline, const util::WakeSignal* wake) {
    for (;;) {
      ioc_.restart();
      ioc_.poll();
      if (done) return Wait::kDone;
      auto w = wait_for_socket(POLLOUT, deadline, wake);
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
      if (run_on_socket(done, deadline, wake) != Wait::kDone) return fail("timed out connecting");
      if (ec) return fail("cannot connect: " + ec.message());
      return connected();
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
    if (run_on_socket(done, deadline, wake) != Wait::kDone) return fail("timed out connecting");
    if (ec) return fail("cannot connect: " + ec.message());
    return connected();
  }

  Status send(const std::string& target, const std::string& body, const std::string& token,
              Clock::time_point deadline) {
    // A connection mostly carries the same request again (a leader's keep-alive every
    // loop_wait): the bytes Beast rendered for it last time go out as they are.
    if (!rendered_ || target != rendered_target_ || body != rendered_body_ || token != rendered_token_) {
      http::request<http::string_body> req{http::verb::post, target, 11};
      req.set(http::field::host, ep_.str());
      req.set(http::field::content_type, "application/json");
      if (!token.empty()) req.set(http::field::authorization, token);
      req.body() = body;
      req.prepare_payload();
      rendered_ = false;
      request_bytes_.clear();
      http::serializer<true, http::string_body> sr{req};
      error_code ec;
      do {
        sr.next(ec, [&](error_code&, const auto& buffers) {
          for (auto b : boost::beast::buffers_range_ref(buffers))
            request_bytes_.append(static_cast<const char*>(b.data()), b.size());
          sr.consume(boost::beast::buffer_bytes(buffers));
        });
      } while (!ec && !sr.is_done());
      if (ec) return fail("cannot render request: " + ec.message());
      rendered_target_ = target;
      rendered_body_ = body;
      rendered_token_ = token;
      rendered_ = true;
    }
    PolledIo io(*this, deadline, nullptr);
    error_code ec;
    asio::write(io, asio::buffer(request_bytes_), ec);
    if (io.stopped != Wait::kDone) return fail("timed out sending request");
    if (ec) {
      closed_by_peer_ = ec == asio::error::broken_pipe || ec == asio::error::connection_reset;
      return fail("cannot send request: " + ec.message());
    }
    return Status::Ok();
  }

  Result<HttpReply> receive(Clock::time_point deadline) {
    ReplyParser parser;
    parser.body_limit(64u * 1024 * 1024);
    PolledIo io(*this, deadline, nullptr);
    error_code ec;
    http::read(io, buffer_, parser, ec);
    if (io.stopped != Wait::kDone) return fail("timed out waiting for the reply");
    if (ec) {
      closed_by_peer_ = !parser.got_some() && (ec == http::error::end_of_stream || ec == asio::error::eof ||
                                               ec == asio::error::connection_reset);
      return fail("cannot read the reply: " + ec.message());
    }
    reusable_ = parser.keep_alive() && buffer_.size() == 0 && socket_.is_open();
    HttpReply reply;
    reply.status = parser.status();
    reply.body = std::move(parser.body());
    return reply;
  }

  const Endpoint& endpoint() const { return ep_; }
  // The last reply allows another request on this connection (HTTP/1.1 keep-alive).
  bool reusable() const { return reusable_; }
  // The last request failed because the server had closed the connection before reading it
  // (an idle keep-alive connection it dropped): nothing reached etcd, sending again is safe.
  bool closed_by_peer() const { return closed_by_peer_; }

  // Streaming: the response body goes to on_data as it arrives. A read the deadline or the
  // wake stops leaves the parser where it was, so the next call resumes exactly where this
  // one stopped and the connection outlives it.
  // `no_wait`: take only what has already arrived (kTimeout once nothing more has).
  Result<StreamEnd> stream(Clock::time_point deadline, const util::WakeSignal* wake,
                           const std::function<bool(std::string_view)>& on_data, bool no_wait = false) {
    if (!stream_) {
      stream_.emplace();
      stream_->body_limit(boost::none);
      // A dead etcd behind the stream is noticed within about 10 + 3 * 5 s instead of never.
      util::enable_tcp_keepalive(socket_.native_handle(), std::chrono::seconds(10), std::chrono::seconds(5), 3);
    }
    auto& parser = *stream_;
    PolledIo io(*this, deadline, wake, no_wait);
    for (;;) {
      error_code ec;
      if (!parser.is_header_done()) http::read_header(io, buffer_, parser, ec);
      else http::read_some(io, buffer_, parser, ec);
      if (io.stopped != Wait::kDone) return io.stopped == Wait::kTimeout ? StreamEnd::kTimeout : StreamEnd::kWoken;
      if (ec == asio::error::would_block || ec == asio::error::try_again) return StreamEnd::kTimeout;  // no_wait
      if (ec == http::error::end_of_stream || ec == asio::error::eof) return StreamEnd::kClosed;
      if (ec) return fail("stream broken: " + ec.message());
      const int status = parser.status();
      std::string chunk = std::move(parser.body());
      parser.body().clear();
      if (status >= 300) {  // collect nothing; reported once the reply is complete
        if (parser.is_done()) return Status::Failed("etcd " + ep_.str() + " answered HTTP " + std::to_string(status));
        continue;
      }
      if (!chunk.empty() && on_data(chunk)) return StreamEnd::kStopped;
      if (parser.is_done()) return StreamEnd::kClosed;
    }
  }

 private:
  Status connected() {
    seen_empty_ = false;  // what was seen of an earlier socket says nothing about this one
    error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);
    if (ec) return fail("cannot make the socket non-blocking: " + ec.message());
    return Status::Ok();
  }

  // Sleeps until the socket is ready for `events` (or has an error, or was closed): kDone;
  // until the deadline: kTimeout; until `wake` is set: kWoken.
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
      if (n < 0 && errno != EINTR) {  // the read reports what is wrong
        seen_empty_ = false;
        return Wait::kDone;
      }
      if (n > 0 && fds[0].revents != 0) {  // ready, closed or in error
        if (events == POLLIN) seen_empty_ = false;
        return Wait::kDone;
      }
      if (n >= 0 && events == POLLIN) saw_empty();  // nothing to read as of now
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

  void saw_empty() {
    seen_empty_ = true;
    seen_empty_at_ = Clock::now();
  }

  Endpoint ep_;
  bool reusable_ = false, closed_by_peer_ = false;
  // The socket had nothing to read when last looked at (a read that would block, a poll
  // without POLLIN), at seen_empty_at_; any sign of data clears it.
  bool seen_empty_ = false;
  Clock::time_point seen_empty_at_{};
  // The last request sent, as given and as rendered.
  bool rendered_ = false;
  std::string rendered_target_, rendered_body_, rendered_token_, request_bytes_;
  // The streamed reply being read (HttpStream), kept across calls.
  std::optional<ReplyParser> stream_;
  asio::io_context ioc_{1};
  tcp::resolver resolver_{ioc_};
  tcp::socket socket_{ioc_};
  static constexpr size_t kReadRoom = 4096;
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

namespace {

// Sends on a pooled connection when there is one, else (or when the server had closed it
// before reading the request) on a new one. `reused`: the request went out on a pooled one.
Result<std::unique_ptr<Connection>> send_request(const Endpoint& ep, const std::string& target,
                                                 const std::string& body, const std::string& auth_token,
                                                 Clock::time_point deadline, bool allow_pooled, bool* reused) {
  for (int attempt = 0;; ++attempt) {
    auto c = allow_pooled && attempt == 0 ? pool().take(ep) : nullptr;
    *reused = c != nullptr;
    if (!c) {
      c = std::make_unique<Connection>(ep);
      if (auto s = c->connect(deadline); !s.ok()) return s;
    }
    auto sent = c->send(target, body, auth_token, deadline);
    if (sent.ok()) return c;
    if (!*reused || !c->closed_by_peer()) return sent;
  }
}

// The reply on `c`; the connection goes back to the pool when it may carry another request.
Result<HttpReply> receive_reply(std::unique_ptr<Connection> c, Clock::time_point deadline, bool* closed_by_peer) {
  auto reply = c->receive(deadline);
  *closed_by_peer = !reply.ok() && c->closed_by_peer();
  if (reply.ok() && c->reusable()) pool().give_back(std::move(c));
  return reply;
}

}  // namespace

Result<HttpReply> http_post(const Endpoint& ep, const std::string& target, const std::string& body,
                            const std::string& auth_token, Clock::time_point deadline) {
  try {
    for (int attempt = 0;; ++attempt) {
      bool reused = false, closed_by_peer = false;
      auto c = send_request(ep, target, body, auth_token, deadline, attempt == 0, &reused);
      if (!c.ok()) return c.status();
      auto reply = receive_reply(std::move(*c), deadline, &closed_by_peer);
      // A kept connection the server closed as the request arrived: nothing reached etcd.
      if (reply.ok() || !reused || !closed_by_peer) return reply;
    }
  } catch (const std::exception& e) {
    return Status::Unavailable("etcd " + ep.str() + ": " + e.what());
  }
}

HttpExchange::HttpExchange() = default;
HttpExchange::~HttpExchange() = default;
HttpExchange::HttpExchange(HttpExchange&&) noexcept = default;
HttpExchange& HttpExchange::operator=(HttpExchange&&) noexcept = default;

Status HttpExchange::send(const Endpoint& ep, const std::string& target, const std::string& body,
                          const std::string& auth_token, Clock::time_point deadline) {
  conn_.reset();
  try {
    bool reused = false;
    auto c = send_request(ep, target, body, auth_token, deadline, true, &reused);
    if (!c.ok()) return c.status();
    conn_ = std::move(*c);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable("etcd " + ep.str() + ": " + e.what());
  }
}

Result<HttpReply> HttpExchange::receive(Clock::time_point deadline) {
  if (!conn_) return Status::Unavailable("etcd: no request is waiting for its reply");
  auto c = std::move(conn_);
  const std::string where = c->endpoint().str();
  try {
    bool closed_by_peer = false;
    return receive_reply(std::move(c), deadline, &closed_by_peer);
  } catch (const std::exception& e) {
    return Status::Unavailable("etcd " + where + ": " + e.what());
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
