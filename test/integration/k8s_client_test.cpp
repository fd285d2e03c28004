// The Kubernetes API client against the in-process API emulator (plain HTTP and HTTPS with a
// throw-away CA), plus a raw socket server for wire details the emulator does not produce.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>

#include "pgwarden/dcs/kubernetes/api_client.hpp"
#include "support/harness.hpp"
#include "support/k8s_emulator.hpp"
#include "support/tls_certs.hpp"

namespace pgwarden::dcs::k8s {
namespace {

using nlohmann::json;
using pgwarden::test::K8sEmulator;
using pgwarden::test::TempDir;
using pgwarden::test::write_file;
using std::chrono::milliseconds;

const std::string kEp = "/api/v1/namespaces/ns1/endpoints";

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

json endpoints(const std::string& name, const json& annotations = json::object()) {
  return json{{"kind", "Endpoints"},
              {"apiVersion", "v1"},
              {"metadata", {{"name", name}, {"labels", {{"app", "db"}}}, {"annotations", annotations}}},
              {"subsets", json::array()}};
}

class K8sClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    emu.add_token("good-token");
    write_file(dir.file("token"), "good-token\n");
  }
  void TearDown() override { emu.stop(); }

  ApiServer plain_server() {
    ApiServer s;
    s.scheme = "http";
    s.host = "127.0.0.1";
    s.port = emu.port();
    s.token_file = dir.file("token");
    return s;
  }

  TempDir dir{"k8s-client"};
  K8sEmulator emu;
};

TEST_F(K8sClientTest, GetPostPatchRoundTripWithBearerToken) {
  emu.start();
  ApiClient c(plain_server(), std::chrono::seconds(5));
  auto r = c.call("POST", kEp, endpoints("db", {{"leader", "a"}}).dump());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 201);
  std::string rv = r->json()["metadata"]["resourceVersion"];
  EXPECT_FALSE(rv.empty());

  r = c.call("GET", kEp + "/db");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->json()["metadata"]["annotations"]["leader"], "a");
  EXPECT_EQ(r->headers["content-type"], "application/json");

  json patch = {{"metadata", {{"resourceVersion", rv}, {"annotations", {{"leader", "b"}}}}}};
  r = c.call("PATCH", kEp + "/db", patch.dump(), "application/strategic-merge-patch+json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->json()["metadata"]["resourceVersion"], rv);
  EXPECT_EQ(emu.get("ns1", "endpoints", "db")["metadata"]["annotations"]["leader"], "b");

  r = c.call("GET", kEp + "?labelSelector=app%3Ddb");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->json()["items"].size(), 1u);

  auto n = c.counters();
  EXPECT_EQ(n.reads, 2u);
  EXPECT_EQ(n.writes, 2u);
  EXPECT_EQ(emu.request_count(), 4u);
}

TEST_F(K8sClientTest, MissingTokenIs401ReturnedAsIs) {
  emu.start();
  ApiServer s = plain_server();
  s.token_file.clear();
  ApiClient c(s, std::chrono::seconds(2));
  auto r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->reason(), "Unauthorized");
  EXPECT_EQ(emu.request_count(), 1u);  // nothing to re-read: no retry
}

TEST_F(K8sClientTest, UnauthorizedRereadsTokenFileAndRetriesOnce) {
  emu.start();
  write_file(dir.file("token"), "expired-token\n");
  ApiClient c(plain_server(), std::chrono::seconds(5));  // reads "expired-token" now
  write_file(dir.file("token"), "good-token\n");          // the kubelet rotates it
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(emu.request_count(), 2u);  // the 401, then the success
  EXPECT_LT(ms_since(start), 1000);    // retried at once, no backoff

  // A token that stays wrong: the second 401 is the answer (two requests, not a retry storm).
  emu.add_token("someone-else");  // keeps authentication on
  emu.remove_token("good-token");
  r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(emu.request_count(), 4u);
}

TEST_F(K8sClientTest, ServerErrorsAreRetriedWithBackoff) {
  emu.start();
  ApiClient c(plain_server(), std::chrono::seconds(5));
  emu.fail_next(500, 2);
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(emu.request_count(), 3u);
  EXPECT_GE(ms_since(start), 280);  // 100 ms + 200 ms of backoff

  // 503 and 504 too; a code outside the retriable set comes back as is.
  emu.fail_next(503, 1);
  r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  emu.fail_next(502, 1);
  r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 502);
}

