// Peer status: parsing status documents, the healthiest-node rules (table-driven), and the
// concurrent fetch against tiny loopback servers (one answers, one stays silent, one port
// is closed).
#include "pgwarden/ha/peer_status.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.hpp"

namespace pgwarden::ha {
namespace {

const char* kPrimaryDoc = R"({"state": "running", "role": "master", "server_version": 150002,
  "xlog": {"location": 50331744}, "timeline": 3, "dcs_last_seen": 1693400000,
  "tags": {"nofailover": false}, "patroni": {"version": "3.0.2", "scope": "demo"}})";

const char* kReplicaDoc = R"({"state": "running", "role": "replica",
  "xlog": {"received_location": 50331744, "replayed_location": 50331700,
           "replayed_timestamp": null, "paused": false},
  "timeline": 2, "dcs_last_seen": 1693400001, "watchdog_failed": true})";

// --- parse_peer_status

struct ParseRow {
  const char* label;
  std::string body;
  bool reachable;
  bool in_recovery;
  int64_t wal_position;
  int timeline;
  bool nofailover;
  bool watchdog_failed;
};

TEST(PeerStatusParse, Table) {
  const std::vector<ParseRow> rows = {
      {"primary", kPrimaryDoc, true, false, 50331744, 3, false, false},
      {"replica takes max(received, replayed)", kReplicaDoc, true, true, 50331744, 2, false, true},
      {"replay ahead of receive", R"({"xlog": {"received_location": 10, "replayed_location": 20}, "timeline": 1})",
       true, true, 20, 1, false, false},
      {"garbage", "not json {", false, true, 0, 0, false, false},
      {"empty body", "", false, true, 0, 0, false, false},
      {"not an object", "[1, 2, 3]", false, true, 0, 0, false, false},
      {"missing xlog", R"({"state": "running", "timeline": 1})", false, true, 0, 0, false, false},
      {"xlog not an object", R"({"xlog": 5, "timeline": 1})", false, true, 0, 0, false, false},
      {"wal accepted like xlog", R"({"wal": {"location": 7}, "timeline": 4})", true, false, 7, 4, false, false},
      {"nofailover as string", R"({"xlog": {"received_location": 5}, "tags": {"nofailover": "true"}})", true, true,
       5, 0, true, false},
      {"nofailover as bool", R"({"xlog": {"received_location": 5}, "tags": {"nofailover": true}})", true, true, 5,
       0, true, false},
      {"nofailover string false", R"({"xlog": {"received_location": 5}, "tags": {"nofailover": "false"}})", true,
       true, 5, 0, false, false},
      {"null locations count as 0", R"({"xlog": {"received_location": null, "replayed_location": null}})", true,
       true, 0, 0, false, false},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.label);
    PeerStatus st = parse_peer_status("node2", r.body);
    EXPECT_EQ(st.name, "node2");
    EXPECT_EQ(st.reachable, r.reachable);
    EXPECT_EQ(st.in_recovery, r.in_recovery);
    EXPECT_EQ(st.wal_position, r.wal_position);
    EXPECT_EQ(st.timeline, r.timeline);
    EXPECT_EQ(st.nofailover, r.nofailover);
    EXPECT_EQ(st.watchdog_failed, r.watchdog_failed);
  }
}

TEST(PeerStatusParse, ReplicaDetails) {
  PeerStatus st = parse_peer_status("n", kReplicaDoc);
  EXPECT_EQ(st.received, 50331744);
  EXPECT_EQ(st.replayed, 50331700);
  EXPECT_DOUBLE_EQ(st.dcs_last_seen, 1693400001.0);
}

// --- parse_api_url

TEST(PeerStatusUrl, Table) {
  struct Row {
    const char* url;
    bool ok;
    std::string scheme, host;
    int port;
    std::string target;
  };
  const std::vector<Row> rows = {
      {"http://10.0.0.5:8008/patroni", true, "http", "10.0.0.5", 8008, "/patroni"},
      {"http://[::1]:8008/patroni", true, "http", "::1", 8008, "/patroni"},
      {"http://[fe80::1]/patroni", true, "http", "fe80::1", 80, "/patroni"},
      {"https://db-0.demo:8443/patroni", true, "https", "db-0.demo", 8443, "/patroni"},
      {"HTTP://host:8008", true, "http", "host", 8008, "/"},
      {"http://host:8008?x=1", true, "http", "host", 8008, "/?x=1"},
      {"http://user:pw@host:8008/patroni#frag", true, "http", "host", 8008, "/patroni"},
      {"", false, "", "", 0, ""},
      {"host:8008/patroni", false, "", "", 0, ""},
      {"ftp://host/patroni", false, "", "", 0, ""},
      {"http://:8008/patroni", false, "", "", 0, ""},
      {"http://host:99999/patroni", false, "", "", 0, ""},
      {"http://host:80a/patroni", false, "", "", 0, ""},
      {"http://::1:8008/patroni", false, "", "", 0, ""},
      {"http://[::1/patroni", false, "", "", 0, ""},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.url);
    auto u = parse_api_url(r.url);
    ASSERT_EQ(u.has_value(), r.ok);
    if (!u) continue;
    EXPECT_EQ(u->scheme, r.scheme);
    EXPECT_EQ(u->host, r.host);
    EXPECT_EQ(u->port, r.port);
    EXPECT_EQ(u->target, r.target);
  }
}

