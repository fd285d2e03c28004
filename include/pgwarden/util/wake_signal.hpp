#pragma once
// A flag that other threads set to end a blocking wait at once (shutdown, reload, a REST
// request for the HA loop). Next to the flag sits an eventfd that is readable while a set()
// is pending, so an event loop can sleep on it instead of waking every few hundred
// milliseconds to look at the flag: an idle member's wake-ups are most of its CPU.
//
// set() stores the flag before it writes the eventfd; a waiter therefore checks is_set()
// before each sleep and, when the descriptor is readable but the flag is clear (a wake that
// was already taken), calls drain() and checks again.
#include <atomic>
#include <chrono>

namespace pgwarden::util {

class WakeSignal {
 public:
  WakeSignal();
  ~WakeSignal();
  WakeSignal(const WakeSignal&) = delete;
  WakeSignal& operator=(const WakeSignal&) = delete;

  void set();
  bool is_set() const { return flag_.load(); }
  // Clears the flag; true when it was set.
  bool take();
  // Empties the eventfd without touching the flag.
  void drain() const;
  // Readable while a set() is pending; -1 if no eventfd could be made (then waiters poll).
  int fd() const { return fd_; }
  // Sleeps until set() or the timeout passes; true when set (the flag stays set).
  bool wait_for(std::chrono::milliseconds timeout) const;

 private:
  std::atomic<bool> flag_{false};
  int fd_ = -1;
};

}  // namespace pgwarden::util
