// WakeSignal: the flag, the eventfd that mirrors it for event loops, and wait_for.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdint>

#include <chrono>
#include <thread>

#include "pgwarden/util/wake_signal.hpp"

namespace pgwarden::util {
namespace {

using namespace std::chrono_literals;

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

TEST(WakeSignal, FlagAndDescriptorGoTogether) {
  WakeSignal w;
  ASSERT_GE(w.fd(), 0);
  EXPECT_FALSE(w.is_set());
  EXPECT_FALSE(readable(w.fd()));
  w.set();
  w.set();  // twice is one pending wake
  EXPECT_TRUE(w.is_set());
  EXPECT_TRUE(readable(w.fd()));
  EXPECT_TRUE(w.take());
  EXPECT_FALSE(w.is_set());
  EXPECT_FALSE(readable(w.fd())) << "take() empties the eventfd";
  EXPECT_FALSE(w.take());
}

TEST(WakeSignal, DrainLeavesTheFlag) {
  WakeSignal w;
  w.set();
  w.drain();
  EXPECT_FALSE(readable(w.fd()));
  EXPECT_TRUE(w.is_set()) << "a waiter still sees the wake through the flag";
}

TEST(WakeSignal, WaitForTimesOutOrReturnsWhenSet) {
  WakeSignal w;
  EXPECT_FALSE(w.wait_for(30ms));
  w.set();
  EXPECT_TRUE(w.wait_for(0ms));
  EXPECT_TRUE(w.wait_for(10s)) << "already set: no sleep";
  EXPECT_TRUE(w.is_set()) << "wait_for does not consume the wake";
  w.take();

  std::thread setter([&] {
    std::this_thread::sleep_for(50ms);
    w.set();
  });
  EXPECT_TRUE(w.wait_for(std::chrono::minutes(5)));  // returns on set(), not at the timeout
  setter.join();
}

TEST(WakeSignal, StaleDescriptorDoesNotEndTheWait) {
  // The eventfd readable while the flag is clear, as when take() ran between another
  // thread's flag store and its write: wait_for drains it and keeps waiting.
  WakeSignal w;
  uint64_t one = 1;
  ASSERT_EQ(::write(w.fd(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  EXPECT_FALSE(w.wait_for(30ms));
  EXPECT_FALSE(readable(w.fd()));
  EXPECT_FALSE(w.is_set());
}

}  // namespace
}  // namespace pgwarden::util
