// pgwarden: `pgwarden [--version] [--validate-config] [CONFIG.yml]`, the same command line as
// `patroni`, so the timescaledb-single chart can exec it unchanged (also as PID 1).
// `pgwarden ctl ...` is patronictl; `pgwarden backup-server ...` is the chart's pgBackRest
// backup API sidecar (pgbackrest-rest.py's options).
#include <CLI/CLI.hpp>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "pgwarden/api/fresh_state.hpp"
#include "pgwarden/api/router.hpp"
#include "pgwarden/api/server.hpp"
#include "pgwarden/backup/service.hpp"
#include "pgwarden/config/config.hpp"
#include "pgwarden/ctl/ctl.hpp"
#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/ha/loop.hpp"
#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/log.hpp"
#include "pgwarden/version.hpp"

namespace {

using namespace pgwarden;

constexpr int kExitInvalidConfig = 2;
constexpr auto kBackupStopGrace = std::chrono::seconds(10);

config::LoadResult load_config(const std::string& path, const util::Environment& env) {
  if (!path.empty()) return config::load_from_file(path, env);
  auto it = env.find("PATRONI_CONFIGURATION");
  return config::load_from_string(it != env.end() ? it->second : "{}", env, "PATRONI_CONFIGURATION");
}

// One line per problem on stderr; returns false when the config is unusable.
bool report(const config::LoadResult& r) {
  for (const auto& w : r.warnings) spdlog::warn("{}", w);
  for (const auto& e : r.errors) std::cerr << e << "\n";
  return r.config.has_value();
}

// As PID 1 of a container we must reap every orphan (postmaster children re-parented to
// us, scripts' leftovers). Like Patroni, the init role stays in a tiny parent that forwards
// signals to the real daemon running as its child.
int run_as_init_if_pid1() {
  if (getpid() != 1) return -1;
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) return -1;  // the daemon continues in the child
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    int sig = 0;
    siginfo_t info{};
    timespec ts{1, 0};
    sig = sigtimedwait(&all, &info, &ts);
    if (sig > 0 && sig != SIGCHLD) kill(child, sig);
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
}

