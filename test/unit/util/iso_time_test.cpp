#include "pgwarden/util/iso_time.hpp"

#include <gtest/gtest.h>

namespace pgwarden::util {
namespace {

TEST(IsoTime, ParsesPatronisFormsAndRejectsGarbage) {
  struct Row {
    const char* text;
    std::optional<double> want;
  } rows[] = {
      {"2024-01-18T15:43:45+00:00", 1705592625},
      {"2024-01-18T15:43:45.5+00:00", 1705592625.5},
      {"2024-01-18T15:43:45.123456Z", 1705592625.123456},
      {"2024-01-18 15:43:45", 1705592625},
      {"2024-01-18T17:43:45+02:00", 1705592625},
      {"2024-01-18T10:43:45-0500", 1705592625},
      {"2024-01-18T15:43:45+01", 1705592625 - 3600},
      {"", std::nullopt},
      {"yesterday", std::nullopt},
      {"2024-13-18T15:43:45+00:00", std::nullopt},
      {"2024-01-18T15:43:45+00:00 trailing", std::nullopt},
      {"2024-01-18T15:43:45.+00:00", std::nullopt},
      {"2024-01-18X15:43:45", std::nullopt},
  };
  for (const auto& r : rows) {
    auto got = parse_iso8601(r.text);
    ASSERT_EQ(got.has_value(), r.want.has_value()) << r.text;
    if (got) {
      EXPECT_NEAR(*got, *r.want, 1e-6) << r.text;
    }
  }
}

TEST(IsoTime, FormatsAsPythonIsoformatAndRoundTrips) {
  EXPECT_EQ(format_iso8601(1705592625), "2024-01-18T15:43:45+00:00");
  EXPECT_EQ(format_iso8601(1705592625.25), "2024-01-18T15:43:45.250000+00:00");
  EXPECT_NEAR(*parse_iso8601(format_iso8601(1705592625.123456)), 1705592625.123456, 1e-6);
}

}  // namespace
}  // namespace pgwarden::util
