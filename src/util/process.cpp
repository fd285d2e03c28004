// POSIX fork/exec rather than Boost.Process: we need, together, a process group per child
// (so a callback's own children die with it), a bounded wait, and output capture without an
// io_context; Boost.Process 1.74 (Debian 12) offers these only separately.
#include "pgwarden/util/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

extern char** environ;

namespace pgwarden::util {
namespace {

constexpr size_t kMaxOutput = 64 * 1024;

void append_capped(std::string& out, const char* data, size_t n) {
  out.append(data, n);
  if (out.size() > kMaxOutput) out.erase(0, out.size() - kMaxOutput);
}

struct Spawned {
  pid_t pid = -1;
  int out_fd = -1;
};

Result<Spawned> spawn(const Command& cmd) {
  if (cmd.argv.empty()) return Status::Invalid("empty command");
  std::string path = cmd.argv[0];
  if (path.find('/') == std::string::npos) {
    path = find_program(path, "", cmd.env);
    if (path.empty()) return Status::NotFound("program not found on PATH: " + cmd.argv[0]);
  }
  if (access(path.c_str(), X_OK) != 0) return Status::NotFound("cannot execute " + path + ": " + std::strerror(errno));

  std::vector<std::string> envs;
  for (const auto& [k, v] : cmd.env) envs.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = cmd.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::Failed(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return Status::Failed(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE, SIGQUIT}) signal(s, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    if (cmd.cwd && chdir(cmd.cwd->c_str()) != 0) _exit(126);
    // Children (pg_ctl, hence the postmaster; callbacks) must not inherit our sockets:
    // a postmaster outliving us would keep the REST API port bound.
    close_range(3, ~0U, 0);
    execve(path.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, to avoid the race with kill()
  close(fds[1]);
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  return Spawned{pid, fds[0]};
}

// Reads whatever is available; returns false at EOF.
bool drain(int fd, std::string& out) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      append_capped(out, buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EINTR;
  }
}

int exit_code_of(int wstatus) { return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1; }

void kill_group(pid_t pid, int sig) {
  if (kill(-pid, sig) != 0) kill(pid, sig);
}

}  // namespace

Result<CommandResult> run(const Command& cmd, std::chrono::milliseconds timeout) {
  auto sp = spawn(cmd);
  if (!sp) return sp.status();
  CommandResult res;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool open = true;
  int wstatus = 0;
  bool exited = false;
  while (!exited) {
    if (open) {
      pollfd p{sp->out_fd, POLLIN, 0};
      poll(&p, 1, 50);
      open = drain(sp->out_fd, res.output);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_t r = waitpid(sp->pid, &wstatus, WNOHANG);
    if (r == sp->pid || (r < 0 && errno == ECHILD)) {
      exited = true;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      res.timed_out = true;
      kill_group(sp->pid, SIGKILL);
      waitpid(sp->pid, &wstatus, 0);
      exited = true;
      break;
    }
  }
  if (open) drain(sp->out_fd, res.output);
  close(sp->out_fd);
  res.exit_code = res.timed_out ? -1 : exit_code_of(wstatus);
  return res;
}

Environment current_environment() {
  Environment env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

Environment without_prefixes(const Environment& env, const std::vector<std::string>& prefixes) {
  Environment out;
  for (const auto& [k, v] : env) {
    bool drop = false;
    for (const auto& p : prefixes) drop = drop || k.rfind(p, 0) == 0;
    if (!drop) out[k] = v;
  }
  return out;
}

// POSIX shell word splitting (as Python's shlex.split, which Patroni uses): quotes group,
// backslash escapes outside single quotes, no expansion. Boost's split_unix drops a quote
// of the other kind inside a quoted word ("it's"), so this is written out.
Result<std::vector<std::string>> shell_split(const std::string& line) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0;
      else word += c;
      continue;
    }
    if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < line.size() && std::string("\\\"$`\n").find(line[i + 1]) != std::string::npos) {
        word += line[++i];
      } else {
        word += c;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) out.push_back(word);
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '\\') {
      if (i + 1 < line.size()) word += line[++i];
    } else {
      word += c;
    }
  }
  if (quote) return Status::Invalid("unterminated quote in command: " + line);
  if (in_word) out.push_back(word);
  return out;
}

std::string find_program(const std::string& name, const std::string& bin_dir, const Environment& env) {
  if (!bin_dir.empty()) {
    std::string p = bin_dir + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  if (auto it = env.find("PATH"); it != env.end()) path = it->second;
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string p = dir + "/" + name;
    struct stat st {};
    if (stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

struct BackgroundProcess::Impl {
  pid_t pid = -1;
  int out_fd = -1;
  bool open = true;
  std::optional<int> exit_code;
  std::string output;
};

BackgroundProcess::BackgroundProcess(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BackgroundProcess::~BackgroundProcess() {
  if (impl_ && impl_->out_fd >= 0) close(impl_->out_fd);
}

Result<std::unique_ptr<BackgroundProcess>> BackgroundProcess::start(const Command& cmd) {
  auto sp = spawn(cmd);
  if (!sp) return sp.status();
  auto impl = std::make_unique<Impl>();
  impl->pid = sp->pid;
  impl->out_fd = sp->out_fd;
  return std::unique_ptr<BackgroundProcess>(new BackgroundProcess(std::move(impl)));
}

int BackgroundProcess::pid() const { return impl_->pid; }

std::optional<int> BackgroundProcess::poll() {
  if (impl_->exit_code) return impl_->exit_code;
  if (impl_->open) impl_->open = drain(impl_->out_fd, impl_->output);
  int wstatus = 0;
  pid_t r = waitpid(impl_->pid, &wstatus, WNOHANG);
  if (r == impl_->pid) {
    if (impl_->open) impl_->open = drain(impl_->out_fd, impl_->output);
    impl_->exit_code = exit_code_of(wstatus);
  } else if (r < 0 && errno == ECHILD) {
    impl_->exit_code = -1;  // reaped elsewhere (PID 1 reaper)
  }
  return impl_->exit_code;
}

std::string BackgroundProcess::take_output() {
  if (impl_->open) impl_->open = drain(impl_->out_fd, impl_->output);
  std::string out;
  out.swap(impl_->output);
  return out;
}

void BackgroundProcess::terminate(std::chrono::milliseconds grace) {
  if (poll()) return;
  kill_group(impl_->pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (!poll() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!poll()) {
    kill_group(impl_->pid, SIGKILL);
    int wstatus = 0;
    waitpid(impl_->pid, &wstatus, 0);
    impl_->exit_code = -1;
  }
  kill_group(impl_->pid, SIGKILL);  // stragglers left in the group
}

}  // namespace pgwarden::util
