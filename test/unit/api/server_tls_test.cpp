// The REST API over HTTPS on loopback (restapi.certfile and friends), and the peer status
// fetch of the HA loop against it: keep-alive, failed handshakes that leave the server
// serving, verify_client modes, key and cipher settings, and clear errors for bad files.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "fixtures.hpp"
#include "pgwarden/api/server.hpp"
#include "pgwarden/ha/peer_status.hpp"
#include "support/harness.hpp"
#include "support/https_client.hpp"
#include "support/tls_certs.hpp"

namespace pgwarden::api {
namespace {

using namespace std::chrono_literals;
using testing::replica_pg;
using testing::replica_view;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Re-encrypts a PEM private key with a passphrase (AES-256-CBC).
void encrypt_key(const std::string& in, const std::string& out, const std::string& password) {
  FILE* f = std::fopen(in.c_str(), "r");
  ASSERT_NE(f, nullptr);
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(key, nullptr);
  FILE* o = std::fopen(out.c_str(), "w");
  ASSERT_NE(o, nullptr);
  int ok = PEM_write_PrivateKey(o, key, EVP_aes_256_cbc(), nullptr, 0, nullptr,
                                const_cast<char*>(password.c_str()));
  std::fclose(o);
  EVP_PKEY_free(key);
  ASSERT_EQ(ok, 1);
}

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

struct ServerTlsTest : ::testing::Test {
  test::TempDir dir{"pgwarden-tls-unit"};
  test::TlsFiles tls = test::make_test_tls(dir.path(), /*with_client=*/true);
  ha::NodeBoard board;
  config::RestApiConfig cfg;
  std::unique_ptr<Server> server;
  int port = 0;

  void SetUp() override {
    auto view = replica_view();
    view.next_scheduled_run = now();
    view.dcs_last_seen = now();
    board.publish(view);
    cfg.listen = {"127.0.0.1", 0};
    cfg.certfile = tls.cert_file;
    cfg.keyfile = tls.key_file;
  }
  Status try_start() {
    ServerDeps deps;
    deps.board = &board;
    deps.query_postgres = []() -> std::optional<postgres::PgState> { return replica_pg(); };
    server = std::make_unique<Server>(cfg, deps);
    return server->start();
  }
  void start() {
    auto st = try_start();
    ASSERT_TRUE(st.ok()) << st.message();
    port = server->bound_port();
  }
  test::TlsClientOptions trusting() const { return {tls.ca_file, "", ""}; }
  test::TlsClientOptions with_client_cert() const { return {tls.ca_file, tls.client_cert_file, tls.client_key_file}; }
  test::HttpReply get(const std::string& target, const test::TlsClientOptions& o, std::string* error = nullptr) {
    return test::https_request("GET", "127.0.0.1", port, target, o, error);
  }
};

TEST_F(ServerTlsTest, ServesOverTlsWithKeepAlive) {
  start();
  test::HttpsConnection c("127.0.0.1", port, trusting());
  ASSERT_TRUE(c.connect()) << c.error();
  auto first = c.request("GET", "/patroni");
  EXPECT_EQ(first.status, 200) << c.error();
  EXPECT_EQ(nlohmann::json::parse(first.body)["role"], "replica");
  auto second = c.request("GET", "/replica");  // same TLS connection
  EXPECT_EQ(second.status, 200) << c.error();
  auto third = c.request("GET", "/primary");
  EXPECT_EQ(third.status, 503) << c.error();
}

TEST_F(ServerTlsTest, PlainHttpAndUntrustedClientsFailWithoutHurtingOthers) {
  start();
  EXPECT_EQ(test::http_request("GET", "127.0.0.1", port, "/health", "", 3s).status, 0);
  // A client that does not trust the server's CA gives up in the handshake.
  test::TempDir other{"pgwarden-tls-other"};
  auto foreign = test::make_test_tls(other.path());
  std::string error;
  EXPECT_EQ(get("/health", {foreign.ca_file, "", ""}, &error).status, 0);
  EXPECT_FALSE(error.empty());
  // A client that connects and never starts the handshake holds only its own connection.
  net::io_context ioc;
  boost::beast::tcp_stream silent(ioc);
  silent.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  EXPECT_EQ(get("/health", trusting()).status, 200);
  EXPECT_EQ(get("/health", trusting()).status, 200);
}

TEST_F(ServerTlsTest, VerifyClientRequired) {
  cfg.cafile = tls.ca_file;
  cfg.verify_client = "required";
  start();
  std::string error;
  EXPECT_EQ(get("/health", trusting(), &error).status, 0);
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(get("/health", with_client_cert(), &error).status, 200) << error;
  // A client certificate from another CA is refused too.
  test::TempDir other{"pgwarden-tls-other"};
  auto foreign = test::make_test_tls(other.path(), true);
  EXPECT_EQ(get("/health", {tls.ca_file, foreign.client_cert_file, foreign.client_key_file}).status, 0);
  EXPECT_EQ(get("/health", with_client_cert()).status, 200);
}

TEST_F(ServerTlsTest, VerifyClientOptionalAndNone) {
  cfg.cafile = tls.ca_file;
  cfg.verify_client = "optional";
  start();
  EXPECT_EQ(get("/health", trusting()).status, 200);
  EXPECT_EQ(get("/health", with_client_cert()).status, 200);
  test::TempDir other{"pgwarden-tls-other"};
  auto foreign = test::make_test_tls(other.path(), true);
  EXPECT_EQ(get("/health", {tls.ca_file, foreign.client_cert_file, foreign.client_key_file}).status, 0);
  server->stop();

  cfg.verify_client = "none";  // a certificate is never asked for, so any is fine
  start();
  EXPECT_EQ(get("/health", {tls.ca_file, foreign.client_cert_file, foreign.client_key_file}).status, 200);
}

TEST_F(ServerTlsTest, KeyInsideCertfileAndEncryptedKey) {
  test::write_file(dir.file("both.pem"), test::read_file(tls.cert_file) + test::read_file(tls.key_file), 0600);
  cfg.certfile = dir.file("both.pem");
  cfg.keyfile.clear();
  start();
  EXPECT_EQ(get("/health", trusting()).status, 200);
  server->stop();

  encrypt_key(tls.key_file, dir.file("enc.key"), "s3cret");
  cfg.certfile = tls.cert_file;
  cfg.keyfile = dir.file("enc.key");
  cfg.keyfile_password = "wrong";
  auto st = try_start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(dir.file("enc.key")), std::string::npos) << st.message();
  cfg.keyfile_password = "s3cret";
  start();
  EXPECT_EQ(get("/health", trusting()).status, 200);
}

TEST_F(ServerTlsTest, Ciphers) {
  cfg.ciphers = "no-such-cipher";
  auto st = try_start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("restapi.ciphers"), std::string::npos) << st.message();
  cfg.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";
  start();
  EXPECT_EQ(get("/health", trusting()).status, 200);
}

