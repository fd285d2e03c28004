// Patroni's CallbackExecutor semantics: callbacks never block the HA loop, and a newer event
// makes an older, still running callback pointless, so it is killed (with its children,
// hence the process group). on_reload is independent of role changes and has its own slot.
#include "pgwarden/util/callbacks.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace pgwarden::util {

struct CallbackExecutor::Slot {
  std::string action;
  std::unique_ptr<BackgroundProcess> proc;
  std::string partial;  // output not yet ended by a newline
};

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(100);

// Logs every complete line in `chunk` (with what was left over from before); keeps the rest.
void log_lines(const std::string& action, std::string& partial, const std::string& chunk, bool flush) {
  partial += chunk;
  size_t start = 0;
  for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
    spdlog::info("callback {}: {}", action, partial.substr(start, nl - start));
  partial.erase(0, start);
  if (flush && !partial.empty()) {
    spdlog::info("callback {}: {}", action, partial);
    partial.clear();
  }
}

// Slot is private to CallbackExecutor; templates let these helpers take it without naming it.

// Ends the program in `slot` now: a superseded callback has nothing useful left to do.
template <class SlotT>
void kill_slot(SlotT& slot) {
  if (!slot.proc) return;
  if (!slot.proc->poll()) {
    spdlog::warn("callback {} (pid {}) still running; terminating it", slot.action, slot.proc->pid());
    slot.proc->terminate(std::chrono::milliseconds(0));
  }
  log_lines(slot.action, slot.partial, slot.proc->take_output(), true);
  slot.proc.reset();
}

// Logs output and, once the program has ended, its exit status; true when it has ended.
template <class SlotT>
bool check_slot(SlotT& slot) {
  if (!slot.proc) return false;
  auto code = slot.proc->poll();
  log_lines(slot.action, slot.partial, slot.proc->take_output(), code.has_value());
  if (!code) return false;
  if (*code == 0)
    spdlog::info("callback {} (pid {}) finished", slot.action, slot.proc->pid());
  else
    spdlog::warn("callback {} (pid {}) exited with code {}", slot.action, slot.proc->pid(), *code);
  slot.proc.reset();
  return true;
}

}  // namespace

CallbackExecutor::CallbackExecutor(std::map<std::string, std::string> commands, Environment env, std::string scope)
    : commands_(std::move(commands)),
      env_(callback_environment(env)),
      scope_(std::move(scope)),
      main_(std::make_unique<Slot>()),
      reload_(std::make_unique<Slot>()) {
  watcher_ = std::thread([this] { watch_loop(); });
}

CallbackExecutor::~CallbackExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  // Running callbacks are left alone (an on_stop fired at shutdown must be allowed to
  // finish); stop_all() is the way to end them.
}

Environment CallbackExecutor::callback_environment(const Environment& env) {
  return without_prefixes(env, {"PATRONI_"});
}

void CallbackExecutor::set_commands(std::map<std::string, std::string> commands) {
  std::lock_guard<std::mutex> lock(mu_);
  commands_ = std::move(commands);
}

void CallbackExecutor::fire(const std::string& action, const std::string& role) {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    auto it = commands_.find(action);
    if (it == commands_.end() || it->second.empty()) return;
    auto argv = shell_split(it->second);
    if (!argv) {
      spdlog::error("callback {}: {}", action, argv.status().message());
      return;
    }
    if (argv->empty()) {
      spdlog::error("callback {}: empty command", action);
      return;
    }
    argv->insert(argv->end(), {action, role, scope_});

    Slot& slot = action == "on_reload" ? *reload_ : *main_;
    kill_slot(slot);
    Command cmd{*argv, env_, std::nullopt};
    auto proc = BackgroundProcess::start(cmd);
    if (!proc) {
      spdlog::error("callback {}: cannot start {}: {}", action, (*argv)[0], proc.status().message());
      return;
    }
    slot.action = action;
    slot.partial.clear();
    slot.proc = std::move(*proc);
    spdlog::info("callback {} started (pid {}): {} {} {}", action, slot.proc->pid(), action, role, scope_);
    cv_.notify_all();
  } catch (const std::exception& e) {
    spdlog::error("callback {}: {}", action, e.what());
  }
}

void CallbackExecutor::stop_all() {
  std::lock_guard<std::mutex> lock(mu_);
  kill_slot(*main_);
  kill_slot(*reload_);
}

// Polls only while a callback runs; idle, it sleeps until fire() or the destructor wakes it.
void CallbackExecutor::watch_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (stopping_) return;
    check_slot(*main_);
    check_slot(*reload_);
    if (main_->proc || reload_->proc) cv_.wait_for(lock, kPollInterval);
    else cv_.wait(lock);
  }
}

}  // namespace pgwarden::util