// --- is_healthiest

PeerStatus replica(const std::string& name, int64_t wal, int timeline = 1) {
  PeerStatus p;
  p.name = name;
  p.reachable = true;
  p.in_recovery = true;
  p.wal_position = p.received = p.replayed = wal;
  p.timeline = timeline;
  return p;
}

TEST(PeerStatusHealthiest, Table) {
  auto unreachable = [](PeerStatus p) {
    p.reachable = false;
    return p;
  };
  auto nofailover = [](PeerStatus p) {
    p.nofailover = true;
    return p;
  };
  auto watchdog_failed = [](PeerStatus p) {
    p.watchdog_failed = true;
    return p;
  };
  auto primary = [](PeerStatus p) {
    p.in_recovery = false;
    return p;
  };

  struct Row {
    const char* label;
    int64_t my_wal;
    int my_tl;
    bool my_nofailover;
    int64_t leader_lsn;
    int64_t max_lag;
    std::vector<PeerStatus> peers;
    bool healthiest;
    std::string reason;
  };
  const int64_t kMine = 0x3000060;
  const std::vector<Row> rows = {
      {"alone", kMine, 1, false, 0, 1048576, {}, true, "I am the healthiest (0/3000060, 0 peers compared)"},
      {"only me in the list", kMine, 1, false, 0, 1048576, {replica("me", 0)}, true,
       "I am the healthiest (0/3000060, 0 peers compared)"},
      {"peer ahead", kMine, 1, false, 0, 1048576, {replica("node2", kMine + 8)}, false,
       "node2 is ahead: 0/3000068 vs 0/3000060"},
      {"equal", kMine, 1, false, 0, 1048576, {replica("node2", kMine)}, true,
       "I am the healthiest (0/3000060, 1 peers compared)"},
      {"peer behind", kMine, 1, false, 0, 1048576, {replica("node2", kMine - 1), replica("node3", 0)}, true,
       "I am the healthiest (0/3000060, 2 peers compared)"},
      {"peer ahead but nofailover", kMine, 1, false, 0, 1048576, {nofailover(replica("node2", kMine + 8))}, true,
       "I am the healthiest (0/3000060, 0 peers compared)"},
      {"peer ahead but unreachable", kMine, 1, false, 0, 1048576, {unreachable(replica("node2", kMine + 8))}, true,
       "I am the healthiest (0/3000060, 0 peers compared)"},
      {"peer ahead but watchdog failed", kMine, 1, false, 0, 1048576,
       {watchdog_failed(replica("node2", kMine + 8))}, true, "I am the healthiest (0/3000060, 0 peers compared)"},
      {"peer is primary", kMine, 1, false, 0, 1048576, {primary(replica("node2", 1))}, false,
       "node2 is already a primary"},
      {"higher peer timeline", kMine, 1, false, 0, 1048576, {replica("node2", kMine, 2)}, false,
       "node2 is on a newer timeline: 2 vs 1"},
      {"lower peer timeline", kMine, 2, false, 0, 1048576, {replica("node2", kMine, 1)}, true,
       "I am the healthiest (0/3000060, 1 peers compared)"},
      {"me nofailover", kMine, 1, true, 0, 1048576, {}, false, "I am tagged nofailover"},
      {"lag exceeded", kMine, 1, false, kMine + 1048577, 1048576, {}, false,
       "lag 1048577 exceeds maximum_lag_on_failover 1048576"},
      {"lag within", kMine, 1, false, kMine + 1048576, 1048576, {}, true,
       "I am the healthiest (0/3000060, 0 peers compared)"},
      {"leader lsn unknown", 0, 1, false, 0, 0, {}, true, "I am the healthiest (0/0, 0 peers compared)"},
      {"second peer ahead", kMine, 1, false, 0, 1048576, {replica("node2", kMine), replica("node3", kMine + 1)},
       false, "node3 is ahead: 0/3000061 vs 0/3000060"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.label);
    HealthVerdict v = is_healthiest("me", r.my_wal, r.my_tl, r.my_nofailover, r.leader_lsn, r.max_lag, r.peers);
    EXPECT_EQ(v.healthiest, r.healthiest);
    EXPECT_EQ(v.reason, r.reason);
  }
}

