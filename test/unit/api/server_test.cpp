// The HTTP server end to end on loopback: routing, status-line-only answers, keep-alive,
// malformed input, body limits, auth, and a prompt stop.
#include "pgwarden/api/server.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <thread>

#include "fixtures.hpp"
#include "support/harness.hpp"

namespace pgwarden::api {
namespace {

using namespace testing;
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Sends raw bytes and returns everything the server writes until it closes the connection
// (or the timeout passes).
std::string raw_exchange(int port, const std::string& bytes, std::chrono::milliseconds timeout = 5s) {
  net::io_context ioc;
  boost::beast::tcp_stream stream(ioc);
  stream.expires_after(timeout);
  boost::system::error_code ec;
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ec);
  if (ec) return "";
  net::write(stream.socket(), net::buffer(bytes), ec);
  std::string out;
  std::array<char, 4096> buf{};
  for (;;) {
    stream.expires_after(timeout);
    size_t n = stream.read_some(net::buffer(buf), ec);
    out.append(buf.data(), n);
    if (ec) break;
  }
  return out;
}

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

struct ServerTest : ::testing::Test {
  ha::NodeBoard board;
  std::atomic<int> queries{0};
  std::atomic<int> query_delay_ms{0};
  config::RestApiConfig cfg;
  std::unique_ptr<Server> server;
  int port = 0;

