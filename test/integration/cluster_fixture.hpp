#pragma once
// A pgwarden member for integration tests: writes its Patroni-format YAML into a temp dir,
// starts the real pgwarden binary (as the postgres user when root) and talks to it.
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "support/harness.hpp"
#include "test_dcs.hpp"

namespace pgwarden::test {

struct MemberOptions {
  std::string scope = "itest";
  std::string name = "node1";
  int loop_wait = 2;
  int ttl = 20;
  int retry_timeout = 5;
  std::string post_init;                         // script path, empty for none
  std::string callback;                          // script path for every callback, empty for none
  std::string extra_yaml;                        // appended at top level
  std::map<std::string, std::string> extra_env;  // e.g. PATRONI_* overrides
  // Run pgwarden as PID 1 of a new PID namespace (unshare), as a container runtime would.
  bool as_pid1 = false;
  bool use_pg_rewind = true;  // bootstrap.dcs.postgresql.use_pg_rewind
  int index = 1;              // 1-based position in the cluster (pod IP on Kubernetes)
};

class PgwardenMember {
 public:
  PgwardenMember(const EtcdServer& etcd, MemberOptions opts);
  PgwardenMember(TestDcs& dcs, MemberOptions opts);
  ~PgwardenMember();

  void start();
  // SIGTERM and wait; returns the exit code (nullopt on timeout).
  std::optional<int> stop(int sig = 15, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void kill9();

  const MemberOptions& options() const { return opts_; }
  std::string config_path() const { return dir_.file("pgwarden.yml"); }
  std::string data_dir() const { return dir_.file("data"); }
  std::string dir() const { return dir_.path(); }
  int api_port() const { return api_port_; }
  int pg_port() const { return pg_port_; }
  std::string log() const { return child_ ? child_->log() : read_file(dir_.file("pgwarden.log")); }
  bool alive() { return child_ && child_->alive(); }
  // PID of the started process (unshare's when as_pid1).
  int child_pid() const { return child_ ? child_->pid() : -1; }

  HttpReply get(const std::string& path) const { return http_request("GET", "127.0.0.1", api_port_, path); }
  std::optional<int> postmaster_pid() const;
  // Runs SQL as the superuser over TCP with the password; returns the first value or the error.
  std::string sql(const std::string& query) const;
  std::string conninfo() const;

 private:
  void write_config();

  std::unique_ptr<TestDcs> owned_dcs_;  // when constructed from an EtcdServer
  TestDcs& dcs_;
  MemberOptions opts_;
  TempDir dir_;
  int api_port_;
  int pg_port_;
  std::unique_ptr<Child> child_;
};

inline const char* kSuperuserPassword = "itest-su-secret";
inline const char* kReplicationPassword = "itest-repl-secret";

}  // namespace pgwarden::test
