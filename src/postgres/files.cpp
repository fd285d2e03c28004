// The data directory and the files pgwarden writes into it: initdb, postgresql.conf,
// pg_hba.conf, pg_ident.conf, pgpass.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "pgwarden/postgres/postgres.hpp"
#include "internal.hpp"
#include "pgwarden/util/files.hpp"

namespace fs = std::filesystem;

namespace pgwarden::postgres {
namespace {

constexpr auto kInitdbTimeout = std::chrono::minutes(10);

std::string timestamp_suffix() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d-%H-%M-%S", &tm);
  return buf;
}

}  // namespace

Status write_atomically(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".pgwarden.tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::Failed("cannot write " + tmp + ": " + std::strerror(errno));
  // open() honours the umask; the mode matters (pgpass is ignored by libpq unless 0600).
  (void)::fchmod(fd, mode);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::Failed("cannot write " + tmp + ": " + err);
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Status::Failed("cannot rename " + tmp + " to " + path + ": " + err);
  }
  return Status::Ok();
}

Postgres::Postgres(config::Config cfg, util::Environment env)
    : cfg_(std::move(cfg)),
      env_(std::move(env)),
      state_conn_(make_state_connection()),
      known_postmaster_(make_known_postmaster()) {}

std::string Postgres::program(const std::string& name) const {
  return util::find_program(name, cfg_.postgresql.bin_dir, env_);
}

std::string Postgres::pgpass_path() const {
  if (!cfg_.postgresql.pgpass.empty()) return cfg_.postgresql.pgpass;
  auto home = env_.find("HOME");
  return (home != env_.end() ? home->second : std::string("/tmp")) + "/.pgpass.patroni";
}

nlohmann::json Postgres::current_parameters() const {
  if (parameters_) return *parameters_;
  // Before the first write_configuration (e.g. a restarted daemon): dynamic then local.
  nlohmann::json p = cfg_.dynamic.postgresql_parameters.is_object() ? cfg_.dynamic.postgresql_parameters
                                                                     : nlohmann::json::object();
  if (cfg_.postgresql.parameters.is_object())
    for (auto it = cfg_.postgresql.parameters.begin(); it != cfg_.postgresql.parameters.end(); ++it)
      if (!is_command_line_option(it.key())) p[it.key()] = it.value();
  return p;
}

std::vector<std::string> Postgres::command_line_changes(const nlohmann::json& parameters) const {
  auto text = postmaster_opts_text();
  if (!text) return {};
  auto running = parse_postmaster_opts(*text);
  if (running.empty()) return {};
  return changed_command_line_options(running, command_line_options(cfg_, parameters));
}

// These three run every HA cycle: plain POSIX calls (util/files.hpp), not std::filesystem.
bool Postgres::data_directory_exists() const { return util::is_directory(cfg_.postgresql.data_dir); }

bool Postgres::data_directory_empty() const {
  if (!util::is_directory(cfg_.postgresql.data_dir)) return true;
  return util::directory_is_empty(cfg_.postgresql.data_dir);
}

bool Postgres::is_initialized() const { return util::is_regular_file(cfg_.postgresql.data_dir + "/PG_VERSION"); }

Result<std::string> Postgres::move_data_directory_aside() {
  const std::string& dd = cfg_.postgresql.data_dir;
  if (dd.empty()) return Status::Invalid("postgresql.data_dir is not set");
  std::error_code ec;
  if (!fs::exists(dd, ec)) return Status::NotFound("data directory " + dd + " does not exist");
  std::string base = dd;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::string target = base + ".failed_" + timestamp_suffix();
  // Two failures within one second must not overwrite (or fail on) the first copy.
  for (int i = 1; fs::exists(target, ec); ++i) target = base + ".failed_" + timestamp_suffix() + "." + std::to_string(i);
  if (::rename(base.c_str(), target.c_str()) != 0)
    return Status::Failed("cannot rename " + base + " to " + target + ": " + std::strerror(errno));
  return target;
}

std::string Postgres::system_identifier() const {
  std::string prog = program("pg_controldata");
  if (prog.empty() || !is_initialized()) return "";
  util::Environment env = env_;
  env["LC_ALL"] = "C";  // the label we look for is only English in the C locale
  env["LANG"] = "C";
  auto r = util::run({{prog, "-D", cfg_.postgresql.data_dir}, env, std::nullopt}, std::chrono::seconds(30));
  if (!r || r->exit_code != 0) return "";
  std::istringstream in(r->output);
  std::string line;
  const std::string label = "Database system identifier:";
  while (std::getline(in, line)) {
    if (line.rfind(label, 0) != 0) continue;
    std::string v = line.substr(label.size());
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r") + 1);
    return v;
  }
  return "";
}

Status Postgres::initdb() {
  std::string prog = program("initdb");
  if (prog.empty()) return Status::NotFound("initdb not found (bin_dir '" + cfg_.postgresql.bin_dir + "' or PATH)");
  if (cfg_.postgresql.data_dir.empty()) return Status::Invalid("postgresql.data_dir is not set");
  auto argv = initdb_argv(cfg_, prog);
  if (!argv) return argv.status();
  auto r = util::run({*argv, env_, std::nullopt}, kInitdbTimeout);
  if (!r) return r.status();
  if (r->timed_out) return Status::Failed("initdb timed out: " + tail(r->output));
  if (r->exit_code != 0)
    return Status::Failed("initdb exited with code " + std::to_string(r->exit_code) + ": " + tail(r->output));
  return Status::Ok();
}

Status Postgres::write_configuration(const nlohmann::json& parameters, const std::vector<std::string>& pg_hba) {
  const auto& pg = cfg_.postgresql;
  if (pg.data_dir.empty()) return Status::Invalid("postgresql.data_dir is not set");
  std::string dir = pg.config_dir.empty() ? pg.data_dir : pg.config_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string conf = dir + "/postgresql.conf";
  std::string base = dir + "/postgresql.base.conf";

  std::string include = pg.custom_conf;
  if (include.empty()) {
    include = "postgresql.base.conf";
    if (!fs::exists(base, ec)) {
      // First time: initdb's file (plus anything a bootstrap script appended to it) becomes
      // the base that our postgresql.conf includes.
      if (fs::exists(conf, ec)) {
        if (::rename(conf.c_str(), base.c_str()) != 0)
          return Status::Failed("cannot rename " + conf + " to " + base + ": " + std::strerror(errno));
      } else if (auto s = write_atomically(base, "", 0600); !s) {
        return s;  // no initdb file (config_dir elsewhere): keep the include valid
      }
    }
  }
  if (auto s = write_atomically(conf, render_postgresql_conf(parameters, include, dir, command_line_options(cfg_, parameters)), 0600); !s) return s;
  if (!pg_hba.empty())
    if (auto s = write_atomically(dir + "/pg_hba.conf", render_lines_file(pg_hba), 0600); !s) return s;
  if (!pg.pg_ident.empty())
    if (auto s = write_atomically(dir + "/pg_ident.conf", render_lines_file(pg.pg_ident), 0600); !s) return s;
  parameters_ = parameters.is_object() ? parameters : nlohmann::json::object();
  return Status::Ok();
}

Status Postgres::write_pgpass() {
  std::string path = pgpass_path();
  // The content holds passwords: never put it (or the path's contents) into a message.
  return write_atomically(path, render_pgpass(cfg_.postgresql), 0600);
}

}  // namespace pgwarden::postgres