TEST_F(ServerTlsTest, BadFilesNameTheFile) {
  cfg.certfile = dir.file("missing.crt");
  auto st = try_start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("restapi.certfile " + dir.file("missing.crt")), std::string::npos) << st.message();

  cfg.certfile = tls.cert_file;
  cfg.keyfile = dir.file("missing.key");
  st = try_start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("restapi.keyfile " + dir.file("missing.key")), std::string::npos) << st.message();

  cfg.keyfile = tls.client_key_file;  // a key that is not the certificate's
  st = try_start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("mismatch"), std::string::npos) << st.message();

  test::write_file(dir.file("garbage.crt"), "not a certificate\n");
  cfg.certfile = dir.file("garbage.crt");
  cfg.keyfile = tls.key_file;
  st = try_start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("garbage.crt"), std::string::npos) << st.message();

  cfg.certfile = tls.cert_file;
  cfg.cafile = dir.file("missing-ca.crt");
  cfg.verify_client = "required";
  st = try_start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("restapi.cafile"), std::string::npos) << st.message();
}

// --- The HA loop's peer status fetch against the TLS server.

dcs::Member member(const std::string& name, const std::string& api_url) {
  dcs::Member m;
  m.name = name;
  m.data["api_url"] = api_url;
  return m;
}

TEST_F(ServerTlsTest, PeerStatusOverHttps) {
  start();
  std::string url = "https://127.0.0.1:" + std::to_string(port) + "/patroni";
  ha::PeerTlsOptions o;
  o.ca_file = tls.ca_file;
  auto peers = ha::fetch_peer_statuses({member("n2", url), member("n3", "https://localhost:" + std::to_string(port) + "/patroni")}, 2s, o);
  ASSERT_EQ(peers.size(), 2u);
  for (const auto& p : peers) {
    EXPECT_TRUE(p.reachable) << p.name;
    EXPECT_TRUE(p.in_recovery);
    EXPECT_EQ(p.wal_position, replica_pg().received_location);
  }
  // The system CAs do not know the test CA.
  EXPECT_FALSE(ha::fetch_peer_statuses({member("n2", url)}, 2s, {})[0].reachable);
  // ctl.insecure without a client certificate skips verification, as in Patroni.
  ha::PeerTlsOptions insecure;
  insecure.insecure = true;
  EXPECT_TRUE(ha::fetch_peer_statuses({member("n2", url)}, 2s, insecure)[0].reachable);
  // Plain HTTP to the TLS port gets nothing.
  EXPECT_FALSE(ha::fetch_peer_statuses({member("n2", "http://127.0.0.1:" + std::to_string(port) + "/patroni")}, 2s,
                                       o)[0]
                   .reachable);
}

