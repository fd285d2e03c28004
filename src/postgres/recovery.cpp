#include "pgwarden/postgres/recovery.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::postgres {
namespace fs = std::filesystem;

Status write_standby_signal(const std::string& data_dir) {
  std::ofstream f(data_dir + "/standby.signal", std::ios::trunc);
  if (!f) return Status::Failed("cannot create " + data_dir + "/standby.signal");
  return Status::Ok();
}

Status remove_recovery_signals(const std::string& data_dir) {
  std::error_code ec;
  for (const char* name : {"standby.signal", "recovery.signal"}) {
    fs::remove(data_dir + "/" + name, ec);
    if (ec) return Status::Failed("cannot remove " + data_dir + "/" + name + ": " + ec.message());
  }
  return Status::Ok();
}

bool has_standby_signal(const std::string& data_dir) { return fs::exists(data_dir + "/standby.signal"); }

ControlData read_control_data(const config::Config& cfg, const util::Environment& env) {
  ControlData out;
  std::string prog = util::find_program("pg_controldata", cfg.postgresql.bin_dir, env);
  if (prog.empty()) return out;
  util::Environment e = env;
  e["LANG"] = "C";
  e["LC_ALL"] = "C";
  auto r = util::run({{prog, cfg.postgresql.data_dir}, e, std::nullopt}, std::chrono::seconds(10));
  if (!r || r->exit_code != 0) return out;
  std::istringstream in(r->output);
  std::string line;
  auto value_of = [](const std::string& l) {
    auto colon = l.find(':');
    std::string v = colon == std::string::npos ? "" : l.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    return v;
  };
  while (std::getline(in, line)) {
    if (line.rfind("Latest checkpoint location:", 0) == 0) out.checkpoint_location = parse_lsn(value_of(line));
    else if (line.rfind("Database cluster state:", 0) == 0) out.cluster_state = value_of(line);
    else if (line.rfind("Latest checkpoint's TimeLineID:", 0) == 0) out.timeline = std::atoi(value_of(line).c_str());
  }
  return out;
}

}  // namespace pgwarden::postgres