TEST_F(K8sClientTest, PersistentServerErrorIsUnavailableAtTheDeadline) {
  emu.start();
  ApiClient c(plain_server(), milliseconds(1500));
  emu.fail_next(503, -1);
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  auto took = ms_since(start);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("HTTP 503"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(emu.endpoint()), std::string::npos) << r.status().message();
  EXPECT_LE(took, 1700);
  // 0, 100, 300, 700 ms and maybe one more: a handful of attempts, not a busy loop.
  EXPECT_GE(emu.request_count(), 3u);
  EXPECT_LE(emu.request_count(), 6u);
}

TEST_F(K8sClientTest, TooManyRequestsHonoursRetryAfter) {
  emu.start();
  ApiClient c(plain_server(), std::chrono::seconds(5));
  emu.fail_next(429, 1);  // the emulator sends Retry-After: 1
  auto start = Clock::now();
  auto r = c.call("POST", kEp, endpoints("x").dump());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 201);
  EXPECT_GE(ms_since(start), 950);
  EXPECT_EQ(emu.request_count(), 2u);
  EXPECT_EQ(c.counters().writes, 2u);

  // A Retry-After beyond the deadline: given up at once.
  c.set_retry_timeout(milliseconds(500));
  emu.fail_next(429, 1);
  start = Clock::now();
  r = c.call("GET", kEp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("HTTP 429"), std::string::npos) << r.status().message();
  EXPECT_LT(ms_since(start), 400);
}

TEST_F(K8sClientTest, ConnectionRefusedIsUnavailableWithoutBusyLoop) {
  ApiServer s = plain_server();
  s.port = pgwarden::test::free_port();  // nothing listens there
  ApiClient c(s, milliseconds(2000));
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  auto took = ms_since(start);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("127.0.0.1:" + std::to_string(s.port)), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("refused"), std::string::npos) << r.status().message();
  EXPECT_LE(took, 2300);
  EXPECT_GE(took, 1000);  // it backed off and retried instead of giving up or spinning
  // 0, 100, 300, 700, 1500 ms: about five attempts.
  auto at = r.status().message().find("gave up after ");
  ASSERT_NE(at, std::string::npos) << r.status().message();
  int attempts = std::atoi(r.status().message().c_str() + at + 14);
  EXPECT_GE(attempts, 4) << r.status().message();
  EXPECT_LE(attempts, 6) << r.status().message();
}

TEST_F(K8sClientTest, ServerClosingEveryConnectionIsRetriedWithBackoff) {
  emu.start();
  emu.set_refuse_connections(true);  // accepted, then closed at once
  ApiClient c(plain_server(), milliseconds(2000));
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_LE(ms_since(start), 2300);
  EXPECT_GE(emu.connection_count(), 3u);
  EXPECT_LE(emu.connection_count(), 7u);
  EXPECT_EQ(emu.request_count(), 0u);

  // The server comes back: the next call works.
  emu.set_refuse_connections(false);
  r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
}

TEST_F(K8sClientTest, SlowServerBeyondRetryTimeoutIsUnavailableInBoundedTime) {
  emu.start();
  emu.set_delay(milliseconds(2500));
  ApiClient c(plain_server(), milliseconds(1000));
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  auto took = ms_since(start);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().message();
  EXPECT_GE(took, 900);
  EXPECT_LE(took, 1400);
  emu.set_delay(milliseconds(0));
}

TEST_F(K8sClientTest, ConflictsAreReturnedAsIs) {
  emu.start();
  ApiClient c(plain_server(), std::chrono::seconds(5));
  auto r = c.call("POST", kEp, endpoints("db").dump());
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 201);
  r = c.call("POST", kEp, endpoints("db").dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(r->reason(), "AlreadyExists");

  json stale = {{"metadata", {{"resourceVersion", "1"}, {"annotations", {{"leader", "me"}}}}}};
  r = c.call("PATCH", kEp + "/db", stale.dump(), "application/merge-patch+json");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(r->reason(), "Conflict");
  EXPECT_NE(r->message().find("the object has been modified"), std::string::npos) << r->message();
  EXPECT_EQ(emu.request_count(), 3u);  // none retried
}

