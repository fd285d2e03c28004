#include "pgwarden/util/wake_signal.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <thread>

namespace pgwarden::util {

WakeSignal::WakeSignal() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

WakeSignal::~WakeSignal() {
  if (fd_ >= 0) ::close(fd_);
}

void WakeSignal::set() {
  flag_.store(true);
  if (fd_ < 0) return;
  uint64_t one = 1;
  // Only fails when the counter would overflow, i.e. it is readable already.
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
}

bool WakeSignal::take() {
  bool was = flag_.exchange(false);
  // Nothing set, nothing to drain (the usual case, twice an idle cycle: no system call). A
  // count left behind by a set() that raced an earlier take() is harmless: every wait that
  // finds the eventfd readable with the flag clear drains it and waits on.
  if (was) drain();
  return was;
}

void WakeSignal::drain() const {
  if (fd_ < 0) return;
  uint64_t count = 0;
  while (::read(fd_, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

bool WakeSignal::wait_for(std::chrono::milliseconds timeout) const {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (is_set()) return true;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    if (fd_ < 0) {
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(100)));
      continue;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (r > 0 && !is_set()) drain();  // a wake already taken: clear it, then look again
  }
}

}  // namespace pgwarden::util
