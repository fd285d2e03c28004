// The pgwarden daemon on the Kubernetes API emulator, in the situations an operator meets:
// leftover objects from an earlier install, and credentials the API server rejects.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <thread>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A reinstall over leftover objects: <scope>-config says the cluster was initialised, but no
// member has data and nobody leads. pgwarden says so once, names the object to delete, shows
// it in /patroni, and does not bootstrap a second cluster over the old identity.
TEST(K8sDaemon, InitialisedWithoutLeaderOrDataIsDiagnosedWithTheObjectToDelete) {
  K8sTestDcs dcs(true);
  json leftover = {{"metadata",
                    {{"name", "itest-config"},
                     {"namespace", dcs.ns()},
                     {"labels", {{"app", "pgwarden-itest"}, {"cluster-name", "itest"}}},
                     {"annotations", {{"initialize", "7312345678901234567"}, {"config", R"({"ttl":20})"}}}}}};
  dcs.emulator().put_raw(dcs.ns(), "endpoints", leftover);
  MemberOptions o;
  o.name = "node1";
  o.index = 1;
  PgwardenMember m(dcs, o);
  m.start();
  std::string body;
  ASSERT_TRUE(wait_until(
      [&] {
        body = m.get("/patroni").body;
        return body.find("\"problem\"") != std::string::npos;
      },
      30s))
      << body << "\n" << m.log();
  json doc = json::parse(body);
  std::string problem = doc["problem"];
  EXPECT_NE(problem.find("delete Endpoints itest-ns/itest-config"), std::string::npos) << problem;
  EXPECT_NE(problem.find("7312345678901234567"), std::string::npos) << problem;
  // A few more cycles: still one log line, no data directory, no lock.
  std::this_thread::sleep_for(5s);
  std::string log = m.log();
  size_t lines = 0;
  for (size_t pos = 0; (pos = log.find("bootstrap impossible", pos)) != std::string::npos; ++pos) ++lines;
  EXPECT_EQ(lines, 1u) << log;
  EXPECT_FALSE(file_exists(m.data_dir() + "/PG_VERSION"));
  json lock = dcs.emulator().get(dcs.ns(), "endpoints", "itest");
  EXPECT_TRUE(lock.is_null() || lock.value("/metadata/annotations/leader"_json_pointer, std::string()).empty()) << lock;
  EXPECT_EQ(m.get("/health").status, 503);
}

// The API server rejects our token: a clear error in the log, no bootstrap, no promotion,
// nothing written; once the token is accepted again the member bootstraps normally.
TEST(K8sDaemon, RejectedTokenIsLoggedAndNothingHappensUntilItIsAccepted) {
  K8sTestDcs dcs(true);
  MemberOptions o;
  o.name = "node1";
  o.index = 1;
  PgwardenMember m(dcs, o);
  dcs.emulator().clear_tokens();
  dcs.emulator().add_token("some-other-token");
  m.start();
  ASSERT_TRUE(wait_until([&] { return m.log().find("rejected our credentials (HTTP 401") != std::string::npos; }, 20s))
      << m.log();
  // Each cycle gives up on the DCS after retry_timeout (5 s) and says so.
  EXPECT_TRUE(wait_until([&] { return m.log().find("DCS is not accessible") != std::string::npos; }, 15s)) << m.log();
  EXPECT_FALSE(file_exists(m.data_dir() + "/PG_VERSION"));
  EXPECT_TRUE(dcs.emulator().get(dcs.ns(), "endpoints", "itest").is_null());
  EXPECT_NE(m.get("/leader").status, 200);
  // Access restored (in a pod: the rotated token file is re-read).
  dcs.emulator().clear_tokens();
  EXPECT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 60s)) << m.log();
}

}  // namespace
}  // namespace pgwarden::test