int run_daemon(const std::string& config_path) {
  util::Environment env = util::current_environment();
  auto loaded = load_config(config_path, env);
  if (!report(loaded)) return kExitInvalidConfig;
  config::Config cfg = *loaded.config;
  log::set_level(cfg.log_level);
  // Patroni removes its variables from the process environment after reading them:
  // PostgreSQL and callbacks must never see PATRONI_* (they carry passwords).
  for (const auto& [k, v] : env)
    if (k.rfind("PATRONI_", 0) == 0) unsetenv(k.c_str());
  util::Environment daemon_env = util::without_prefixes(env, {"PATRONI_"});
  util::Environment pg_env = util::without_prefixes(env, {"PATRONI_", "KUBERNETES_"});

  // Signals are taken by one thread with sigwait; every other thread has them
  // blocked, including the DCS watch threads started just below.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto dcs = dcs::make_dcs(cfg);
  if (!dcs) {
    std::cerr << "dcs: " << dcs.status().message() << "\n";
    return kExitInvalidConfig;
  }

  ha::NodeBoard board;
  auto api_pg = std::make_shared<postgres::Postgres>(cfg, pg_env);
  api::ServerDeps deps;
  deps.board = &board;
  // One reading of PostgreSQL serves every REST request of the next 50 ms: probes and load
  // balancers may ask thousands of times a second, each reading is a round trip.
  auto fresh_pg = std::make_shared<api::FreshState>(
      [api_pg]() -> std::optional<postgres::PgState> {
        auto st = api_pg->query_state();
        if (!st) return std::nullopt;
        return *st;
      },
      std::chrono::milliseconds(50));
  deps.query_postgres = [fresh_pg]() { return fresh_pg->get(); };
  // The REST API reads the DCS through peek_cluster(), which leaves the HA loop's own
  // bookkeeping alone (etcd: the watch position; Kubernetes: the versions the leader race is
  // conditioned on), and writes through the same object; the loop is woken after a write.
  dcs::Dcs* loop_dcs = dcs->get();
  deps.read_cluster = [loop_dcs]() { return loop_dcs->peek_cluster(); };
  deps.write_config = [loop_dcs](const std::string& json, std::optional<int64_t> index) {
    Status st = loop_dcs->set_config_value(json, index);
    if (st.ok()) loop_dcs->wake();
    return st;
  };
  deps.write_failover = [loop_dcs](const std::string& json, std::optional<int64_t> index) {
    return loop_dcs->set_failover_value(json, index);
  };
  deps.wake_ha = [loop_dcs]() { loop_dcs->wake(); };
  // Operator requests (POST /restart, /reinitialize) go to the HA loop through a mailbox;
  // POST /reload is a SIGHUP, handled by the signal thread below.
  ha::RequestMailbox requests;
  deps.requests = &requests;
  deps.reload_config = [] { kill(getpid(), SIGHUP); };
  api::Server server(cfg.restapi, deps);
  if (auto st = server.start(); !st) {
    std::cerr << "restapi: " << st.message() << "\n";
    return 1;
  }

  // The chart's backup API (backup_api section): served beside the REST API; a failing
  // pgbackrest or a port that cannot be bound never affects the HA loop.
  std::unique_ptr<backup::BackupService> backups;
  std::unique_ptr<api::Server> backup_server;
  std::thread backup_history;
  if (cfg.backup_api.enabled) {
    backup::ServiceOptions bo;
    bo.stanza = backup::resolve_stanza(cfg.backup_api.stanza, daemon_env);
    bo.command = cfg.backup_api.command;
    bo.env = daemon_env;
    bo.probe_role = [&board] { return backup::role_from_view(board.read()); };
    backups = std::make_unique<backup::BackupService>(bo);
    backup_server = std::make_unique<api::Server>(
        cfg.backup_api.listen, [svc = backups.get()](const api::HttpRequest& req) { return svc->handle(req); },
        "backup API");
    if (auto st = backup_server->start(); !st) {
      spdlog::error("backup_api: {}; the backup API is not served", st.message());
      backup_server.reset();
    } else {
      spdlog::info("backup API: stanza {}, command {}", bo.stanza, bo.command);
      backup_history = std::thread([svc = backups.get()] { svc->refresh_history(); });
    }
  }

  ha::HaLoop loop(cfg, pg_env, daemon_env, std::move(*dcs), board, &requests);
  std::thread signals([&] {
    for (;;) {
      int sig = 0;
      if (sigwait(&sigs, &sig) != 0) continue;
      if (sig == SIGUSR1) return;  // the main thread is done
      if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("received {}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        loop.request_stop();
        // A running pgbackrest gets SIGTERM now, while PostgreSQL stops.
        if (backups) backups->shutdown(kBackupStopGrace);
      } else if (sig == SIGHUP) {
        auto r = load_config(config_path, env);
        if (report(r)) {
          if (auto st = server.reload_tls(r.config->restapi); !st)
            spdlog::error("SIGHUP: REST API TLS settings not reloaded: {}", st.message());
          loop.request_reload(*r.config);
        }
        else spdlog::error("SIGHUP: configuration has errors; keeping the running one");
      }
    }
  });
  int code = loop.run();
  server.stop();
  if (backup_server) backup_server->stop();
  if (backups) backups->shutdown(kBackupStopGrace);
  if (backup_history.joinable()) backup_history.join();
  pthread_kill(signals.native_handle(), SIGUSR1);
  signals.join();
  spdlog::info("pgwarden exits with status {}", code);
  return code;
}

// "HOST:PORT", "[v6]:PORT" or ":PORT"; nullopt when the port is not 1-65535.
std::optional<config::HostPort> parse_listen(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  int p = std::stoi(port);
  if (p < 1 || p > 65535) return std::nullopt;
  return config::HostPort{host, p};
}