// --- fetch_peer_statuses against loopback servers

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Accepts connections on 127.0.0.1 (kernel-chosen port). With a reply it reads the request
// head, answers and closes; without one it holds the connection open and never answers.
class TinyServer {
 public:
  explicit TinyServer(std::optional<std::string> reply) : reply_(std::move(reply)) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TinyServer() {
    ioc_.stop();
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/patroni"; }
  std::string last_request() {
    std::lock_guard lock(mu_);
    return last_request_;
  }

 private:
  struct Conn {
    explicit Conn(asio::io_context& ioc) : sock(ioc) {}
    tcp::socket sock;
    asio::streambuf buf;
    std::string out;
  };

  void accept() {
    auto conn = std::make_shared<Conn>(ioc_);
    acceptor_.async_accept(conn->sock, [this, conn](const boost::system::error_code& ec) {
      if (ec) return;
      held_.push_back(conn);
      if (reply_) serve(conn);
      accept();
    });
  }
  void serve(const std::shared_ptr<Conn>& conn) {
    asio::async_read_until(conn->sock, conn->buf, "\r\n\r\n",
                           [this, conn](const boost::system::error_code& ec, std::size_t n) {
                             if (ec) return;
                             {
                               std::lock_guard lock(mu_);
                               last_request_.assign(asio::buffers_begin(conn->buf.data()),
                                                    asio::buffers_begin(conn->buf.data()) + n);
                             }
                             conn->out = *reply_;
                             asio::async_write(conn->sock, asio::buffer(conn->out),
                                               [conn](const boost::system::error_code&, std::size_t) {
                                                 boost::system::error_code ignored;
                                                 conn->sock.shutdown(tcp::socket::shutdown_both, ignored);
                                                 conn->sock.close(ignored);
                                               });
                           });
  }

  std::optional<std::string> reply_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::vector<std::shared_ptr<Conn>> held_;  // silent mode keeps sockets open until the end
  std::mutex mu_;
  std::string last_request_;
  std::thread thread_;
};

dcs::Member member(const std::string& name, const std::string& api_url) {
  dcs::Member m;
  m.name = name;
  if (!api_url.empty()) m.data["api_url"] = api_url;
  return m;
}

// Patroni's server is HTTP/1.0 and ends the body by closing the connection.
std::string http10_reply(const std::string& body) {
  return "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body;
}

TEST(PeerStatusFetch, AnsweringSilentAndClosedPeers) {
  TinyServer answering(http10_reply(kReplicaDoc));
  TinyServer silent(std::nullopt);
  const int closed_port = test::free_port();

  std::vector<dcs::Member> members = {
      member("node2", answering.url()),
      member("node3", silent.url()),
      member("node4", "http://127.0.0.1:" + std::to_string(closed_port) + "/patroni"),
      member("node5", ""),
      member("node6", "not a url"),
      member("node7", "https://127.0.0.1:1/patroni"),
  };
  auto start = std::chrono::steady_clock::now();
  auto out = fetch_peer_statuses(members, std::chrono::milliseconds(500));
  auto elapsed = std::chrono::steady_clock::now() - start;

  EXPECT_GE(elapsed, std::chrono::milliseconds(450));  // waited for the silent one
  EXPECT_LT(elapsed, std::chrono::milliseconds(1000));
  ASSERT_EQ(out.size(), members.size());
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].name, members[i].name);

  EXPECT_TRUE(out[0].reachable);
  EXPECT_TRUE(out[0].in_recovery);
  EXPECT_EQ(out[0].wal_position, 50331744);
  EXPECT_EQ(out[0].timeline, 2);
  EXPECT_TRUE(out[0].watchdog_failed);
  for (std::size_t i = 1; i < out.size(); ++i) {
    SCOPED_TRACE(members[i].name);
    EXPECT_FALSE(out[i].reachable);
  }
  std::string req = answering.last_request();
  EXPECT_EQ(req.rfind("GET /patroni HTTP/1.1\r\n", 0), 0u) << req;
}

TEST(PeerStatusFetch, FastFailuresDoNotWaitForTheTimeout) {
  TinyServer primary("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(std::string(kPrimaryDoc).size()) + "\r\nConnection: close\r\n\r\n" +
                     kPrimaryDoc);
  TinyServer not_json(http10_reply("<html>503</html>"));
  const int closed_port = test::free_port();
  std::vector<dcs::Member> members = {
      member("node1", primary.url()),
      member("node2", not_json.url()),
      member("node3", "http://127.0.0.1:" + std::to_string(closed_port) + "/patroni"),
  };
  auto start = std::chrono::steady_clock::now();
  auto out = fetch_peer_statuses(members, std::chrono::seconds(2));
  auto elapsed = std::chrono::steady_clock::now() - start;

  EXPECT_LT(elapsed, std::chrono::milliseconds(1000));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].reachable);
  EXPECT_FALSE(out[0].in_recovery);
  EXPECT_EQ(out[0].wal_position, 50331744);
  EXPECT_EQ(out[0].timeline, 3);
  EXPECT_FALSE(out[1].reachable);
  EXPECT_FALSE(out[2].reachable);
}

TEST(PeerStatusFetch, NoMembers) {
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(fetch_peer_statuses({}, std::chrono::milliseconds(500)).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace pgwarden::ha
