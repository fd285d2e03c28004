// parse_size follows Patroni's parse_int(value, 'B') used for ?lag=.
#include <gtest/gtest.h>

#include "pgwarden/api/status_document.hpp"

namespace pgwarden::api {
namespace {

TEST(ParseSize, PlainAndUnits) {
  struct Case {
    const char* text;
    std::optional<int64_t> bytes;
  };
  const Case cases[] = {
      {"0", 0},
      {"1000", 1000},
      {" 1000 ", 1000},
      {"16kB", 16 * 1024},
      {"16 kB", 16 * 1024},
      {"64MB", 64LL * 1024 * 1024},
      {"1GB", 1024LL * 1024 * 1024},
      {"2TB", 2LL * 1024 * 1024 * 1024 * 1024},
      {"10B", 10},
      {"1.5kB", 1536},
      {"0x10", 16},
      {"010", 8},
      {"-1", -1},
      {"1e3", 1000},
      {"", std::nullopt},
      {"abc", std::nullopt},
      {"16kb", std::nullopt},  // units are case-sensitive, as in PostgreSQL
      {"16 KB", std::nullopt},
      {"5s", std::nullopt},
      {"1 2", std::nullopt},
      {"99999999999TB", std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(parse_size(c.text), c.bytes) << "input: '" << c.text << "'";
  }
}

}  // namespace
}  // namespace pgwarden::api
