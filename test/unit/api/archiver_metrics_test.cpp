// pgwarden's WAL archiving metrics (pg_stat_archiver) appended to GET /metrics.
#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "pgwarden/api/management.hpp"
#include "pgwarden/api/router.hpp"

namespace pgwarden::api {
namespace {

using namespace testing;

// The sample line of `name` (without HELP/TYPE), or "" when absent.
std::string sample(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name + "{", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return text.substr(pos, text.find('\n', pos) - pos);
    pos += name.size();
  }
  return "";
}

TEST(ArchiverMetrics, CountsAndLastFailureWithTheUsualLabels) {
  auto pg = primary_pg();
  pg.archiver_archived_count = 42;
  pg.archiver_failed_count = 3;
  pg.archiver_last_failed_wal = "000000010000000000000005";
  pg.archiver_last_failed_time = 1693401825.5;
  std::string text = render_archiver_metrics(leader_view(), &pg);
  const std::string labels = "{scope=\"demo\",name=\"n1\"}";
  EXPECT_EQ(sample(text, "pgwarden_postgres_archiver_archived_count"),
            "pgwarden_postgres_archiver_archived_count" + labels + " 42");
  EXPECT_EQ(sample(text, "pgwarden_postgres_archiver_failed_count"),
            "pgwarden_postgres_archiver_failed_count" + labels + " 3");
  EXPECT_EQ(sample(text, "pgwarden_postgres_archiver_last_failed_time"),
            "pgwarden_postgres_archiver_last_failed_time" + labels + " 1693401825.5");
  EXPECT_NE(text.find("# TYPE pgwarden_postgres_archiver_archived_count counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE pgwarden_postgres_archiver_failed_count counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE pgwarden_postgres_archiver_last_failed_time gauge\n"), std::string::npos);
}

TEST(ArchiverMetrics, NeverFailedAndPostgresDownAreZero) {
  auto pg = primary_pg();
  pg.archiver_archived_count = 7;
  std::string text = render_archiver_metrics(leader_view(), &pg);
  EXPECT_EQ(sample(text, "pgwarden_postgres_archiver_last_failed_time"),
            "pgwarden_postgres_archiver_last_failed_time{scope=\"demo\",name=\"n1\"} 0");
  text = render_archiver_metrics(leader_view(), nullptr);
  for (const char* name : {"pgwarden_postgres_archiver_archived_count", "pgwarden_postgres_archiver_failed_count",
                           "pgwarden_postgres_archiver_last_failed_time"})
    EXPECT_EQ(sample(text, name), std::string(name) + "{scope=\"demo\",name=\"n1\"} 0") << name;
}

TEST(ArchiverMetrics, ServedByGetMetrics) {
  ha::NodeBoard board;
  board.publish(leader_view());
  ServerDeps deps;
  deps.board = &board;
  deps.query_postgres = [] {
    auto pg = primary_pg();
    pg.archiver_failed_count = 5;
    return std::optional<postgres::PgState>(pg);
  };
  Router router(config::RestApiConfig{}, deps);
  HttpRequest req;
  req.method = "GET";
  req.target = req.path = "/metrics";
  auto res = router.handle(req);
  EXPECT_EQ(res.status, 200);
  EXPECT_NE(res.body.find("patroni_primary{scope=\"demo\",name=\"n1\"} 1\n"), std::string::npos);
  EXPECT_NE(res.body.find("pgwarden_postgres_archiver_failed_count{scope=\"demo\",name=\"n1\"} 5\n"), std::string::npos)
      << res.body;
}

}  // namespace
}  // namespace pgwarden::api
