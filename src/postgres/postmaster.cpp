// Starting, stopping and finding the postmaster. pg_ctl does the work; pgwarden's own job is
// to never start a second postmaster on a directory one already owns, and to tell a stale
// postmaster.pid (crash, container restart, pid reuse) from a live one.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "pgwarden/postgres/postgres.hpp"
#include "internal.hpp"

namespace fs = std::filesystem;

namespace pgwarden::postgres {
namespace {


std::string canonical_or_self(const std::string& p) {
  std::error_code ec;
  auto c = fs::weakly_canonical(p, ec);
  std::string s = ec ? p : c.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string seconds_arg(std::chrono::milliseconds timeout) {
  auto secs = static_cast<long>(std::ceil(static_cast<double>(timeout.count()) / 1000.0));
  return std::to_string(secs < 1 ? 1 : secs);
}

// Start time of a process in seconds since the epoch, from /proc (boot time + start ticks).
std::optional<double> process_start_time(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) return std::nullopt;
  auto rparen = content.rfind(')');  // comm may contain spaces and parentheses
  if (rparen == std::string::npos) return std::nullopt;
  std::istringstream rest(content.substr(rparen + 2));
  std::string field;
  // Fields after comm start at #3 (state); starttime is #22.
  for (int i = 3; i <= 22; ++i)
    if (!(rest >> field)) return std::nullopt;
  std::ifstream s("/proc/stat");
  std::string line;
  double btime = -1;
  while (std::getline(s, line))
    if (line.rfind("btime ", 0) == 0) btime = std::stod(line.substr(6));
  long ticks = sysconf(_SC_CLK_TCK);
  if (btime < 0 || ticks <= 0) return std::nullopt;
  return btime + std::stod(field) / static_cast<double>(ticks);
}

bool looks_like_postmaster_binary(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string argv0;
  if (!std::getline(in, argv0, '\0') || argv0.empty()) return false;
  std::string name = fs::path(argv0.substr(0, argv0.find(' '))).filename().string();
  return name.rfind("postgres", 0) == 0 || name.rfind("postmaster", 0) == 0;
}

}  // namespace

std::optional<int> Postgres::postmaster_pid() const {
  const std::string& dd = cfg_.postgresql.data_dir;
  std::ifstream in(dd + "/postmaster.pid");
  std::string pid_line, dir_line, start_line;
  if (!std::getline(in, pid_line)) return std::nullopt;
  std::getline(in, dir_line);
  std::getline(in, start_line);
  int pid = 0;
  try {
    pid = std::stoi(pid_line);
  } catch (...) {
    return std::nullopt;
  }
  // A negative pid marks a single-user backend; it owns the directory just as much.
  if (pid < 0) pid = -pid;
  if (pid <= 0) return std::nullopt;
  // After a container restart the stale pid may be ours or our parent's.
  if (pid == getpid() || pid == getppid()) return std::nullopt;
  if (!fs::exists("/proc/" + std::to_string(pid))) return std::nullopt;
  if (!looks_like_postmaster_binary(pid)) return std::nullopt;

  std::string want = canonical_or_self(dd);
  if (!dir_line.empty() && canonical_or_self(dir_line) != want) return std::nullopt;
  std::error_code ec;
  auto cwd = fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd", ec);
  // A postgres whose working directory is our data directory is our postmaster: nothing else
  // chdirs there. Trusting that beats the start-time heuristic, which a clock step can fool.
  if (!ec) return canonical_or_self(cwd.string()) == want ? std::optional<int>(pid) : std::nullopt;
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
