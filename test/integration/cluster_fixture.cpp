#include "cluster_fixture.hpp"

#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace pgwarden::test {

PgwardenMember::PgwardenMember(const EtcdServer& etcd, MemberOptions opts)
    : owned_dcs_(std::make_unique<EtcdTestDcs>(etcd)),
      dcs_(*owned_dcs_),
      opts_(std::move(opts)),
      dir_("pgwarden-member"),
      api_port_(free_port()),
      pg_port_(free_port()) {
  write_config();
}

PgwardenMember::PgwardenMember(TestDcs& dcs, MemberOptions opts)
    : dcs_(dcs), opts_(std::move(opts)), dir_("pgwarden-member"), api_port_(free_port()), pg_port_(free_port()) {
  dcs_.add_member(opts_.name, opts_.index);
  write_config();
}

PgwardenMember::~PgwardenMember() {
  if (child_ && child_->alive()) stop(SIGTERM, std::chrono::seconds(30));
  child_.reset();
  // Whatever happened, no PostgreSQL may outlive the test. (In a PID namespace the kernel
  // kills everything when its init goes, and postmaster.pid holds namespace pids.)
  if (opts_.as_pid1) return;
  if (auto pid = postmaster_pid()) {
    kill(*pid, SIGQUIT);
    wait_until([&] { return kill(*pid, 0) != 0; }, std::chrono::seconds(10));
    kill(*pid, SIGKILL);
  }
}

void PgwardenMember::write_config() {
  std::ostringstream y;
  y << "scope: " << opts_.scope << "\n"
    << "name: " << opts_.name << "\n"
    << "log:\n  level: INFO\n"
    << "restapi:\n  listen: 127.0.0.1:" << api_port_ << "\n  connect_address: 127.0.0.1:" << api_port_ << "\n"
    << dcs_.yaml(opts_.name, opts_.index)
    << "bootstrap:\n  dcs:\n    ttl: " << opts_.ttl << "\n    loop_wait: " << opts_.loop_wait
    << "\n    retry_timeout: " << opts_.retry_timeout
    << "\n    maximum_lag_on_failover: 1048576\n    postgresql:\n      use_pg_rewind: "
    << (opts_.use_pg_rewind ? "true" : "false") << "\n"
    << "      parameters:\n        wal_level: replica\n        max_connections: 50\n"
    << expand(opts_.dcs_parameters_yaml) << "  initdb:\n    - encoding: UTF8\n    - data-checksums\n";
  if (!opts_.post_init.empty()) y << "  post_init: " << opts_.post_init << "\n";
  y << expand(opts_.bootstrap_yaml);
  y << "postgresql:\n  listen: 127.0.0.1:" << pg_port_ << "\n  connect_address: 127.0.0.1:" << pg_port_ << "\n"
    << "  data_dir: " << data_dir() << "\n  bin_dir: " << pg_bin_dir() << "\n  pgpass: " << dir_.file("pgpass")
    << "\n  use_unix_socket: true\n"
    << "  authentication:\n    superuser:\n      username: postgres\n    replication:\n      username: standby\n"
    << "  parameters:\n    unix_socket_directories: " << dir_.path() << "\n"
    << expand(opts_.parameters_yaml)
    << "  pg_hba:\n    - local all all trust\n    - host all all 127.0.0.1/32 md5\n"
    << "    - host replication standby 127.0.0.1/32 md5\n";
  if (!opts_.callback.empty()) {
    y << "  callbacks:\n";
    for (const char* a : {"on_start", "on_stop", "on_restart", "on_reload", "on_role_change"})
      y << "    " << a << ": " << opts_.callback << "\n";
  }
  y << expand(opts_.postgresql_yaml);
  y << expand(opts_.extra_yaml);
  write_file(config_path(), y.str(), 0600);
}

void PgwardenMember::start() {
  std::map<std::string, std::string> extra = {{"PATRONI_SUPERUSER_PASSWORD", kSuperuserPassword},
                                              {"PATRONI_REPLICATION_PASSWORD", kReplicationPassword},
                                              {"PATRONI_TEST_MARKER", "must-not-leak"},
                                              {"KUBERNETES_TEST_MARKER", "must-not-reach-postgres"}};
  for (auto& [k, v] : dcs_.env(opts_.name)) extra[k] = v;
  for (auto& [k, v] : opts_.extra_env) extra[k] = expand(v);
  std::vector<std::string> argv{PGWARDEN_BINARY, config_path()};
  if (opts_.as_pid1) {
    // A user namespace mapping only our own uid: PostgreSQL still sees a non-root user.
    std::string uid = std::to_string(getuid()), gid = std::to_string(getgid());
    argv.insert(argv.begin(), {"unshare", "--user", "--pid", "--fork", "--mount-proc", "--map-user=" + uid,
                               "--map-group=" + gid});
  }
  child_ = std::make_unique<Child>(argv, env_with(extra), dir_.file("pgwarden.log"), true);
}

std::optional<int> PgwardenMember::stop(int sig, std::chrono::milliseconds timeout) {
  if (!child_) return std::nullopt;
  child_->signal(sig);
  return child_->wait(timeout);
}

void PgwardenMember::kill9() {
  if (child_) {
    child_->signal(SIGKILL);
    child_->wait(std::chrono::seconds(10));
  }
}

std::optional<int> PgwardenMember::postmaster_pid() const {
  std::ifstream f(data_dir() + "/postmaster.pid");
  int pid = 0;
  if (!(f >> pid) || pid <= 0) return std::nullopt;
  if (kill(pid, 0) != 0) return std::nullopt;
  return pid;
}

std::string PgwardenMember::expand(const std::string& s) const {
  const std::pair<std::string, std::string> subst[] = {
      {"{data_dir}", data_dir()}, {"{pg_port}", std::to_string(pg_port_)}, {"{dir}", dir_.path()}};
  std::string out;
  for (size_t i = 0; i < s.size();) {
    bool replaced = false;
    for (const auto& [from, to] : subst)
      if (s.compare(i, from.size(), from) == 0) {
        out += to;
        i += from.size();
        replaced = true;
        break;
      }
    if (!replaced) out += s[i++];
  }
  return out;
}

std::string PgwardenMember::conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(pg_port_) + " user=postgres dbname=postgres connect_timeout=3 password=" +
         kSuperuserPassword;
}

std::string PgwardenMember::sql(const std::string& query) const {
  PGconn* c = PQconnectdb(conninfo().c_str());
  std::string out;
  if (PQstatus(c) != CONNECTION_OK) {
    out = std::string("ERROR: ") + PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, query.c_str());
    auto st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) out = "OK";
    else out = std::string("ERROR: ") + PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

}  // namespace pgwarden::test
