// Starting, stopping and finding the postmaster. pg_ctl does the work; pgwarden's own job is
// to never start a second postmaster on a directory one already owns, and to tell a stale
// postmaster.pid (crash, container restart, pid reuse) from a live one.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "pgwarden/postgres/postgres.hpp"
#include "internal.hpp"
#include "pgwarden/util/files.hpp"

namespace fs = std::filesystem;

namespace pgwarden::postgres {
namespace {


// The postmaster's view of a directory and ours may differ by symbolic links or a trailing
// slash; compare resolved paths (a path that no longer resolves is compared as written).
std::string canonical_or_self(const std::string& p) {
  std::string s = util::real_path(p).value_or(p);
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string seconds_arg(std::chrono::milliseconds timeout) {
  auto secs = static_cast<long>(std::ceil(static_cast<double>(timeout.count()) / 1000.0));
  return std::to_string(secs < 1 ? 1 : secs);
}

// Start time of a process in seconds since the epoch, from /proc (boot time + start ticks).
std::optional<double> process_start_time(int pid) {
  auto content = util::read_small_file("/proc/" + std::to_string(pid) + "/stat");
  auto proc_stat = util::read_small_file("/proc/stat");
  if (!content || !proc_stat) return std::nullopt;
  auto rparen = content->rfind(')');  // comm may contain spaces and parentheses
  if (rparen == std::string::npos) return std::nullopt;
  // Fields after comm start at #3 (state); starttime is #22.
  const char* p = content->c_str() + rparen + 1;
  for (int i = 3; i < 22; ++i) {
    while (*p == ' ') ++p;
    while (*p && *p != ' ') ++p;
  }
  char* end = nullptr;
  double start_ticks = std::strtod(p, &end);
  if (end == p) return std::nullopt;
  auto at = proc_stat->find("\nbtime ");
  if (at == std::string::npos) return std::nullopt;
  double btime = std::strtod(proc_stat->c_str() + at + 7, &end);
  long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return std::nullopt;
  return btime + start_ticks / static_cast<double>(ticks);
}

bool looks_like_postmaster_binary(int pid) {
  auto cmdline = util::read_small_file("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline) return false;
  std::string argv0 = cmdline->substr(0, cmdline->find('\0'));
  argv0 = argv0.substr(0, argv0.find(' '));  // a postmaster may rewrite its title into argv[0]
  if (argv0.empty()) return false;
  std::string name = argv0.substr(argv0.rfind('/') + 1);
  return name.rfind("postgres", 0) == 0 || name.rfind("postmaster", 0) == 0;
}

// Whether the process behind a pidfd has not exited (the pidfd turns readable when it does).
bool still_running(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

struct Postgres::KnownPostmaster {
  std::mutex mu;
  int pid = 0;
  int pidfd = -1;
  util::FileId pid_file;            // the postmaster.pid it was proved from
  std::optional<std::string> opts;  // its postmaster.opts, once read

  KnownPostmaster() = default;
  KnownPostmaster(const KnownPostmaster&) = delete;
  KnownPostmaster& operator=(const KnownPostmaster&) = delete;
  ~KnownPostmaster() { forget(); }

  // Caller holds mu.
  bool is(int candidate) const { return pid == candidate && pidfd >= 0 && still_running(pidfd); }
  void forget() {
    if (pidfd >= 0) ::close(pidfd);
    pidfd = -1;
    pid = 0;
    pid_file = {};
    opts.reset();
  }
};

std::shared_ptr<Postgres::KnownPostmaster> Postgres::make_known_postmaster() {
  return std::make_shared<KnownPostmaster>();
}

int Postgres::known_postmaster_pid() const {
  std::lock_guard lk(known_postmaster_->mu);
  return known_postmaster_->pid;
}

std::optional<std::string> Postgres::postmaster_opts_text() const {
  const std::string path = cfg_.postgresql.data_dir + "/postmaster.opts";
  std::lock_guard lk(known_postmaster_->mu);
  KnownPostmaster& known = *known_postmaster_;
  // The postmaster writes the file when it starts: while it lives, the file is as read.
  if (known.opts && known.is(known.pid)) return known.opts;
  auto text = util::read_small_file(path);
  if (text && known.is(known.pid)) known.opts = text;
  return text;
}

std::optional<int> Postgres::postmaster_pid() const {
  const std::string pid_path = cfg_.postgresql.data_dir + "/postmaster.pid";
  {
    // The usual answer, asked every HA cycle: the postmaster proved before still runs and
    // the postmaster.pid it was proved from is still the file in place (PostgreSQL removes it
    // when it stops; removing or replacing it makes another file). Its pid, directory and
    // start time lines never change while that postmaster lives: no need to read it again.
    std::lock_guard lk(known_postmaster_->mu);
    KnownPostmaster& known = *known_postmaster_;
    if (known.is(known.pid) && util::file_id(pid_path) == known.pid_file) return known.pid;
  }
  util::FileId pid_file;
  auto content = util::read_small_file(pid_path, 1 << 20, &pid_file);
  if (!content) return std::nullopt;
  auto line = [&](size_t n) {  // n-th line (0-based), "" when absent
    size_t begin = 0;
    for (size_t i = 0; i < n && begin != std::string::npos; ++i) {
      begin = content->find('\n', begin);
      if (begin != std::string::npos) ++begin;
    }
    if (begin == std::string::npos || begin >= content->size()) return std::string();
    return content->substr(begin, content->find('\n', begin) - begin);
  };
  std::string pid_line = line(0), dir_line = line(1), start_line = line(2);
  int pid = 0;
  try {
    pid = std::stoi(pid_line);
  } catch (...) {
    return std::nullopt;
  }
  // A negative pid marks a single-user backend; it owns the directory just as much.
  if (pid < 0) pid = -pid;
  if (pid <= 0) return std::nullopt;
  std::lock_guard lk(known_postmaster_->mu);
  KnownPostmaster& known = *known_postmaster_;
  if (known.is(pid)) return pid;
  known.forget();
  // Held before the proof, so the process proved is the one held (a pid reused meanwhile
  // belongs to another process, whose pidfd this is not).
  // (glibc 2.36's <sys/pidfd.h> lacks C linkage for C++; the system call is the same.)
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  auto proved = proved_postmaster(pid, dir_line, start_line);
  if (!proved || pidfd < 0 || !still_running(pidfd)) {
    if (pidfd >= 0) ::close(pidfd);
    return proved;
  }
  known.pid = pid;
  known.pidfd = pidfd;
  known.pid_file = pid_file;
  return proved;
}

std::optional<int> Postgres::proved_postmaster(int pid, const std::string& dir_line,
                                               const std::string& start_line) const {
  const std::string& dd = cfg_.postgresql.data_dir;
  // After a container restart the stale pid may be ours or our parent's.
  if (pid == getpid() || pid == getppid()) return std::nullopt;
  std::string proc = "/proc/" + std::to_string(pid);
  if (!util::path_exists(proc)) return std::nullopt;
  if (!looks_like_postmaster_binary(pid)) return std::nullopt;

  // Resolving a path costs a readlink per component; the usual answers need none.
  auto names_our_directory = [&](const std::string& p) {
    if (p == dd) return true;
    const std::string want = canonical_or_self(dd);
    return p == want || canonical_or_self(p) == want;
  };
  if (!dir_line.empty() && !names_our_directory(dir_line)) return std::nullopt;
  // A postgres whose working directory is our data directory is our postmaster: nothing else
  // chdirs there. Trusting that beats the start-time heuristic, which a clock step can fool.
  if (auto cwd = util::read_symlink(proc + "/cwd"))
    return names_our_directory(*cwd) ? std::optional<int>(pid) : std::nullopt;
  // cwd not readable (another OS user): a reused pid that happens to be another postgres
  // gives itself away by its start time, as in Patroni.
  try {
    double recorded = std::stod(start_line);
    auto actual = process_start_time(pid);
    if (recorded > 0 && actual && std::fabs(*actual - recorded) > 3) return std::nullopt;
  } catch (...) {
    // garbage start time: the other checks decide
  }
  return pid;
}

Result<util::CommandResult> Postgres::pg_ctl(std::vector<std::string> args, std::chrono::milliseconds timeout) const {
  std::string prog = program("pg_ctl");
  if (prog.empty()) return Status::NotFound("pg_ctl not found (bin_dir '" + cfg_.postgresql.bin_dir + "' or PATH)");
  std::vector<std::string> argv{prog};
  argv.push_back(args.front());
  argv.push_back("-D");
  argv.push_back(cfg_.postgresql.data_dir);
  argv.insert(argv.end(), args.begin() + 1, args.end());
  // pg_ctl enforces its own -t; the extra margin only guards against a hung pg_ctl.
  return util::run({argv, env_, std::nullopt}, timeout + std::chrono::seconds(15));
}

Status Postgres::start(std::chrono::milliseconds timeout) {
  if (auto pid = postmaster_pid())
    return Status::Conflict("a postmaster (pid " + std::to_string(*pid) + ") already runs on " +
                            cfg_.postgresql.data_dir);
  std::string pidfile = cfg_.postgresql.data_dir + "/postmaster.pid";
  std::error_code ec;
  // PostgreSQL would refuse to start if the stale pid now belongs to some other process.
  if (fs::exists(pidfile, ec)) fs::remove(pidfile, ec);

  std::string opts = postmaster_options_string(command_line_options(cfg_, current_parameters()));
  auto r = pg_ctl({"start", "-w", "-t", seconds_arg(timeout), "-l", log_file(), "-o", opts}, timeout);
  if (!r) return r.status();
  if (r->exit_code == 0) return Status::Ok();
  if (postmaster_pid())
    return Status::Unavailable("postmaster started but not ready within the timeout: " + tail(r->output));
  std::string log;
  {
    std::ifstream in(log_file());
    std::stringstream ss;
    ss << in.rdbuf();
    log = tail(ss.str(), 1500);
  }
  return Status::Failed("pg_ctl start exited with code " + std::to_string(r->exit_code) + ": " + tail(r->output) +
                        (log.empty() ? "" : "\n" + log_file() + ":\n" + log));
}

Status Postgres::stop(const std::string& mode, std::chrono::milliseconds timeout) {
  if (mode != "smart" && mode != "fast" && mode != "immediate") return Status::Invalid("bad stop mode: " + mode);
  if (!postmaster_pid()) return Status::Ok();
  auto r = pg_ctl({"stop", "-m", mode, "-w", "-t", seconds_arg(timeout)}, timeout);
  if (!r) return r.status();
  if (r->exit_code == 0 || !postmaster_pid()) return Status::Ok();
  return Status::Failed("pg_ctl stop -m " + mode + " exited with code " + std::to_string(r->exit_code) + ": " +
                        tail(r->output));
}

Status Postgres::reload() {
  if (!postmaster_pid()) return Status::Unavailable("PostgreSQL is not running");
  auto r = pg_ctl({"reload"}, std::chrono::seconds(30));
  if (!r) return r.status();
  if (r->exit_code != 0)
    return Status::Failed("pg_ctl reload exited with code " + std::to_string(r->exit_code) + ": " + tail(r->output));
  return Status::Ok();
}

Status Postgres::promote(std::chrono::milliseconds timeout) {
  if (!postmaster_pid()) return Status::Unavailable("PostgreSQL is not running");
  auto r = pg_ctl({"promote", "-w", "-t", seconds_arg(timeout)}, timeout);
  if (!r) return r.status();
  if (r->exit_code != 0)
    return Status::Failed("pg_ctl promote exited with code " + std::to_string(r->exit_code) + ": " +
                          tail(r->output));
  return Status::Ok();
}

}  // namespace pgwarden::postgres