TEST_F(K8sClientTest, KeepAliveReusesOneConnectionAndRecoversWhenItIsClosed) {
  emu.start();
  ApiClient c(plain_server(), std::chrono::seconds(5));
  for (int i = 0; i < 5; ++i) {
    auto r = c.call("GET", kEp);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->status, 200);
  }
  EXPECT_EQ(emu.connection_count(), 1u);
  EXPECT_EQ(emu.request_count(), 5u);

  // The server closes the idle connection: the next call notices before any reply byte and
  // sends again at once on a new connection.
  emu.set_refuse_connections(true);
  emu.set_refuse_connections(false);
  std::this_thread::sleep_for(milliseconds(100));
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(ms_since(start), 100);  // no backoff sleep (the first one is 100 ms)
  EXPECT_EQ(emu.connection_count(), 2u);
  EXPECT_EQ(emu.request_count(), 6u);
}

TEST_F(K8sClientTest, ConcurrentCallsAreSafe) {
  emu.start();
  ApiClient c(plain_server(), std::chrono::seconds(10));
  std::vector<std::future<int>> fs;
  for (int t = 0; t < 4; ++t)
    fs.push_back(std::async(std::launch::async, [&c, t] {
      int ok = 0;
      for (int i = 0; i < 10; ++i) {
        auto r = c.call("POST", kEp, endpoints("e" + std::to_string(t) + "-" + std::to_string(i)).dump());
        if (r.ok() && r->status == 201) ++ok;
      }
      return ok;
    }));
  for (auto& f : fs) EXPECT_EQ(f.get(), 10);
  EXPECT_EQ(c.counters().writes, 40u);
  EXPECT_LE(emu.connection_count(), 4u);
}

// ---- TLS ----

TEST_F(K8sClientTest, HttpsWithTheGeneratedCa) {
  auto tls = pgwarden::test::make_test_tls(dir.path(), /*with_client=*/true);
  emu.start_tls(tls.cert_file, tls.key_file);
  ApiServer s = plain_server();
  s.scheme = "https";
  s.ca_file = tls.ca_file;
  {
    ApiClient c(s, std::chrono::seconds(5));
    auto r = c.call("POST", kEp, endpoints("db").dump());
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 201);
    r = c.call("GET", kEp + "/db");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(emu.connection_count(), 1u);  // kept alive over TLS too
  }
  // By name (DNS SAN, SNI sent) and with the CA inline.
  s.host = "localhost";
  s.ca_file.clear();
  s.ca_pem = pgwarden::test::read_file(tls.ca_file);
  ApiClient c(s, std::chrono::seconds(5));
  auto r = c.call("GET", kEp + "/db");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);

  // A client certificate (files, then inline) is loaded and offered; the emulator does not ask
  // for one, so this shows it loads and the handshake still works.
  s.client_cert_file = tls.client_cert_file;
  s.client_key_file = tls.client_key_file;
  ApiClient with_files(s, std::chrono::seconds(5));
  r = with_files.call("GET", kEp + "/db");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  s.client_cert_file.clear();
  s.client_key_file.clear();
  s.client_cert_pem = pgwarden::test::read_file(tls.client_cert_file);
  s.client_key_pem = pgwarden::test::read_file(tls.client_key_file);
  ApiClient with_pem(s, std::chrono::seconds(5));
  r = with_pem.call("GET", kEp + "/db");
  ASSERT_TRUE(r.ok()) << r.status().message();
  // A key that does not belong to the certificate is a configuration error.
  s.client_key_pem = pgwarden::test::read_file(tls.key_file);
  ApiClient mismatched(s, std::chrono::seconds(5));
  r = mismatched.call("GET", kEp + "/db");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("client key"), std::string::npos) << r.status().message();
}