TEST_F(ServerTlsTest, PeerStatusChecksTheHostName) {
  test::TestCa ca;
  ca.write_cert(dir.file("ca2.crt"));
  test::CertSpec spec;
  spec.common_name = "elsewhere";
  spec.dns_names = {"elsewhere.example"};
  ca.issue(spec, dir.file("other.crt"), dir.file("other.key"));
  cfg.certfile = dir.file("other.crt");
  cfg.keyfile = dir.file("other.key");
  start();
  ha::PeerTlsOptions o;
  o.ca_file = dir.file("ca2.crt");
  std::string url = "https://127.0.0.1:" + std::to_string(port) + "/patroni";
  EXPECT_FALSE(ha::fetch_peer_statuses({member("n2", url)}, 2s, o)[0].reachable);
  // With a client certificate and ctl.insecure the chain is checked but not the name.
  o.insecure = true;
  o.cert_file = tls.client_cert_file;
  o.key_file = tls.client_key_file;
  EXPECT_TRUE(ha::fetch_peer_statuses({member("n2", url)}, 2s, o)[0].reachable);
}

TEST_F(ServerTlsTest, PeerStatusPresentsTheClientCertificate) {
  cfg.cafile = tls.ca_file;
  cfg.verify_client = "required";
  start();
  std::string url = "https://127.0.0.1:" + std::to_string(port) + "/patroni";
  ha::PeerTlsOptions o;
  o.ca_file = tls.ca_file;
  EXPECT_FALSE(ha::fetch_peer_statuses({member("n2", url)}, 2s, o)[0].reachable);
  o.cert_file = tls.client_cert_file;
  o.key_file = tls.client_key_file;
  EXPECT_TRUE(ha::fetch_peer_statuses({member("n2", url)}, 2s, o)[0].reachable);
}

TEST(PeerTlsOptions, CtlWinsOverRestapi) {
  config::Config cfg;
  cfg.restapi.cafile = "/r/ca";
  cfg.restapi.certfile = "/r/crt";
  cfg.restapi.keyfile = "/r/key";
  cfg.restapi.keyfile_password = "rp";
  auto o = ha::peer_tls_options(cfg);
  EXPECT_EQ(o.ca_file, "/r/ca");
  EXPECT_EQ(o.cert_file, "/r/crt");
  EXPECT_EQ(o.key_file, "/r/key");
  EXPECT_EQ(o.key_password, "rp");
  EXPECT_FALSE(o.insecure);
  cfg.raw["ctl"] = {{"cacert", "/c/ca"}, {"certfile", "/c/crt"}, {"insecure", true}};
  o = ha::peer_tls_options(cfg);
  EXPECT_EQ(o.ca_file, "/c/ca");
  EXPECT_EQ(o.cert_file, "/c/crt");
  EXPECT_EQ(o.key_file, "/r/key");
  EXPECT_TRUE(o.insecure);
}

}  // namespace
}  // namespace pgwarden::api

namespace pgwarden::api {
namespace {

// The chart rotates its certificate secret; SIGHUP reloads it for new connections.
TEST_F(ServerTlsTest, ReloadSwapsTheCertificateForNewConnections) {
  start();
  EXPECT_EQ(get("/health", trusting()).status, 200);
  test::TempDir other{"pgwarden-tls-rotated"};
  auto rotated = test::make_test_tls(other.path());
  config::RestApiConfig next = cfg;
  next.certfile = rotated.cert_file;
  next.keyfile = rotated.key_file;
  // A broken reload keeps what runs.
  config::RestApiConfig broken = cfg;
  broken.certfile = other.file("missing.crt");
  EXPECT_FALSE(server->reload_tls(broken).ok());
  EXPECT_EQ(get("/health", trusting()).status, 200);
  // A good one: new connections are served with the new certificate only.
  ASSERT_TRUE(server->reload_tls(next).ok());
  EXPECT_EQ(get("/health", {rotated.ca_file, "", ""}).status, 200);
  std::string error;
  EXPECT_EQ(get("/health", trusting(), &error).status, 0);
  // Turning TLS off needs a restart.
  config::RestApiConfig plain = cfg;
  plain.certfile.clear();
  EXPECT_FALSE(server->reload_tls(plain).ok());
}

}  // namespace
}  // namespace pgwarden::api
