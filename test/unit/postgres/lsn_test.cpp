#include <gtest/gtest.h>

#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::postgres {
namespace {

TEST(Lsn, ParsesTextForm) {
  EXPECT_EQ(parse_lsn("0/3000060"), 0x3000060);
  EXPECT_EQ(parse_lsn("0/0"), 0);
  EXPECT_EQ(parse_lsn("1/0"), int64_t{1} << 32);
  EXPECT_EQ(parse_lsn("16/B374D848"), (int64_t{0x16} << 32) | 0xB374D848);
  EXPECT_EQ(parse_lsn("a/ff"), (int64_t{10} << 32) | 0xff);
}

TEST(Lsn, RejectsGarbage) {
  EXPECT_FALSE(parse_lsn(""));
  EXPECT_FALSE(parse_lsn("3000060"));
  EXPECT_FALSE(parse_lsn("0/"));
  EXPECT_FALSE(parse_lsn("/1"));
  EXPECT_FALSE(parse_lsn("0/G"));
  EXPECT_FALSE(parse_lsn("0/123456789"));  // more than 32 bits in a half
  EXPECT_FALSE(parse_lsn("FFFFFFFF/0"));   // beyond int64
}

TEST(Lsn, FormatsLikePostgres) {
  EXPECT_EQ(format_lsn(0x3000060), "0/3000060");
  EXPECT_EQ(format_lsn(0), "0/0");
  EXPECT_EQ(format_lsn((int64_t{0x16} << 32) | 0xB374D848), "16/B374D848");
}

TEST(Lsn, RoundTrips) {
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{0x3000060}, int64_t{0x7FFFFFFF} << 20, INT64_MAX})
    EXPECT_EQ(parse_lsn(format_lsn(v)), v) << v;
}

}  // namespace
}  // namespace pgwarden::postgres