TEST_F(K8sClientTest, HttpsWithAWrongCaFailsClearlyWithoutRetrying) {
  auto tls = pgwarden::test::make_test_tls(dir.path());
  emu.start_tls(tls.cert_file, tls.key_file);
  pgwarden::test::TestCa other("some other CA");
  other.write_cert(dir.file("other-ca.crt"));
  ApiServer s = plain_server();
  s.scheme = "https";
  s.ca_file = dir.file("other-ca.crt");
  ApiClient c(s, std::chrono::seconds(5));
  auto start = Clock::now();
  auto r = c.call("GET", kEp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("certificate verification failed"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("other-ca.crt"), std::string::npos) << r.status().message();
  EXPECT_LT(ms_since(start), 1000);
  EXPECT_EQ(emu.connection_count(), 1u);
  EXPECT_EQ(emu.request_count(), 0u);

  // insecure-skip-tls-verify accepts it.
  s.insecure_skip_tls_verify = true;
  ApiClient insecure(s, std::chrono::seconds(5));
  r = insecure.call("GET", kEp);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
}

TEST_F(K8sClientTest, HttpsRejectsACertificateForAnotherHost) {
  pgwarden::test::TestCa ca;
  ca.write_cert(dir.file("ca.crt"));
  pgwarden::test::CertSpec spec;
  spec.common_name = "elsewhere.example";
  spec.dns_names = {"elsewhere.example"};
  ca.issue(spec, dir.file("srv.crt"), dir.file("srv.key"));
  emu.start_tls(dir.file("srv.crt"), dir.file("srv.key"));
  ApiServer s = plain_server();
  s.scheme = "https";
  s.ca_file = dir.file("ca.crt");
  ApiClient c(s, std::chrono::seconds(5));
  auto r = c.call("GET", kEp);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not valid for 127.0.0.1"), std::string::npos) << r.status().message();
  EXPECT_EQ(emu.connection_count(), 1u);
}

TEST_F(K8sClientTest, UnreadableCaFileIsInvalid) {
  ApiServer s = plain_server();
  s.scheme = "https";
  s.port = 1;
  s.ca_file = dir.file("missing-ca.crt");
  ApiClient c(s, std::chrono::seconds(1));
  auto r = c.call("GET", kEp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("missing-ca.crt"), std::string::npos) << r.status().message();
}

// ---- watch ----

TEST_F(K8sClientTest, WatchDeliversEventsInOrder) {
  emu.start();
  ApiClient c(plain_server(), std::chrono::seconds(5));
  auto list = c.call("GET", kEp);
  ASSERT_TRUE(list.ok());
  std::string rv = list->json()["metadata"]["resourceVersion"];

  std::vector<std::pair<std::string, std::string>> seen;  // type, leader annotation
  pgwarden::util::WakeSignal cancel;
  auto fut = std::async(std::launch::async, [&] {
    return c.watch(kEp + "?watch=1&resourceVersion=" + rv, [&](const json& ev) {
      seen.emplace_back(ev["type"].get<std::string>(), ev["object"]["metadata"]["annotations"].value("leader", ""));
      return seen.size() < 3;
    }, &cancel);
  });
  emu.put_raw("ns1", "endpoints", endpoints("db", {{"leader", "a"}}));
  emu.put_raw("ns1", "endpoints", endpoints("db", {{"leader", "b"}}));
  emu.delete_raw("ns1", "endpoints", "db");
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, WatchEnd::kStopped);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], (std::pair<std::string, std::string>{"ADDED", "a"}));
  EXPECT_EQ(seen[1], (std::pair<std::string, std::string>{"MODIFIED", "b"}));
  EXPECT_EQ(seen[2].first, "DELETED");
  EXPECT_EQ(c.counters().reads, 2u);
}

