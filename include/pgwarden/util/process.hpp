#pragma once
// Running external programs (initdb, pg_ctl, callbacks, scripts). Boost.Process underneath;
// this header hides it so the rest of pgwarden deals only in argv + environment.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/util/status.hpp"

namespace pgwarden::util {

using Environment = std::map<std::string, std::string>;

struct Command {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH when it has no '/'
  Environment env;                // the complete environment of the child
  std::optional<std::string> cwd;
};

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or on timeout
  std::string output;  // stdout and stderr, interleaved, trimmed to the last 64 KiB
  bool timed_out = false;
};

// Runs the command to completion (or until timeout, then kills its process group).
// Fails (Status) only when the program cannot be started at all.
Result<CommandResult> run(const Command& cmd, std::chrono::milliseconds timeout);

// The environment of this process.
Environment current_environment();

// `env` minus every variable whose name starts with one of `prefixes`.
Environment without_prefixes(const Environment& env, const std::vector<std::string>& prefixes);

// Splits a command line as a POSIX shell (and Python's shlex.split) would: quotes and
// backslashes honoured, no expansion. Invalid on an unterminated quote.
Result<std::vector<std::string>> shell_split(const std::string& line);

// Finds `name` in the directories of PATH (from `env`), or in `bin_dir` if not empty.
std::string find_program(const std::string& name, const std::string& bin_dir, const Environment& env);

// A program running in the background, in its own process group. Destroying it does not
// kill the program; call terminate() for that.
class BackgroundProcess {
 public:
  static Result<std::unique_ptr<BackgroundProcess>> start(const Command& cmd);
  ~BackgroundProcess();
  int pid() const;
  // Non-blocking: the exit code once the program has ended (-1 for a signal).
  std::optional<int> poll();
  // Captured output so far (stdout+stderr), drained without blocking.
  std::string take_output();
  // SIGTERM to the whole process group, then SIGKILL after `grace`; waits for it.
  void terminate(std::chrono::milliseconds grace);

 private:
  struct Impl;
  explicit BackgroundProcess(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwarden::util
