// The REST API over HTTPS with a real member (etcd, PostgreSQL 15): restapi.certfile/keyfile
// from the environment, plain HTTP refused on the TLS port, verify_client, keep-alive, a clear
// exit for a missing certificate, and a TLS-only cluster whose leader race compares WAL
// positions over HTTPS (with client certificates required).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <memory>
#include <thread>

#include "cluster_fixture.hpp"
#include "support/https_client.hpp"
#include "support/tls_certs.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;

HttpReply tls_get(const PgwardenMember& m, const std::string& path, const TlsClientOptions& o) {
  return https_request("GET", "127.0.0.1", m.api_port(), path, o, nullptr, 3s);
}

class RestTls : public ::testing::Test {
 protected:
  void TearDown() override {
    members.clear();
    etcd.reset();
  }

  PgwardenMember& add(const std::string& name, int index, std::map<std::string, std::string> env) {
    MemberOptions o;
    o.name = name;
    o.index = index;
    o.ttl = 10;
    o.loop_wait = 2;
    o.retry_timeout = 4;
    o.extra_env = std::move(env);
    members.push_back(std::make_unique<PgwardenMember>(*etcd, o));
    return *members.back();
  }

  std::string logs() {
    std::string all;
    for (auto& m : members) all += "----- " + m->options().name + "\n" + m->log();
    return all;
  }

