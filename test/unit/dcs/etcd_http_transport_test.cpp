// The etcd transport keeps connections alive between calls, and sends a request again on a
// fresh connection when the server had closed the kept one; a stream (the watch) lives across
// reads. A small HTTP/1.1 server on
// loopback counts the connections it accepts.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>
#include <chrono>
#include <string>
#include <thread>

#include "pgwarden/dcs/etcd/http_transport.hpp"

namespace pgwarden::dcs::etcd {
namespace {

using namespace std::chrono_literals;

// A listening socket on 127.0.0.1 and a port the kernel picked.
int listen_on_loopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  EXPECT_EQ(::listen(fd, 8), 0);
  return fd;
}

// Answers every request with 200 "{}" (or `reply`, whole); after `requests_per_connection`
// answers it closes the connection (without saying so in the reply, as a server dropping an
// idle connection does).
class TinyServer {
 public:
  explicit TinyServer(int requests_per_connection, std::string reply = kEmptyObject)
      : per_conn_(requests_per_connection), reply_(std::move(reply)) {
    fd_ = listen_on_loopback(&port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyServer() {
    stop_ = true;
    // The client keeps its connection: end the read the server thread may be waiting in.
    if (int c = client_.load(); c >= 0) ::shutdown(c, SHUT_RDWR);
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::vector<std::string> requests() const {
    std::lock_guard lk(mu_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++accepted_;
      client_ = c;
      for (int i = 0; i < per_conn_ && !stop_ && answer(c); ++i) {
      }
      client_ = -1;
      ::close(c);
    }
  }
  // Reads one request (headers, then Content-Length bytes) and answers it.
  bool answer(int c) {
    std::string in;
    char buf[4096];
    size_t end = std::string::npos;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    size_t length = 0;
    if (auto at = in.find("Content-Length: "); at != std::string::npos) length = std::stoul(in.substr(at + 16));
    while (in.size() < end + 4 + length) {
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard lk(mu_);
      requests_.push_back(in);
    }
    return ::write(c, reply_.data(), reply_.size()) == static_cast<ssize_t>(reply_.size());
  }

  static constexpr const char* kEmptyObject =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
  int fd_ = -1, port_ = 0, per_conn_;
  const std::string reply_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> client_{-1};
  mutable std::mutex mu_;
  std::vector<std::string> requests_;  // as received, whole
  std::thread thread_;
};

Result<HttpReply> post(int port) {
  return http_post(Endpoint{"127.0.0.1", port}, "/v3/kv/range", R"({"key":"YQ=="})", "",
                   Clock::now() + 5s);
}

TEST(EtcdHttpTransport, KeepsTheConnectionBetweenCalls) {
  TinyServer server(100);
  for (int i = 0; i < 3; ++i) {
    auto r = post(server.port());
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "{}");
  }
  EXPECT_EQ(server.accepted(), 1) << "three calls, one connection";
}

// A connection renders a request once and sends the same bytes while the request stays the
// same; any change (path, body, token) is rendered anew.
// Status and body come through whatever the framing (the header fields are read past, not
// kept), and a reply that says "Connection: close" is the connection's last.
TEST(EtcdHttpTransport, RepliesAreReadWhateverTheirFraming) {
  struct Case {
    const char* name;
    std::string reply;
    int status;
    std::string body;
    bool kept;
  };
  const std::vector<Case> cases = {
      {"sized", "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Many: 1\r\nX-Many: 2\r\n\r\n{\"a\":1}", 200, R"({"a":1})", true},
      {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;ext=1\r\n\":1}\r\n0\r\n\r\n", 200,
       R"({"a":1})", true},
      {"error status", "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", 404, "not found", true},
      {"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 200, "{}", false},
      {"empty body", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", true},
  };
  for (const auto& c : cases) {
    TinyServer server(100, c.reply);
    for (int i = 0; i < 2; ++i) {
      auto r = post(server.port());
      ASSERT_TRUE(r.ok()) << c.name << ": " << r.status().message();
      EXPECT_EQ(r->status, c.status) << c.name;
      EXPECT_EQ(r->body, c.body) << c.name;
    }
    EXPECT_EQ(server.accepted(), c.kept ? 1 : 2) << c.name;
  }
}

TEST(EtcdHttpTransport, RepeatedAndChangedRequestsArriveAsGiven) {
  TinyServer server(100);
  const Endpoint ep{"127.0.0.1", server.port()};
  struct Req {
    const char* target;
    const char* body;
    const char* token;
  };
  const std::vector<Req> sent = {{"/v3/lease/keepalive", R"({"ID":"7"})", ""},
                                 {"/v3/lease/keepalive", R"({"ID":"7"})", ""},
                                 {"/v3/lease/keepalive", R"({"ID":"7"})", "tok-1"},
                                 {"/v3/kv/range", R"({"key":"YQ=="})", "tok-1"},
                                 {"/v3/lease/keepalive", R"({"ID":"12345"})", "tok-1"},
                                 {"/v3/lease/keepalive", R"({"ID":"12345"})", "tok-2"}};
  for (const auto& r : sent) ASSERT_TRUE(http_post(ep, r.target, r.body, r.token, Clock::now() + 5s).ok());
  auto got = server.requests();
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    const std::string& g = got[i];
    EXPECT_EQ(g.rfind(std::string("POST ") + sent[i].target + " HTTP/1.1\r\n", 0), 0u) << g;
    EXPECT_NE(g.find("Content-Length: " + std::to_string(std::strlen(sent[i].body)) + "\r\n"), std::string::npos) << g;
    EXPECT_EQ(g.substr(g.size() - std::strlen(sent[i].body)), sent[i].body) << g;
    const bool has_auth = g.find("Authorization: ") != std::string::npos;
    EXPECT_EQ(has_auth, std::strlen(sent[i].token) > 0) << g;
    if (has_auth) {
      EXPECT_NE(g.find(std::string("Authorization: ") + sent[i].token + "\r\n"), std::string::npos) << g;
    }
  }
  EXPECT_EQ(server.accepted(), 1) << "all on one kept connection";
}

TEST(EtcdHttpTransport, SendsAgainWhenTheServerClosedTheKeptConnection) {
  TinyServer server(1);  // closes each connection after one answer
  ASSERT_TRUE(post(server.port()).ok());
  std::this_thread::sleep_for(50ms);  // let the close arrive
  auto r = post(server.port());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->body, "{}");
  EXPECT_EQ(server.accepted(), 2) << "the stale connection was dropped, the request went out on a new one";
}

TEST(EtcdHttpTransport, DeadServerIsUnavailable) {
  int port = 0;
  {
    TinyServer server(100);
    port = server.port();
    ASSERT_TRUE(post(port).ok());
  }  // gone, with a kept connection to it in the pool
  auto r = post(port);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

TEST(EtcdHttpTransport, AnExchangeIsAnsweredLaterAndItsConnectionKept) {
  TinyServer server(100);
  HttpExchange x;
  ASSERT_TRUE(x.send(Endpoint{"127.0.0.1", server.port()}, "/v3/lease/keepalive", "{}", "", Clock::now() + 5s).ok());
  EXPECT_TRUE(x.pending());
  std::this_thread::sleep_for(20ms);  // other work; the answer waits on the socket
  auto r = x.receive(Clock::now() + 5s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{}");
  EXPECT_FALSE(x.pending());
  EXPECT_EQ(x.receive(Clock::now() + 1s).status().code(), Code::kUnavailable) << "one reply per request";
  ASSERT_TRUE(post(server.port()).ok());
  EXPECT_EQ(server.accepted(), 1) << "the exchange's connection went back to the pool";
}

TEST(EtcdHttpTransport, AnUnansweredExchangeEndsAtItsDeadline) {
  int port = 0;
  const int fd = listen_on_loopback(&port);  // connects (kernel backlog), never answers
  HttpExchange x;
  ASSERT_TRUE(x.send(Endpoint{"127.0.0.1", port}, "/v3/lease/keepalive", "{}", "", Clock::now() + 5s).ok());
  auto r = x.receive(Clock::now() + 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().message();
  EXPECT_FALSE(x.pending());
  ::close(fd);
}

TEST(EtcdHttpTransport, AnExchangeWithADeadServerFailsToSend) {
  int port = 0;
  ::close(listen_on_loopback(&port));  // nothing listens there any more
  HttpExchange x;
  auto s = x.send(Endpoint{"127.0.0.1", port}, "/v3/lease/keepalive", "{}", "", Clock::now() + 2s);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_FALSE(x.pending());
}

// Answers one streaming request with a chunked 200 reply whose chunks the test sends when it
// likes, as etcd does for /v3/watch.
class StreamServer {
 public:
  StreamServer() {
    fd_ = listen_on_loopback(&port_);
  }
  ~StreamServer() {
    if (client_ >= 0) ::close(client_);
    ::close(fd_);
  }
  int port() const { return port_; }
  // Accepts the client and reads its request headers; then the reply's header goes out.
  bool accept_request() {
    client_ = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client_ < 0) return false;
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(client_, buf, sizeof buf);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    return put("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
  }
  bool chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return put(size + data + "\r\n");
  }
  // The client closed its end (read gives end of file) within `timeout`.
  bool client_closed(std::chrono::milliseconds timeout) {
    pollfd p{client_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char c;
    return ::read(client_, &c, 1) <= 0;
  }
  void finish() {
    put("0\r\n\r\n");
    ::close(client_);
    client_ = -1;
  }

 private:
  bool put(const std::string& bytes) { return ::write(client_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()); }
  int fd_ = -1, port_ = 0, client_ = -1;
};

// Opens `stream` to `server`, which takes the request on a thread of its own.
void open_to(StreamServer& server, HttpStream& stream) {
  std::thread accept([&] { EXPECT_TRUE(server.accept_request()); });
  auto s = stream.open(Endpoint{"127.0.0.1", server.port()}, "/v3/watch", "{}", "", Clock::now() + 5s, nullptr);
  accept.join();
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(EtcdHttpStream, ReadsGoOnWhereTheLastOneStopped) {
  StreamServer server;
  HttpStream stream;
  open_to(server, stream);
  ASSERT_TRUE(stream.is_open());

  std::string got;
  auto collect = [&](std::string_view d) {
    got += d;
    return got.find('}') != std::string::npos;  // stop once an object is complete
  };
  // Nothing sent yet: the deadline ends the read, the stream stays open.
  auto r = stream.read(Clock::now() + 100ms, nullptr, collect);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, StreamEnd::kTimeout);
  EXPECT_TRUE(stream.is_open());

  // Data sent between two reads (the queued read is still waiting for it) arrives in the next.
  ASSERT_TRUE(server.chunk(R"({"a":)"));
  r = stream.read(Clock::now() + 100ms, nullptr, collect);
  EXPECT_EQ(*r, StreamEnd::kTimeout);
  ASSERT_TRUE(server.chunk(R"(1})"));
  r = stream.read(Clock::now() + 5s, nullptr, collect);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, StreamEnd::kStopped);
  EXPECT_EQ(got, R"({"a":1})");
  EXPECT_TRUE(stream.is_open());

  // A wake ends a read at once and leaves the stream open.
  util::WakeSignal wake;
  std::thread waker([&] {
    std::this_thread::sleep_for(100ms);
    wake.set();
  });
  auto t0 = Clock::now();
  r = stream.read(Clock::now() + 10s, &wake, collect);
  waker.join();
  EXPECT_EQ(*r, StreamEnd::kWoken);
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_TRUE(stream.is_open());

  // The server ends the reply: kClosed, and the stream is closed.
  got.clear();
  ASSERT_TRUE(server.chunk(R"({"b":2})"));
  server.finish();
  r = stream.read(Clock::now() + 5s, nullptr, [&](std::string_view d) {
    got += d;
    return false;
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, StreamEnd::kClosed);
  EXPECT_EQ(got, R"({"b":2})");
  EXPECT_FALSE(stream.is_open());
  EXPECT_FALSE(stream.read(Clock::now() + 100ms, nullptr, collect).ok());
}

// The HA cycle drains the stream right after a wait that found nothing: that drain may take
// nothing (the look was a moment ago), but data that came meanwhile is never lost: the next
// wait finds it at once, and a drain after a while reads it.
TEST(EtcdHttpStream, DataAfterAnEmptyLookIsNotLost) {
  StreamServer server;
  HttpStream stream;
  open_to(server, stream);
  std::string got;
  auto collect = [&](std::string_view d) {
    got += d;
    return false;
  };
  auto r = stream.read(Clock::now() + 50ms, nullptr, collect);  // nothing there
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, StreamEnd::kTimeout);
  r = stream.read_ready(collect);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, StreamEnd::kTimeout);
  EXPECT_EQ(got, "");

  ASSERT_TRUE(server.chunk(R"({"a":1})"));
  auto t0 = Clock::now();
  r = stream.read(Clock::now() + 5s, nullptr, [&](std::string_view d) {
    got += d;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, StreamEnd::kStopped);
  EXPECT_LT(Clock::now() - t0, 2s) << "the wait saw the data at once";
  EXPECT_EQ(got, R"({"a":1})");

  // Seen empty by a wait, then data, then a drain some milliseconds later: the drain reads it.
  r = stream.read(Clock::now() + 20ms, nullptr, collect);
  EXPECT_EQ(*r, StreamEnd::kTimeout);
  ASSERT_TRUE(server.chunk(R"({"b":2})"));
  std::this_thread::sleep_for(20ms);
  got.clear();
  r = stream.read_ready(collect);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(got, R"({"b":2})");
  EXPECT_TRUE(stream.is_open());
}

// A stream given up while its read is still queued (the daemon shutting down mid-wait) ends
// that read before the connection goes; under the sanitizers this shows no use after free.
TEST(EtcdHttpStream, DestroyedWithAQueuedRead) {
  StreamServer server;
  {
    HttpStream stream;
    open_to(server, stream);
    auto r = stream.read(Clock::now() + 50ms, nullptr, [](std::string_view) { return false; });
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, StreamEnd::kTimeout);
    ASSERT_TRUE(stream.is_open());
  }
  EXPECT_TRUE(server.client_closed(2s)) << "the connection went with the stream";
}

TEST(EtcdHttpStream, NoServerIsUnavailable) {
  int port = 0;
  { StreamServer gone; port = gone.port(); }
  HttpStream stream;
  auto s = stream.open(Endpoint{"127.0.0.1", port}, "/v3/watch", "{}", "", Clock::now() + 2s, nullptr);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_FALSE(stream.is_open());
}

}  // namespace
}  // namespace pgwarden::dcs::etcd
