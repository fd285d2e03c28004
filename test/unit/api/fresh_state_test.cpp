#include "pgwarden/api/fresh_state.hpp"

#include <gtest/gtest.h>

namespace pgwarden::api {
namespace {

TEST(FreshState, ReadsAtMostOncePerMaxAgeAndAgainAfterIt) {
  int reads = 0;
  FreshState::Clock::time_point now{};
  FreshState s(
      [&]() -> std::optional<postgres::PgState> {
        ++reads;
        postgres::PgState st;
        st.timeline = reads;
        return st;
      },
      std::chrono::milliseconds(100), [&] { return now; });
  EXPECT_EQ(s.get()->timeline, 1);
  now += std::chrono::milliseconds(50);
  EXPECT_EQ(s.get()->timeline, 1);
  EXPECT_EQ(reads, 1);
  now += std::chrono::milliseconds(60);
  EXPECT_EQ(s.get()->timeline, 2);
  EXPECT_EQ(reads, 2);
}

TEST(FreshState, AnUnreachablePostgresIsAnswerToo) {
  int reads = 0;
  FreshState::Clock::time_point now{};
  FreshState s([&]() -> std::optional<postgres::PgState> { ++reads; return std::nullopt; }, std::chrono::milliseconds(100),
               [&] { return now; });
  EXPECT_FALSE(s.get());
  EXPECT_FALSE(s.get());
  EXPECT_EQ(reads, 1);
  now += std::chrono::milliseconds(200);
  EXPECT_FALSE(s.get());
  EXPECT_EQ(reads, 2);
}

}  // namespace
}  // namespace pgwarden::api
