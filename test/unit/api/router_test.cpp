// Dispatch without sockets: query parsing like urllib's parse_qs, method/segment routing,
// and Basic auth on unsafe methods.
#include "pgwarden/api/router.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "fixtures.hpp"

namespace pgwarden::api {
namespace {

using namespace testing;

TEST(SplitTarget, LikeParseQs) {
  std::string path;
  std::map<std::string, std::string> q;
  split_target("/replica?lag=16kB&tag_zone=eu%2Dwest&tag_x=a+b&lag=1&empty=&novalue#frag", &path, &q);
  EXPECT_EQ(path, "/replica");
  EXPECT_EQ(q, (std::map<std::string, std::string>{{"lag", "16kB"}, {"tag_zone", "eu-west"}, {"tag_x", "a b"}}));
  split_target("/", &path, &q);
  EXPECT_EQ(path, "/");
  EXPECT_TRUE(q.empty());
  split_target("/x?%zz=1", &path, &q);
  EXPECT_EQ(q.at("%zz"), "1");  // malformed escapes are kept literally
}

struct RouterTest : ::testing::Test {
  ha::NodeBoard board;
  std::atomic<int> queries{0};
  config::RestApiConfig cfg;

  Router make() {
    ServerDeps deps;
    deps.board = &board;
    deps.query_postgres = [this]() -> std::optional<postgres::PgState> {
      ++queries;
      return primary_pg();
    };
    return Router(cfg, deps);
  }
  static HttpRequest request(const std::string& method, const std::string& target) {
    HttpRequest r;
    r.method = method;
    r.target = target;
    split_target(target, &r.path, &r.query);
    return r;
  }
};

TEST_F(RouterTest, HealthCheckFallbackAndSpecialSegments) {
  board.publish(leader_view());
  auto router = make();
  auto res = router.handle(request("GET", "/"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(res.body)["role"], "master");
  EXPECT_EQ(queries.load(), 1);

  EXPECT_EQ(router.handle(request("GET", "/replica")).status, 503);
  EXPECT_EQ(router.handle(request("GET", "/cluster")).status, 200);  // its own handler, not the health check
  EXPECT_EQ(router.handle(request("GET", "/unknown")).status, 503);  // any other GET: the health check
  auto patroni = router.handle(request("GET", "/patroni/anything"));
  EXPECT_EQ(patroni.status, 200);
  EXPECT_FALSE(patroni.status_only);

  auto head = router.handle(request("HEAD", "/replica"));
  EXPECT_EQ(head.status, 503);
  EXPECT_TRUE(head.status_only);
  // There is no OPTIONS handler for /patroni: the health check runs, and the path matches no
  // rule, so 503 as in Patroni.
  auto options = router.handle(request("OPTIONS", "/patroni"));
  EXPECT_EQ(options.status, 503);
  EXPECT_EQ(router.handle(request("OPTIONS", "/leader")).status, 200);
  EXPECT_TRUE(options.status_only);

  const int before = queries.load();
  auto live = router.handle(request("GET", "/liveness"));
  EXPECT_TRUE(live.status_only);
  auto ready = router.handle(request("GET", "/readiness"));
  EXPECT_TRUE(ready.status_only);
  EXPECT_EQ(ready.status, 200);       // leader
  EXPECT_EQ(queries.load(), before);  // probes never query PostgreSQL
}

TEST_F(RouterTest, PatroniIsAlways200EvenWithoutPostgres) {
  board.publish(replica_view());
  ServerDeps deps;
  deps.board = &board;
  deps.query_postgres = []() -> std::optional<postgres::PgState> { return std::nullopt; };
  Router router(cfg, deps);
  auto res = router.handle(request("GET", "/patroni"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(nlohmann::json::parse(res.body)["state"], "unknown");
}

TEST_F(RouterTest, ThrowingDependencyGives500) {
  ServerDeps deps;
  deps.board = &board;
  deps.query_postgres = []() -> std::optional<postgres::PgState> { throw std::runtime_error("boom"); };
  Router router(cfg, deps);
  EXPECT_EQ(router.handle(request("GET", "/")).status, 500);
}

TEST_F(RouterTest, UnsafeMethodsAuthenticateThenAnswer501) {
  board.publish(leader_view());
  auto open = make();
  EXPECT_EQ(open.handle(request("POST", "/citus")).status, 501);
  EXPECT_EQ(open.handle(request("BREW", "/")).status, 501);

  cfg.username = "admin";
  cfg.password = "s3cret";
  auto router = make();
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    auto missing = router.handle(request(method, "/config"));
    EXPECT_EQ(missing.status, 401) << method;
    EXPECT_EQ(missing.body, "no auth header received");
    ASSERT_EQ(missing.headers.size(), 1u);
    EXPECT_EQ(missing.headers[0].first, "WWW-Authenticate");
    EXPECT_EQ(missing.headers[0].second, "Basic realm=\"Patroni\"");
  }
  auto wrong = request("POST", "/reload");
  wrong.headers["authorization"] = "Basic YWRtaW46d3Jvbmc=";  // admin:wrong
  EXPECT_EQ(router.handle(wrong).status, 401);
  EXPECT_EQ(router.handle(wrong).body, "not authenticated");
  auto scheme = request("POST", "/reload");
  scheme.headers["authorization"] = "Bearer YWRtaW46czNjcmV0";
  EXPECT_EQ(router.handle(scheme).status, 401);
  auto right = request("POST", "/citus");
  right.headers["authorization"] = "Basic YWRtaW46czNjcmV0";  // admin:s3cret
  EXPECT_EQ(router.handle(right).status, 501);
  EXPECT_EQ(router.handle(request("GET", "/")).status, 200);  // safe methods need no auth
}

}  // namespace
}  // namespace pgwarden::api

namespace pgwarden::api {
namespace {

// Patroni's check_access: over HTTPS with verify_client optional (or required), a change needs
// a verified client certificate; that check comes before the password.
TEST_F(RouterTest, UnsafeRequestsOverHttpsNeedAClientCertificateWhenVerifyClientIsSet) {
  board.publish(leader_view());
  cfg.certfile = "/irrelevant/here.crt";
  cfg.verify_client = "optional";
  cfg.username = "admin";
  cfg.password = "s3cret";
  auto router = make();
  HttpRequest no_cert = request("POST", "/citus");
  no_cert.tls = true;
  auto res = router.handle(no_cert);
  EXPECT_EQ(res.status, 403);
  EXPECT_EQ(res.body, "client certificate required");
  HttpRequest with_cert = no_cert;
  with_cert.client_cert = true;
  EXPECT_EQ(router.handle(with_cert).status, 401);  // then the password, as usual
  // Reading needs no certificate.
  HttpRequest get = request("GET", "/patroni");
  get.tls = true;
  EXPECT_EQ(router.handle(get).status, 200);
  // verify_client none: no certificate asked for.
  cfg.verify_client = "none";
  auto open = make();
  EXPECT_EQ(open.handle(no_cert).status, 401);
}

}  // namespace
}  // namespace pgwarden::api

namespace pgwarden::api {
namespace {

TEST_F(RouterTest, FailsafeIsOffGetAndPostAnswer502) {
  board.publish(leader_view());
  auto router = make();
  EXPECT_EQ(router.handle(request("GET", "/failsafe")).status, 502);
  EXPECT_EQ(router.handle(request("POST", "/failsafe")).status, 502);
}

}  // namespace
}  // namespace pgwarden::api
