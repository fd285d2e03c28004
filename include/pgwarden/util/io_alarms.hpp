#pragma once
// What ends a blocking wait on a private io_context besides the operation itself: a timer at
// the deadline and an async_wait on a WakeSignal's eventfd. With both armed, io_context::
// run_one() sleeps in epoll until something happens; run_one_for() would instead wake at least
// once a second (Asio caps each wait at one second), and polling a flag wakes more often
// still. An idle member spends nearly all its time in such waits (its DCS watches).
//
// Use: construct before the wait loop; in the loop, stop on expired() or wake->is_set(); when
// wake_fired() but the flag is clear (a wake already taken), wake->drain(), arm_wake(), and
// look at the flag again. The destructor cancels both and runs their handlers.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>

#include "pgwarden/util/wake_signal.hpp"

namespace pgwarden::util {

class IoAlarms {
 public:
  // `deadline` time_point::max(): no timer. `wake` null or without eventfd: no wake watch
  // (callers then poll the flag).
  IoAlarms(boost::asio::io_context& ioc, std::chrono::steady_clock::time_point deadline, const WakeSignal* wake)
      : ioc_(ioc), timer_(ioc) {
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

  bool expired() const { return expired_; }
  bool watching_wake() const { return wake_fd_.has_value(); }
  bool wake_fired() const { return wake_fired_; }
  void arm_wake() {
    wake_fired_ = false;
    wake_pending_ = true;
    wake_fd_->async_wait(boost::asio::posix::descriptor_base::wait_read, [this](const boost::system::error_code&) {
      wake_pending_ = false;
      wake_fired_ = true;
    });
  }

 private:
  boost::asio::io_context& ioc_;
  boost::asio::steady_timer timer_;
  std::optional<boost::asio::posix::stream_descriptor> wake_fd_;
  bool timer_pending_ = false, expired_ = false;
  bool wake_pending_ = false, wake_fired_ = false;
};

}  // namespace pgwarden::util
