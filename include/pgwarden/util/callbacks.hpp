#pragma once
// Patroni-compatible callbacks: `<command> <action> <role> <scope>`, run asynchronously,
// one at a time: a new callback ends the one still running (on_reload has its own slot).
// Output and exit status are logged.
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "pgwarden/util/process.hpp"

namespace pgwarden::util {

class CallbackExecutor {
 public:
  // `commands`: action -> command line (postgresql.callbacks). `env`: the daemon's
  // environment; every PATRONI_* variable is removed before a callback sees it.
  CallbackExecutor(std::map<std::string, std::string> commands, Environment env, std::string scope);
  ~CallbackExecutor();

  // Starts the callback for `action` if one is configured; returns at once.
  void fire(const std::string& action, const std::string& role);
  // Ends whatever still runs (shutdown).
  void stop_all();
  void set_commands(std::map<std::string, std::string> commands);

  // The environment a callback gets (for tests).
  static Environment callback_environment(const Environment& env);

 private:
  struct Slot;
  void watch_loop();
  std::map<std::string, std::string> commands_;
  Environment env_;
  std::string scope_;
  std::mutex mu_;
  std::condition_variable cv_;  // wakes the watcher when a callback starts or on stop
  std::unique_ptr<Slot> main_, reload_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace pgwarden::util
