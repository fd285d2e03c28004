#include "pgwarden/postgres/custom_bootstrap.hpp"
#include "internal.hpp"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pgwarden::postgres {
namespace fs = std::filesystem;
namespace {

// A restore of a large database can take days; the daemon waits as long as the script runs.
constexpr auto kScriptTimeout = std::chrono::hours(24 * 7);



bool is_ip_address(const std::string& host, bool* v6) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) return *v6 = false, true;
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) return *v6 = true, true;
  return false;
}

}  // namespace

Result<std::vector<std::string>> custom_bootstrap_argv(const config::Config& cfg, const config::CustomMethod& method) {
  auto argv = util::shell_split(method.command);
  if (!argv) return Status::Invalid("bootstrap." + method.name + ".command: " + argv.status().message());
  if (argv->empty()) return Status::Invalid("bootstrap." + method.name + ".command is empty");
  if (!method.no_params) {
    argv->push_back("--scope=" + cfg.scope);
    argv->push_back("--datadir=" + cfg.postgresql.data_dir);
  }
  return *argv;
}

Status run_custom_bootstrap(const config::Config& cfg, const util::Environment& env,
                            const config::CustomMethod& method) {
  auto argv = custom_bootstrap_argv(cfg, method);
  if (!argv) return argv.status();
  spdlog::info("Running custom bootstrap script: {}", method.command);
  auto r = util::run({*argv, env, std::nullopt}, kScriptTimeout);
  if (!r) return Status::Failed(method.command + " could not be started: " + r.status().message());
  std::istringstream out(r->output);
  for (std::string line; std::getline(out, line);)
    if (!line.empty()) spdlog::info("{}: {}", method.name, line);
  if (r->timed_out) return Status::Failed("custom bootstrap script " + method.name + " timed out");
  if (r->exit_code != 0)
    return Status::Failed("custom bootstrap script " + method.name + " exited with code " +
                          std::to_string(r->exit_code) + ": " + tail(r->output));
  return Status::Ok();
}

bool is_recovery_parameter(const std::string& name) {
  static const char* const kNames[] = {
      "archive_cleanup_command", "pause_at_recovery_target", "primary_conninfo", "primary_slot_name",
      "promote_trigger_file", "recovery_end_command", "recovery_min_apply_delay", "recovery_target",
      "recovery_target_action", "recovery_target_inclusive", "recovery_target_lsn", "recovery_target_name",
      "recovery_target_time", "recovery_target_timeline", "recovery_target_xid", "restore_command",
      "standby_mode", "trigger_file"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* n) { return name == n; });
}

std::string strip_recovery_settings(const std::string& auto_conf) {
  std::istringstream in(auto_conf);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    // "name = value" or "name value"; names are case-insensitive in PostgreSQL.
    auto start = line.find_first_not_of(" \t");
    std::string name;
    if (start != std::string::npos && line[start] != '#') {
      auto end = line.find_first_of(" \t=", start);
      name = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    }
    if (!name.empty() && is_recovery_parameter(name)) continue;
    out += line + "\n";
  }
  return out;
}

Result<RestoredStart> prepare_restored_data_dir(const config::Config& cfg, const config::CustomMethod& method) {
  const std::string& data_dir = cfg.postgresql.data_dir;
  RestoredStart out;
  const nlohmann::json* recovery_conf = nullptr;
  if (auto it = method.extra.find("recovery_conf"); it != method.extra.end() && !it->is_null()) {
    if (!it->is_object()) return Status::Invalid("bootstrap." + method.name + ".recovery_conf must be a mapping");
    recovery_conf = &*it;
  }
  std::error_code ec;
  // A trigger file would promote PostgreSQL the moment it starts, before its recovery ended.
  fs::remove(data_dir + "/promote", ec);

  const std::string standby = data_dir + "/standby.signal", recovery = data_dir + "/recovery.signal";
  const std::string auto_conf = data_dir + "/postgresql.auto.conf";
  if (recovery_conf || !method.keep_existing_recovery_conf) {
    for (const auto& f : {standby, recovery}) {
      fs::remove(f, ec);
      if (ec) return Status::Failed("cannot remove " + f + ": " + ec.message());
    }
    if (fs::exists(auto_conf, ec)) {
      std::ifstream f(auto_conf);
      std::stringstream text;
      text << f.rdbuf();
      std::string stripped = strip_recovery_settings(text.str());
      if (stripped != text.str())
        if (auto st = write_atomically(auto_conf, stripped, 0600); !st) return st;
    }
  }
  if (recovery_conf) {
    for (const auto& [k, v] : recovery_conf->items()) out.recovery_parameters[k] = v;
    if (auto st = write_atomically(recovery, "", 0600); !st) return st;
    out.recovery = true;
    // Patroni's default target action: pause, unless pause_at_recovery_target is false.
    std::string action = "pause";
    if (auto a = recovery_conf->find("recovery_target_action"); a != recovery_conf->end() && a->is_string())
      action = a->get<std::string>();
    out.hot_standby_off = action == "promote";
  } else if (method.keep_existing_recovery_conf) {
    if (fs::exists(standby, ec)) {
      // A bootstrapped cluster must end its recovery and become a primary.
      fs::rename(standby, recovery, ec);
      if (ec) return Status::Failed("cannot turn " + standby + " into recovery.signal: " + ec.message());
    }
    out.recovery = fs::exists(recovery, ec);
    // Trust what the restore tool configured (pgBackRest writes restore_command and targets).
    out.hot_standby_off = out.recovery;
  }
  return out;
}

std::vector<std::string> custom_bootstrap_hba(const config::Config& cfg, const std::string& local_host) {
  const std::string& su = cfg.postgresql.superuser.username.empty() ? std::string("all")
                                                                     : cfg.postgresql.superuser.username;
  const std::string& repl = cfg.postgresql.replication.username;
  std::vector<std::string> addresses{""};
  bool v6 = false;
  if (!local_host.empty() && local_host[0] != '/' && is_ip_address(local_host, &v6))
    addresses.push_back(local_host + (v6 ? "/128" : "/32"));
  std::vector<std::string> out;
  for (const auto& addr : addresses) {
    const std::string type = addr.empty() ? "local" : "host";
    const std::string where = addr.empty() ? "" : "\t" + addr;
    if (!repl.empty()) out.push_back(type + "\treplication\t" + repl + where + "\ttrust");
    out.push_back(type + "\tall\t" + su + where + "\ttrust");
  }
  return out;
}

}  // namespace pgwarden::postgres
