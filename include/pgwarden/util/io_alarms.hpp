#pragma once
// What ends a blocking wait on a private io_context besides the operation itself: a timer at
// the deadline and an async_wait on a WakeSignal's eventfd. With both armed, io_context::
// run_one() sleeps in epoll until something happens; run_one_for() would instead wake at least
// once a second (Asio caps each wait at one second), and polling a flag wakes more often
// still. An idle member spends nearly all its time in such waits (its DCS watches).
//
// Use: construct before the wait loop and call step() until the operation is done or step()
// says the deadline passed or the signal is set. The destructor cancels both alarms and runs
// their handlers.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

#include "pgwarden/util/wake_signal.hpp"

namespace pgwarden::util {

class IoAlarms {
 public:
  // `deadline` time_point::max(): no timer. `wake` null or without eventfd: no wake watch
  // (callers then poll the flag).
  IoAlarms(boost::asio::io_context& ioc, std::chrono::steady_clock::time_point deadline, const WakeSignal* wake)
      : ioc_(ioc), timer_(ioc), deadline_(deadline), wake_(wake) {
    if (deadline != std::chrono::steady_clock::time_point::max()) {
      timer_.expires_at(deadline);
      timer_pending_ = true;
      timer_.async_wait([this](const boost::system::error_code& ec) {
        timer_pending_ = false;
        if (!ec) expired_ = true;
      });
    }
    if (wake && wake->fd() >= 0) {
      wake_fd_.emplace(ioc, wake->fd());
      arm_wake();
    }
  }
  ~IoAlarms() {
    boost::system::error_code ignored;
    timer_.cancel();
    if (wake_fd_) wake_fd_->cancel(ignored);
    // The handlers refer to us: let them run before we go.
    ioc_.restart();
    while ((timer_pending_ || wake_pending_) && ioc_.run_one() > 0) {
    }
    if (wake_fd_) wake_fd_->release();  // the descriptor belongs to the WakeSignal
  }
  IoAlarms(const IoAlarms&) = delete;
  IoAlarms& operator=(const IoAlarms&) = delete;

  enum class Step {
    kExpired,    // the deadline passed
    kSignalled,  // the WakeSignal is set
    kRan,        // one handler ran (the caller's operation, maybe): look at it
  };
  // One step of the wait. Without an eventfd to sleep on, the signal's flag is looked at every
  // `poll`. An eventfd left readable by a wake someone already took is drained and re-armed.
  Step step(std::chrono::milliseconds poll) {
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (expired_ || now >= deadline_) return Step::kExpired;
      if (wake_ && wake_->is_set()) return Step::kSignalled;
      if (wake_fired_) {
        wake_->drain();
        arm_wake();
        continue;  // look at the flag again before sleeping
      }
      if (wake_ && !wake_fd_) ioc_.run_one_for(std::min(poll, std::chrono::ceil<std::chrono::milliseconds>(deadline_ - now)));
      else ioc_.run_one();  // the deadline timer or the eventfd ends the sleep
      if (ioc_.stopped()) ioc_.restart();
      return Step::kRan;
    }
  }

 private:
  void arm_wake() {
    wake_fired_ = false;
    wake_pending_ = true;
    wake_fd_->async_wait(boost::asio::posix::descriptor_base::wait_read, [this](const boost::system::error_code&) {
      wake_pending_ = false;
      wake_fired_ = true;
    });
  }

  boost::asio::io_context& ioc_;
  boost::asio::steady_timer timer_;
  const std::chrono::steady_clock::time_point deadline_;
  const WakeSignal* const wake_;
  std::optional<boost::asio::posix::stream_descriptor> wake_fd_;
  bool timer_pending_ = false, expired_ = false;
  bool wake_pending_ = false, wake_fired_ = false;
};

}  // namespace pgwarden::util
