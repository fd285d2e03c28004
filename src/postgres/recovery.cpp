#include "pgwarden/postgres/recovery.hpp"

#include <filesystem>
#include <fstream>
#include <cstdio>
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
  out.ok = true;
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
    else if (line.rfind("Database system identifier:", 0) == 0) out.system_identifier = value_of(line);
  }
  return out;
}

nlohmann::json read_timeline_history(const std::string& data_dir, int timeline) {
  nlohmann::json out = nlohmann::json::array();
  if (timeline <= 1) return out;
  char name[32];
  std::snprintf(name, sizeof name, "%08X.history", static_cast<unsigned>(timeline));
  std::ifstream f(data_dir + "/pg_wal/" + name);
  std::string line;
  while (std::getline(f, line)) {
    // "<parent tli>\t<switch lsn>\t<reason>"; comments and blank lines skipped.
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string tli, lsn, reason;
    if (!std::getline(in, tli, '\t') || !std::getline(in, lsn, '\t')) continue;
    std::getline(in, reason);
    auto pos = parse_lsn(lsn);
    if (!pos) continue;
    out.push_back(nlohmann::json::array({std::atoi(tli.c_str()), *pos, reason}));
  }
  return out;
}

}  // namespace pgwarden::postgres