  void SetUp() override {
    auto view = leader_view();
    view.next_scheduled_run = now();
    view.dcs_last_seen = now();
    board.publish(view);
    cfg.listen = {"127.0.0.1", 0};
  }
  void start() {
    ServerDeps deps;
    deps.board = &board;
    deps.query_postgres = [this]() -> std::optional<postgres::PgState> {
      ++queries;
      if (query_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(query_delay_ms.load()));
      return board.read().role == "replica" ? replica_pg() : primary_pg();
    };
    server = std::make_unique<Server>(cfg, deps);
    ASSERT_TRUE(server->start().ok());
    port = server->bound_port();
    ASSERT_GT(port, 0);
  }
  test::HttpReply get(const std::string& target) { return test::http_request("GET", "127.0.0.1", port, target); }
};

TEST_F(ServerTest, LeaderHealthChecks) {
  start();
  auto root = get("/");
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(root.headers["content-type"], "application/json");
  auto doc = nlohmann::json::parse(root.body);
  EXPECT_EQ(doc["role"], "master");
  EXPECT_EQ(doc["patroni"]["scope"], "demo");
  EXPECT_EQ(queries.load(), 1);  // one PostgreSQL query per status request

  auto replica = get("/replica");
  EXPECT_EQ(replica.status, 503);
  EXPECT_EQ(nlohmann::json::parse(replica.body)["role"], "master");

  auto unknown = get("/no/such/endpoint?x=1");
  EXPECT_EQ(unknown.status, 503);
  EXPECT_EQ(unknown.headers["content-type"], "application/json");
  EXPECT_TRUE(nlohmann::json::parse(unknown.body).contains("xlog"));

  EXPECT_EQ(get("/patroni").status, 200);
  EXPECT_EQ(get("/read-only?tag_zone=x").status, 503);  // tag missing
}

TEST_F(ServerTest, ReplicaPatroniIs200AndPrimaryIs503) {
  board.publish(replica_view());
  start();
  EXPECT_EQ(get("/patroni").status, 200);
  EXPECT_EQ(get("/").status, 503);
  EXPECT_EQ(get("/replica").status, 200);
}

TEST_F(ServerTest, HeadOptionsAndProbesAreStatusOnly) {
  start();
  auto head = raw_exchange(port, "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;  // no body
  EXPECT_EQ(head.find("Content-Type"), std::string::npos) << head;

  auto options = raw_exchange(port, "OPTIONS /replica HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(options.starts_with("HTTP/1.0 503 Service Unavailable\r\n")) << options;
  EXPECT_TRUE(options.ends_with("\r\n\r\n")) << options;

  const int before = queries.load();
  auto live = raw_exchange(port, "GET /liveness HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(live.starts_with("HTTP/1.0 200 OK\r\n")) << live;
  EXPECT_TRUE(live.ends_with("\r\n\r\n")) << live;
  EXPECT_EQ(live.find("Content-Type"), std::string::npos) << live;
  auto ready = raw_exchange(port, "GET /readiness HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(ready.starts_with("HTTP/1.0 200 OK\r\n")) << ready;
  EXPECT_EQ(queries.load(), before);

  auto stuck = board.read();
  stuck.next_scheduled_run = now() - 100;
  board.publish(stuck);
  EXPECT_EQ(get("/liveness").status, 503);
  // HEAD has no probe handler: the health check runs and "/liveness" matches no rule.
  EXPECT_EQ(test::http_request("HEAD", "127.0.0.1", port, "/liveness").status, 503);
  EXPECT_EQ(test::http_request("HEAD", "127.0.0.1", port, "/leader").status, 200);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  auto both = raw_exchange(port,
                           "GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n"
                           "GET /replica HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(both.starts_with("HTTP/1.1 200 OK\r\n")) << both;
  EXPECT_NE(both.find("HTTP/1.1 503 Service Unavailable\r\n"), std::string::npos) << both;
}

TEST_F(ServerTest, GarbageGets400AndServerKeepsServing) {
  start();
  auto garbage = raw_exchange(port, std::string("\x16\x03\x01\x02\x00garbage\r\n\r\n", 16));
  EXPECT_TRUE(garbage.starts_with("HTTP/1.1 400 Bad Request\r\n")) << garbage;
  auto bad_version = raw_exchange(port, "GET / HTTQ/1.1\r\n\r\n");
  EXPECT_TRUE(bad_version.starts_with("HTTP/1.1 400")) << bad_version;
  auto no_space = raw_exchange(port, "GET\r\n\r\n");
  EXPECT_TRUE(no_space.starts_with("HTTP/1.1 400")) << no_space;
  auto brew = raw_exchange(port, "BREW /pot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(brew.starts_with("HTTP/1.1 501")) << brew;
  EXPECT_EQ(get("/").status, 200);
}

TEST_F(ServerTest, OversizedBodyGets413) {
  start();
  auto declared = raw_exchange(port, "POST /config HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n{", 3s);
  EXPECT_TRUE(declared.starts_with("HTTP/1.1 413")) << declared;
  // A client that sends the whole body first still gets to read the answer.
  auto sent = test::http_request("POST", "127.0.0.1", port, "/config", std::string(2 * 1024 * 1024, 'x'));
  EXPECT_EQ(sent.status, 413);
  EXPECT_EQ(get("/").status, 200);
}

TEST_F(ServerTest, UnsafeMethodsNeedAuthWhenConfigured) {
  cfg.username = "admin";
  cfg.password = "s3cret";
  start();
  auto missing =
      raw_exchange(port, "POST /restart HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
  EXPECT_TRUE(missing.starts_with("HTTP/1.1 401 Unauthorized\r\n")) << missing;
  EXPECT_NE(missing.find("WWW-Authenticate: Basic realm=\"Patroni\"\r\n"), std::string::npos) << missing;
  EXPECT_TRUE(missing.ends_with("no auth header received")) << missing;

  auto wrong = raw_exchange(port,
                            "PATCH /config HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46d3Jvbmc=\r\n"
                            "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
  EXPECT_TRUE(wrong.starts_with("HTTP/1.1 401 Unauthorized\r\n")) << wrong;
  EXPECT_TRUE(wrong.ends_with("not authenticated")) << wrong;

  auto right = raw_exchange(port,
                            "POST /citus HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n"
                            "Content-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(right.starts_with("HTTP/1.1 501 ")) << right;
}

TEST_F(ServerTest, UnsafeMethodsWithoutAuthReachTheirHandlers) {
  start();
  // No DCS writer wired in this server: the switchover handler says so instead of acting.
  EXPECT_EQ(test::http_request("POST", "127.0.0.1", port, "/switchover", "{}").status, 503);
  // No HA loop wired either: nothing can be scheduled, so there is nothing to delete.
  EXPECT_EQ(test::http_request("DELETE", "127.0.0.1", port, "/restart").status, 404);
}

TEST_F(ServerTest, SlowClientsAndSlowQueriesDoNotBlockOthers) {
  start();
  // A client that never finishes its headers.
  net::io_context ioc;
  tcp::socket idle(ioc);
  idle.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  net::write(idle, net::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n")));

  query_delay_ms = 1500;
  std::thread slow([&] { EXPECT_EQ(get("/").status, 200); });
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(get("/liveness").status, 200);  // no SQL, not queued behind the slow query
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  slow.join();
}

TEST_F(ServerTest, StopIsPromptWithOpenConnections) {
  start();
  net::io_context ioc;
  tcp::socket idle(ioc);
  idle.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  net::write(idle, net::buffer(std::string("GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n")));  // then kept alive
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(get("/").status, 0);  // nobody listens any more
  server->stop();                 // idempotent
  server.reset();                 // destructor after stop
}

TEST_F(ServerTest, BindFailureIsAStatus) {
  start();
  config::RestApiConfig clash = cfg;
  clash.listen.port = port;
  Server second(clash, ServerDeps{&board, nullptr});
  auto st = second.start();
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kUnavailable);
}

TEST_F(ServerTest, JsonAnswersCarryFewHeaders) {
  start();
  auto res = raw_exchange(port, "GET /leader HTTP/1.0\r\n\r\n");
  const auto end = res.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << res;
  const std::string head = res.substr(0, end);
  EXPECT_TRUE(head.starts_with("HTTP/1.0 200 OK\r\n")) << head;
  EXPECT_NE(head.find("Content-Type: application/json"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Length: " + std::to_string(res.size() - end - 4)), std::string::npos) << head;
  EXPECT_EQ(nlohmann::json::parse(res.substr(end + 4))["role"], "master");
}

TEST_F(ServerTest, HugeHeadersAreRefused) {
  start();
  auto res = raw_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
  EXPECT_TRUE(res.starts_with("HTTP/1.1 431")) << res.substr(0, 100);
  EXPECT_EQ(get("/").status, 200);
}

TEST_F(ServerTest, DualStackForIPv6Any) {
  cfg.listen = {"::", 0};
  ServerDeps deps{&board, nullptr};
  Server s(cfg, deps);
  if (!s.start().ok()) GTEST_SKIP() << "no IPv6 on this host";
  // Without PostgreSQL the document still comes back; the code depends on the lock only.
  EXPECT_EQ(test::http_request("GET", "127.0.0.1", s.bound_port(), "/leader").status, 200);
  EXPECT_EQ(test::http_request("GET", "::1", s.bound_port(), "/leader").status, 200);
}

TEST_F(ServerTest, ListensOnAllAddressesForEmptyHost) {
  cfg.listen = {"", 0};
  start();
  EXPECT_EQ(get("/").status, 200);
}

}  // namespace
}  // namespace pgwarden::api