TEST_F(K8sClientTest, WatchTooOldResourceVersionIsHttp410) {
  emu.start();
  emu.set_history_limit(2);
  for (int i = 0; i < 5; ++i) emu.put_raw("ns1", "endpoints", endpoints("o" + std::to_string(i)));
  ApiClient c(plain_server(), std::chrono::seconds(5));
  int events = 0;
  auto r = c.watch(kEp + "?watch=1&resourceVersion=2", [&](const json&) { return ++events, true; }, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailed);
  EXPECT_EQ(r.status().message().rfind("HTTP 410: ", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find("too old resource version"), std::string::npos) << r.status().message();
  EXPECT_EQ(events, 0);
}

TEST_F(K8sClientTest, WatchForbiddenIsFailedWithTheCode) {
  emu.start();
  emu.add_token("limited", {{"get", "endpoints"}});
  write_file(dir.file("token"), "limited");
  ApiClient c(plain_server(), std::chrono::seconds(5));
  auto r = c.watch(kEp + "?watch=1", [](const json&) { return true; }, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailed);
  EXPECT_EQ(r.status().message().rfind("HTTP 403: ", 0), 0u) << r.status().message();
}

TEST_F(K8sClientTest, WatchEndsClosedWhenTheServerDropsIt) {
  emu.start();
  emu.put_raw("ns1", "endpoints", endpoints("db"));
  ApiClient c(plain_server(), std::chrono::seconds(5));
  std::atomic<int> events{0};
  auto fut = std::async(std::launch::async, [&] {
    return c.watch(kEp + "?watch=1&resourceVersion=0", [&](const json&) { return ++events, true; }, nullptr);
  });
  ASSERT_TRUE(pgwarden::test::wait_until([&] { return events.load() == 1; }, std::chrono::seconds(5)));
  emu.drop_watches();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, WatchEnd::kClosed);

  // timeoutSeconds: the server ends the stream cleanly.
  auto t = c.watch(kEp + "?watch=1&timeoutSeconds=1&resourceVersion=" + std::to_string(emu.resource_version()),
                   [](const json&) { return true; }, nullptr);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t, WatchEnd::kClosed);
}

TEST_F(K8sClientTest, WatchCancelFlagStopsItQuickly) {
  emu.start();
  emu.put_raw("ns1", "endpoints", endpoints("db"));
  ApiClient c(plain_server(), std::chrono::seconds(5));
  pgwarden::util::WakeSignal cancel;
  std::atomic<int> events{0};
  auto fut = std::async(std::launch::async, [&] {
    return c.watch(kEp + "?watch=1&resourceVersion=0", [&](const json&) { return ++events, true; }, &cancel);
  });
  ASSERT_TRUE(pgwarden::test::wait_until([&] { return events.load() == 1; }, std::chrono::seconds(5)));
  std::this_thread::sleep_for(milliseconds(300));
  auto start = Clock::now();
  cancel.set();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(2)), std::future_status::ready);
  EXPECT_LT(ms_since(start), 1000);
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, WatchEnd::kCancelled);
}

TEST_F(K8sClientTest, WatchWithoutServerIsUnavailable) {
  ApiServer s = plain_server();
  s.port = pgwarden::test::free_port();
  ApiClient c(s, milliseconds(500));
  auto r = c.watch(kEp + "?watch=1", [](const json&) { return true; }, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

TEST_F(K8sClientTest, WatchOverHttps) {
  auto tls = pgwarden::test::make_test_tls(dir.path());
  emu.start_tls(tls.cert_file, tls.key_file);
  emu.put_raw("ns1", "endpoints", endpoints("db", {{"leader", "a"}}));
  ApiServer s = plain_server();
  s.scheme = "https";
  s.ca_file = tls.ca_file;
  ApiClient c(s, std::chrono::seconds(5));
  std::vector<std::string> leaders;
  std::atomic<int> count{0};
  auto fut = std::async(std::launch::async, [&] {
    return c.watch(kEp + "?watch=1&resourceVersion=0", [&](const json& ev) {
      leaders.push_back(ev["object"]["metadata"]["annotations"].value("leader", ""));
      return ++count < 2;
    }, nullptr);
  });
  ASSERT_TRUE(pgwarden::test::wait_until([&] { return count.load() == 1; }, std::chrono::seconds(5)));
  emu.put_raw("ns1", "endpoints", endpoints("db", {{"leader", "b"}}));
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, WatchEnd::kStopped);
  EXPECT_EQ(leaders, (std::vector<std::string>{"a", "b"}));
}

// A one-shot raw HTTP server: answers the first request on one connection with `response`
// written in the given pieces, a short pause between them, then closes.
class RawServer {
 public:
  explicit RawServer(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 4) != 0)
      throw std::runtime_error("RawServer: bind/listen");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RawServer() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::string request() {
    std::lock_guard<std::mutex> lk(mu_);
    return request_;
  }

 private:
  void serve() {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<std::size_t>(n));
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      request_ = req;
    }
    for (const auto& p : pieces_) {
      if (::send(c, p.data(), p.size(), MSG_NOSIGNAL) < 0) break;
      std::this_thread::sleep_for(milliseconds(30));
    }
    ::close(c);
  }
  std::vector<std::string> pieces_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::string request_;
};

