// POST/DELETE /restart, POST /reload and POST /reinitialize: parsing as Patroni's
// do_POST_restart, every refusal, and the hand-over to the HA loop through the mailbox (a
// fake loop thread answers here).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "fixtures.hpp"
#include "pgwarden/api/router.hpp"
#include "pgwarden/util/iso_time.hpp"

namespace pgwarden::api {
namespace {

using namespace testing;
using nlohmann::json;

constexpr double kNow = 1'700'000'000;

TEST(ParseRestartRequest, EmptyBodyMeansRestartNow) {
  auto r = parse_restart_request(json::object(), false, kNow);
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.schedule);
  EXPECT_TRUE(r.filters.role.empty());
}

TEST(ParseRestartRequest, AcceptsEveryFilter) {
  auto r = parse_restart_request({{"schedule", "2023-11-14T23:00:00+00:00"},
                                  {"role", "primary"},
                                  {"postgres_version", "15.5"},
                                  {"restart_pending", true},
                                  {"timeout", "2min"}},
                                 false, kNow);
  ASSERT_EQ(r.status, 0) << r.error;
  ASSERT_TRUE(r.schedule);
  EXPECT_EQ(*r.schedule, *util::parse_iso8601("2023-11-14T23:00:00+00:00"));
  EXPECT_EQ(r.filters.role, "master");  // primary is the same role
  EXPECT_EQ(r.filters.postgres_version_num, 150005);
  EXPECT_TRUE(r.filters.restart_pending);
  EXPECT_EQ(r.filters.timeout, 120);
  EXPECT_EQ(parse_restart_request({{"postgres_version", "9.6.24"}}, false, kNow).filters.postgres_version_num, 90624);
}

struct Refusal {
  json body;
  bool paused;
  int status;
  std::string error;
};

TEST(ParseRestartRequest, RefusesLikePatroni) {
  const Refusal cases[] = {
      {{{"schedule", "2023-11-14T23:00:00+00:00"}}, true, 500, "Can't schedule restart in the paused state"},
      {{{"schedule", "tomorrow"}}, false, 422,
       "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"},
      {{{"schedule", 12}}, false, 422,
       "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"},
      {{{"schedule", "2023-11-14T23:00:00"}}, false, 400, "Timezone information is mandatory for the scheduled restart"},
      {{{"schedule", "2020-01-01T00:00:00+00:00"}}, false, 422, "Cannot schedule restart in the past"},
      {{{"role", "leader"}}, false, 400, "PostgreSQL role should be either primary or replica"},
      {{{"postgres_version", "15"}}, false, 400, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 15"},
      {{{"postgres_version", "9.6"}}, false, 400, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"},
      {{{"postgres_version", "a.b.c"}}, false, 400, "Invalid PostgreSQL version: a.b.c"},
      {{{"timeout", 0}}, false, 400, "Timeout should be a positive number of seconds"},
      {{{"timeout", "soon"}}, false, 400, "Timeout should be a positive number of seconds"},
      {{{"timeout", "10 parsecs"}}, false, 400, "Timeout should be a positive number of seconds"},
      {{{"pending_restart", true}}, false, 400, "Unknown filter for the scheduled restart: pending_restart"},
  };
  for (const auto& c : cases) {
    auto r = parse_restart_request(c.body, c.paused, kNow);
    EXPECT_EQ(r.status, c.status) << c.body.dump();
    EXPECT_EQ(r.error, c.error) << c.body.dump();
  }
}

TEST(ParseSeconds, PatroniUnits) {
  EXPECT_EQ(parse_seconds(30), 30);
  EXPECT_EQ(parse_seconds("30"), 30);
  EXPECT_EQ(parse_seconds(" 45 s "), 45);
  EXPECT_EQ(parse_seconds("1min"), 60);
  EXPECT_EQ(parse_seconds("2000ms"), 2);
  EXPECT_EQ(parse_seconds("1h"), 3600);
  EXPECT_FALSE(parse_seconds("x"));
  EXPECT_FALSE(parse_seconds(json::array()));
}

struct OperationsTest : ::testing::Test {
  ha::NodeBoard board;
  ha::RequestMailbox box;
  config::RestApiConfig cfg;
  std::atomic<int> reloads{0};
  std::atomic<int> wakes{0};
  bool with_mailbox = true;

  Router make() {
    ServerDeps deps;
    deps.board = &board;
    deps.query_postgres = []() -> std::optional<postgres::PgState> { return primary_pg(); };
    deps.wake_ha = [this] { ++wakes; };
    if (with_mailbox) deps.requests = &box;
    deps.reload_config = [this] { ++reloads; };
    return Router(cfg, deps);
  }
  static HttpRequest request(const std::string& method, const std::string& target, const std::string& body = "") {
    HttpRequest r;
    r.method = method;
    r.target = target;
    split_target(target, &r.path, &r.query);
    r.body = body;
    if (!body.empty() || method != "GET") r.headers["content-length"] = std::to_string(body.size());
    return r;
  }
  // A loop that answers the next request it takes.
  std::thread answer_next(ha::RequestReply reply, std::vector<ha::OperatorRequest>* seen) {
    return std::thread([this, reply, seen] {
      for (int i = 0; i < 5000; ++i) {
        auto taken = box.take();
        if (!taken.empty()) {
          for (auto& r : taken) {
            seen->push_back(r);
            box.complete(r.id, reply);
          }
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
};

TEST_F(OperationsTest, RestartNowIsAnsweredByTheLoop) {
  board.publish(leader_view());
  auto router = make();
  std::vector<ha::OperatorRequest> seen;
  auto loop = answer_next({200, "restarted successfully"}, &seen);
  auto res = router.handle(request("POST", "/restart", R"({"role":"master","timeout":30})"));
  loop.join();
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "restarted successfully");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, ha::RequestKind::kRestart);
  EXPECT_EQ(seen[0].restart.role, "master");
  EXPECT_EQ(seen[0].restart.timeout, 30);
  EXPECT_GE(wakes.load(), 1);
}

TEST_F(OperationsTest, RestartWithoutBodyOrLength) {
  auto router = make();
  std::vector<ha::OperatorRequest> seen;
  auto loop = answer_next({503, "restart conditions are not satisfied"}, &seen);
  HttpRequest r = request("POST", "/restart");
  r.headers.erase("content-length");
  auto res = router.handle(r);
  loop.join();
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.body, "restart conditions are not satisfied");
}

TEST_F(OperationsTest, MalformedBodiesAreRefusedAndNothingIsPosted) {
  auto router = make();
  for (const char* body : {"{", "[1]", "\"x\"", "{\"role\":\"leader\"}", "{\"bogus\":1}"}) {
    auto res = router.handle(request("POST", "/restart", body));
    EXPECT_EQ(res.status, 400) << body;
    EXPECT_FALSE(box.has_pending()) << body;
  }
  EXPECT_EQ(router.handle(request("POST", "/reinitialize", "{")).status, 400);
  EXPECT_FALSE(box.has_pending());
}

TEST_F(OperationsTest, ScheduleShowCancel) {
  board.publish(leader_view());
  auto router = make();
  const std::string at = util::format_iso8601(std::floor(util::parse_iso8601("2099-01-01T00:00:00Z").value()));
  auto res = router.handle(request("POST", "/restart", json{{"schedule", at}, {"role", "replica"}}.dump()));
  EXPECT_EQ(res.status, 202);
  EXPECT_EQ(res.body, "Restart scheduled");
  ASSERT_TRUE(box.scheduled_restart());
  EXPECT_EQ(box.scheduled_restart()->postmaster_start_time, primary_pg().postmaster_start_time);
  EXPECT_FALSE(box.has_pending());  // not a request for now

  auto again = router.handle(request("POST", "/restart", json{{"schedule", at}}.dump()));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.body, "Another restart is already scheduled");

  auto doc = json::parse(router.handle(request("GET", "/patroni")).body);
  EXPECT_EQ(doc["scheduled_restart"], (json{{"schedule", "2099-01-01T00:00:00+00:00"}, {"role", "replica"}}));
  auto health = json::parse(router.handle(request("GET", "/primary")).body);
  EXPECT_TRUE(health.contains("scheduled_restart"));

  auto del = router.handle(request("DELETE", "/restart"));
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(del.body, "scheduled restart deleted");
  EXPECT_FALSE(json::parse(router.handle(request("GET", "/patroni")).body).contains("scheduled_restart"));
  auto none = router.handle(request("DELETE", "/restart"));
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(none.body, "no restarts are scheduled");
}

TEST_F(OperationsTest, ScheduleRefusedWhilePaused) {
  auto view = leader_view();
  view.paused = true;
  board.publish(view);
  auto router = make();
  auto res = router.handle(request("POST", "/restart", R"({"schedule":"2099-01-01T00:00:00+00:00"})"));
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.body, "Can't schedule restart in the paused state");
  EXPECT_FALSE(box.scheduled_restart());
}

TEST_F(OperationsTest, Reload) {
  auto router = make();
  auto res = router.handle(request("POST", "/reload"));
  EXPECT_EQ(res.status, 202);
  EXPECT_EQ(res.body, "reload scheduled");
  EXPECT_EQ(reloads.load(), 1);
}

TEST_F(OperationsTest, ReinitializePassesForce) {
  auto router = make();
  std::vector<ha::OperatorRequest> seen;
  auto loop = answer_next({200, "reinitialize started"}, &seen);
  auto res = router.handle(request("POST", "/reinitialize", R"({"force":"yes"})"));
  loop.join();
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "reinitialize started");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, ha::RequestKind::kReinitialize);
  EXPECT_TRUE(seen[0].force);
}

TEST_F(OperationsTest, ReinitializeRefusalComesBack) {
  auto router = make();
  std::vector<ha::OperatorRequest> seen;
  auto loop = answer_next({503, "I am the leader, can not reinitialize"}, &seen);
  auto res = router.handle(request("POST", "/reinitialize"));
  loop.join();
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.body, "I am the leader, can not reinitialize");
  EXPECT_FALSE(seen.at(0).force);
}

TEST_F(OperationsTest, AuthenticationComesFirst) {
  cfg.username = "admin";
  cfg.password = "s3cret";
  auto router = make();
  for (auto [method, path] : {std::pair{"POST", "/restart"}, {"DELETE", "/restart"}, {"POST", "/reload"},
                              {"POST", "/reinitialize"}}) {
    auto res = router.handle(request(method, path, "{}"));
    EXPECT_EQ(res.status, 401) << method << " " << path;
  }
  EXPECT_EQ(reloads.load(), 0);
  EXPECT_FALSE(box.has_pending());
}

TEST_F(OperationsTest, WithoutALoopAnswers503) {
  with_mailbox = false;
  auto router = make();
  EXPECT_EQ(router.handle(request("POST", "/restart", "{}")).status, 503);
  EXPECT_EQ(router.handle(request("POST", "/reinitialize", "{}")).status, 503);
  EXPECT_EQ(router.handle(request("DELETE", "/restart")).status, 404);
}

}  // namespace
}  // namespace pgwarden::api