// `pgwarden backup-server`: the backup API as a sidecar container beside a pgwarden (or
// Patroni) member, asking the member's REST API for its role. Runs until SIGTERM/SIGINT.
int run_backup_server(int argc, char** argv) {
  CLI::App app{"pgwarden backup-server: the pgBackRest backup API (POST/GET /backups)"};
  util::Environment env = util::current_environment();
  int port = 8081;
  std::string listen, stanza, api_url = "http://127.0.0.1:8008", loglevel = "info", command = "pgbackrest";
  app.add_option("-p,--port", port, "port to listen on (all addresses)")->check(CLI::Range(1, 65535));
  app.add_option("--listen", listen, "HOST:PORT to listen on (wins over --port)");
  app.add_option("-s,--stanza", stanza, "pgBackRest stanza (default: $PGBACKREST_STANZA, else poddb)");
  app.add_option("--api-url", api_url, "REST API of the local member, asked for its role");
  app.add_option("--loglevel", loglevel, "debug, info, warning or error")
      ->check(CLI::IsMember({"debug", "info", "warning", "error", "DEBUG", "INFO", "WARNING", "ERROR"}));
  app.add_option("--command", command, "the pgbackrest program to run");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  pgwarden::log::init();
  std::string level = loglevel;
  for (auto& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  log::set_level(level);
  config::HostPort addr{"0.0.0.0", port};
  if (!listen.empty()) {
    auto parsed = parse_listen(listen);
    if (!parsed) {
      std::cerr << "--listen: expected HOST:PORT with a port between 1 and 65535, got " << listen << "\n";
      return kExitInvalidConfig;
    }
    addr = *parsed;
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  backup::ServiceOptions bo;
  bo.stanza = backup::resolve_stanza(stanza, env);
  bo.command = command;
  bo.env = env;
  bo.probe_role = [api_url] { return backup::probe_role_over_http(api_url, std::chrono::seconds(5)); };
  backup::BackupService svc(bo);
  api::Server server(addr, [&svc](const api::HttpRequest& req) { return svc.handle(req); }, "backup API");
  if (auto st = server.start(); !st) {
    std::cerr << "backup-server: " << st.message() << "\n";
    return 1;
  }
  spdlog::info("backup API: stanza {}, command {}, role from {}", bo.stanza, bo.command, api_url);
  svc.refresh_history();
  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  spdlog::info("received {}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.stop();
  svc.shutdown(kBackupStopGrace);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives every thread its own malloc arena; with a handful of mostly idle threads
  // that is most of our resident memory. Two arenas are plenty for this workload.
  mallopt(M_ARENA_MAX, 2);
  // `pgwarden ctl ...`: patronictl's commands (src/ctl).
  if (argc >= 2 && std::string(argv[1]) == "ctl")
    return pgwarden::ctl::run(std::vector<std::string>(argv + 2, argv + argc), pgwarden::util::current_environment());
  if (argc >= 2 && std::string(argv[1]) == "backup-server") return run_backup_server(argc - 1, argv + 1);
  CLI::App app{"pgwarden: high availability for PostgreSQL, compatible with Patroni"};
  app.footer("Other commands:\n  pgwarden ctl ...            patronictl's commands (pgwarden ctl --help)\n"
             "  pgwarden backup-server ...  the pgBackRest backup API as a sidecar (pgwarden backup-server --help)");
  bool version = false, validate = false;
  std::string config_path;
  app.add_flag("--version", version, "print the version and exit");
  app.add_flag("--validate-config", validate, "check the configuration and exit (0 valid, 2 invalid)");
  app.add_option("configfile", config_path, "Patroni-format YAML configuration");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (version) {
    std::cout << "pgwarden " << kVersion << " (patroni " << kPatroniCompatVersion << " compatible)\n";
    return 0;
  }
  pgwarden::log::init();
  if (validate) {
    auto r = load_config(config_path, pgwarden::util::current_environment());
    if (!report(r)) return kExitInvalidConfig;
    std::cout << "configuration is valid\n";
    return 0;
  }
  int init_code = run_as_init_if_pid1();
  if (init_code >= 0) return init_code;
  return run_daemon(config_path);
}
