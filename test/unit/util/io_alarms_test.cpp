// The wait step both DCS transports use: it ends at the deadline or on a signal, sleeps (no
// polling) while neither is due, and is not fooled by a wake someone already took.
#include "pgwarden/util/io_alarms.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>

#include <chrono>
#include <thread>

namespace pgwarden::util {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Step = IoAlarms::Step;

// Steps until something other than a handler run ends the wait; counts the handler runs.
Step wait_out(IoAlarms& alarms, int* ran = nullptr) {
  for (;;) {
    Step s = alarms.step(500ms);
    if (s != Step::kRan) return s;
    if (ran) ++*ran;
  }
}

TEST(IoAlarms, EndsAtTheDeadline) {
  boost::asio::io_context ioc;
  WakeSignal wake;
  auto t0 = Clock::now();
  int ran = 0;
  {
    IoAlarms alarms(ioc, t0 + 150ms, &wake);
    EXPECT_EQ(wait_out(alarms, &ran), Step::kExpired);
  }
  EXPECT_GE(Clock::now() - t0, 150ms);
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_LE(ran, 2) << "the wait slept instead of polling";
}

TEST(IoAlarms, EndsAtOnceWhenSignalled) {
  boost::asio::io_context ioc;
  WakeSignal wake;
  std::thread setter([&] {
    std::this_thread::sleep_for(100ms);
    wake.set();
  });
  auto t0 = Clock::now();
  {
    IoAlarms alarms(ioc, t0 + 10s, &wake);
    EXPECT_EQ(wait_out(alarms), Step::kSignalled);
  }
  setter.join();
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_TRUE(wake.take());
}

TEST(IoAlarms, AWakeAlreadyTakenDoesNotEndTheWait) {
  boost::asio::io_context ioc;
  WakeSignal wake;
  wake.set();
  ASSERT_TRUE(wake.take());  // flag clear, eventfd maybe still readable
  auto t0 = Clock::now();
  {
    IoAlarms alarms(ioc, t0 + 200ms, &wake);
    EXPECT_EQ(wait_out(alarms), Step::kExpired);
  }
  EXPECT_GE(Clock::now() - t0, 200ms);
}

TEST(IoAlarms, ReportsTheCallersHandler) {
  boost::asio::io_context ioc;
  bool done = false;
  boost::asio::post(ioc, [&] { done = true; });
  IoAlarms alarms(ioc, Clock::now() + 5s, nullptr);
  EXPECT_EQ(alarms.step(500ms), Step::kRan);
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace pgwarden::util