  std::unique_ptr<EtcdServer> etcd = std::make_unique<EtcdServer>();
  TempDir certs{"pgwarden-tls-certs"};
  TlsFiles tls = make_test_tls(certs.path(), /*with_client=*/true);
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

TEST_F(RestTls, ServesHttpsOnlyWithKeepAlive) {
  auto& m = add("node1", 1, {{"PATRONI_RESTAPI_CERTFILE", tls.cert_file}, {"PATRONI_RESTAPI_KEYFILE", tls.key_file}});
  m.start();
  TlsClientOptions trust{tls.ca_file, "", ""};
  ASSERT_TRUE(wait_until([&] { return tls_get(m, "/health", trust).status == 200; }, 90s)) << logs();
  ASSERT_TRUE(wait_until([&] { return tls_get(m, "/leader", trust).status == 200; }, 60s)) << logs();
  // Plain HTTP on the TLS port gets no answer, and the server carries on.
  EXPECT_EQ(http_request("GET", "127.0.0.1", m.api_port(), "/health", "", 3s).status, 0);
  // Two requests on one TLS connection.
  HttpsConnection c("127.0.0.1", m.api_port(), trust);
  ASSERT_TRUE(c.connect()) << c.error();
  auto first = c.request("GET", "/patroni");
  ASSERT_EQ(first.status, 200) << c.error();
  EXPECT_EQ(nlohmann::json::parse(first.body)["role"], "master");
  auto second = c.request("GET", "/health");
  EXPECT_EQ(second.status, 200) << c.error();
  // The member advertises an https api_url.
  std::string want = "https://127.0.0.1:" + std::to_string(m.api_port()) + "/patroni";
  EXPECT_TRUE(wait_until(
      [&] {
        for (auto& [k, v] : etcd->get_prefix("/service/itest/members/"))
          if (v.find(want) != std::string::npos) return true;
        return false;
      },
      20s));
}

TEST_F(RestTls, VerifyClientRequired) {
  auto& m = add("node1", 1,
                {{"PATRONI_RESTAPI_CERTFILE", tls.cert_file},
                 {"PATRONI_RESTAPI_KEYFILE", tls.key_file},
                 {"PATRONI_RESTAPI_CAFILE", tls.ca_file},
                 {"PATRONI_RESTAPI_VERIFY_CLIENT", "required"}});
  m.start();
  TlsClientOptions with_cert{tls.ca_file, tls.client_cert_file, tls.client_key_file};
  ASSERT_TRUE(wait_until([&] { return tls_get(m, "/health", with_cert).status == 200; }, 90s)) << logs();
  std::string error;
  EXPECT_EQ(https_request("GET", "127.0.0.1", m.api_port(), "/health", {tls.ca_file, "", ""}, &error, 3s).status, 0);
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(tls_get(m, "/health", with_cert).status, 200);
  EXPECT_TRUE(m.alive());
}

TEST_F(RestTls, MissingCertificateStopsTheDaemonWithItsName) {
  std::string missing = certs.file("no-such.crt");
  auto& m = add("node1", 1, {{"PATRONI_RESTAPI_CERTFILE", missing}, {"PATRONI_RESTAPI_KEYFILE", tls.key_file}});
  m.start();
  auto code = m.stop(0, 30s);  // signal 0: only wait for the exit
  ASSERT_TRUE(code.has_value()) << m.log();
  EXPECT_NE(*code, 0);
  EXPECT_NE(m.log().find(missing), std::string::npos) << m.log();
}

// Every member's REST API is HTTPS only and requires a client certificate; each member
// presents its own restapi certificate (serverAuth + clientAuth) to its peers, as Patroni does.
TEST_F(RestTls, KilledLeaderFailsOverComparingWalOverHttps) {
  TestCa ca("pgwarden cluster CA");
  ca.write_cert(certs.file("cluster-ca.crt"));
  CertSpec spec;
  spec.common_name = "pgwarden-member";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.server = true;
  spec.client = true;
  ca.issue(spec, certs.file("member.crt"), certs.file("member.key"));
  std::map<std::string, std::string> env = {{"PATRONI_RESTAPI_CERTFILE", certs.file("member.crt")},
                                            {"PATRONI_RESTAPI_KEYFILE", certs.file("member.key")},
                                            {"PATRONI_RESTAPI_CAFILE", certs.file("cluster-ca.crt")},
                                            {"PATRONI_RESTAPI_VERIFY_CLIENT", "required"}};
  for (int i = 1; i <= 3; ++i) add("node" + std::to_string(i), i, env);
  for (auto& m : members) m->start();
  TlsClientOptions client{certs.file("cluster-ca.crt"), certs.file("member.crt"), certs.file("member.key")};

  auto leader = [&]() -> PgwardenMember* {
    for (auto& m : members)
      if (m->alive() && tls_get(*m, "/leader", client).status == 200) return m.get();
    return nullptr;
  };
  PgwardenMember* old = nullptr;
  ASSERT_TRUE(wait_until(
      [&] {
        old = leader();
        if (!old) return false;
        // Asked on the replicas: a base backup's WAL stream (same application_name) does not
        // count, only a running standby's WAL receiver.
        int streaming = 0;
        for (auto& m : members)
          if (m.get() != old && m->sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") ==
                                    "streaming:" + std::to_string(old->pg_port()))
            ++streaming;
        return streaming == 2;
      },
      150s))
      << logs();
  ASSERT_EQ(old->sql("CREATE TABLE kept(x int); INSERT INTO kept VALUES (1)"), "OK");
  std::this_thread::sleep_for(1s);

  std::map<std::string, size_t> log_start;
  for (auto& m : members) log_start[m->options().name] = m->log().size();
  auto pm = old->postmaster_pid();
  old->kill9();
  if (pm) kill(*pm, SIGKILL);

  PgwardenMember* next = nullptr;
  ASSERT_TRUE(wait_until([&] { next = leader(); return next && next != old; }, 60s)) << logs();
  EXPECT_EQ(next->sql("SELECT x FROM kept"), "1");

  PgwardenMember* other = nullptr;
  for (auto& m : members)
    if (m.get() != old && m.get() != next) other = m.get();
  ASSERT_TRUE(other);
  // The new leader asked the other replica over HTTPS and got its WAL position (the dead
  // leader's member key went with its lease, so it is not asked).
  std::string race = next->log().substr(log_start[next->options().name]);
  std::string other_url = "https://127.0.0.1:" + std::to_string(other->api_port()) + "/patroni";
  // Either its WAL position, or (a reply read over the mutually authenticated connection
  // while that member's own state was being read) an answer without one: both prove the
  // HTTPS exchange; a TLS or connection failure would not.
  bool answered = race.find("Got response from " + other->options().name + " " + other_url + ": wal_position=") !=
                      std::string::npos ||
                  race.find("Request failed to " + other->options().name + ": GET " + other_url +
                            " (reply is not a status document") != std::string::npos;
  EXPECT_TRUE(answered) << race;
  // And the other replica follows the new leader.
  EXPECT_TRUE(wait_until(
      [&] { return next->sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'node%'") == "1"; }, 60s))
      << logs();
}

}  // namespace
}  // namespace pgwarden::test