std::string chunk(const std::string& s) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx", s.size());
  return std::string(size) + "\r\n" + s + "\r\n";
}

TEST(K8sClientWire, WatchSplitsLinesAcrossChunksAndSkipsMalformedOnes) {
  const std::string e1 = R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})";
  const std::string e2 = R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"6"}}})";
  const std::string e3 = R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"7"}}})";
  std::string body = e1 + "\n" + e2 + "\n{not json\n" + e3 + "\n";
  // Chunks cut lines in the middle (and one holds two lines' ends).
  std::vector<std::string> pieces = {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     "Transfer-Encoding: chunked\r\nWarning: 299 - \"deprecated\"\r\n\r\n"};
  std::size_t cuts[] = {0, 17, 40, e1.size() + 10, e1.size() + e2.size() + 5, body.size() - 3, body.size()};
  for (std::size_t i = 0; i + 1 < std::size(cuts); ++i) pieces.push_back(chunk(body.substr(cuts[i], cuts[i + 1] - cuts[i])));
  pieces.push_back("0\r\n\r\n");
  RawServer srv(pieces);
  ApiServer s;
  s.scheme = "http";
  s.host = "127.0.0.1";
  s.port = srv.port();
  s.token = "fixed-token";
  ApiClient c(s, std::chrono::seconds(5));
  std::vector<std::string> rvs;
  auto r = c.watch("/api/v1/namespaces/x/pods?watch=1", [&](const json& ev) {
    rvs.push_back(ev["object"]["metadata"]["resourceVersion"].get<std::string>());
    return true;
  }, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, WatchEnd::kClosed);
  EXPECT_EQ(rvs, (std::vector<std::string>{"5", "6", "7"}));
  std::string req = srv.request();
  EXPECT_NE(req.find("GET /api/v1/namespaces/x/pods?watch=1 HTTP/1.1\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("Authorization: Bearer fixed-token\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("User-Agent: pgwarden/"), std::string::npos) << req;
  EXPECT_NE(req.find("Accept: application/json\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("Host: 127.0.0.1:" + std::to_string(srv.port()) + "\r\n"), std::string::npos) << req;
}

TEST(K8sClientWire, WatchAnswered410IsFailed) {
  std::string body = R"j({"kind":"Status","status":"Failure","message":"too old resource version: 1 (99)","reason":"Expired","code":410})j";
  RawServer srv({"HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body});
  ApiServer s;
  s.scheme = "http";
  s.host = "127.0.0.1";
  s.port = srv.port();
  ApiClient c(s, std::chrono::seconds(5));
  auto r = c.watch("/api/v1/namespaces/x/pods?watch=1&resourceVersion=1", [](const json&) { return true; }, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailed);
  EXPECT_EQ(r.status().message(), "HTTP 410: too old resource version: 1 (99)");
}

TEST(K8sClientWire, CallSendsHeadersAndBody) {
  RawServer srv({"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                 "Warning: 299 - \"v1 Endpoints is deprecated\"\r\n\r\n{}"});
  ApiServer s;
  s.scheme = "http";
  s.host = "127.0.0.1";
  s.port = srv.port();
  s.token = "t0k";
  ApiClient c(s, std::chrono::seconds(5));
  auto r = c.call("PATCH", "/api/v1/namespaces/x/pods/p", R"({"metadata":{}})", "application/merge-patch+json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["warning"], "299 - \"v1 Endpoints is deprecated\"");
  EXPECT_TRUE(r->json().is_object());
  std::string req = srv.request();
  EXPECT_NE(req.find("PATCH /api/v1/namespaces/x/pods/p HTTP/1.1\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("Content-Type: application/merge-patch+json\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("Authorization: Bearer t0k\r\n"), std::string::npos) << req;
  EXPECT_EQ(c.counters().writes, 1u);
}

}  // namespace
}  // namespace pgwarden::dcs::k8s
