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
  // YAML lines spliced into the sections the fixture writes itself (so no key appears twice).
  // Each line carries its own indentation and ends with "\n":
  //  - postgresql_yaml: inside `postgresql:` after everything else, 2 spaces
  //    ("  create_replica_methods: [pgbackrest, basebackup]\n"); not `parameters`/`pg_hba`,
  //    which the fixture writes (use parameters_yaml);
  //  - parameters_yaml: under postgresql.parameters (local), 4 spaces;
  //  - bootstrap_yaml: inside `bootstrap:` after the default `initdb:` list and post_init,
  //    2 spaces ("  method: restore_or_initdb\n  restore_or_initdb:\n    command: ...\n");
  //  - dcs_parameters_yaml: under bootstrap.dcs.postgresql.parameters (after wal_level and
  //    max_connections), 8 spaces ("        archive_mode: 'on'\n").
  // Placeholders {data_dir}, {pg_port} and {dir} (the member's temp dir, which is also its unix
  // socket directory) are replaced in these four, in extra_yaml and in extra_env values
  // (see PgwardenMember::expand).
  std::string postgresql_yaml;
  std::string parameters_yaml;
  std::string bootstrap_yaml;
  std::string dcs_parameters_yaml;
  // Run pgwarden as PID 1 of a new PID namespace (unshare), as a container runtime would.
  bool as_pid1 = false;
  bool use_pg_rewind = true;  // bootstrap.dcs.postgresql.use_pg_rewind
  int index = 1;              // 1-based position in the cluster (pod IP on Kubernetes)
};

// The options of a cluster's i-th member: node<i> at index i, with the given timings.
inline MemberOptions nth_member(int i, int ttl = 20, int loop_wait = 2, int retry_timeout = 5) {
  MemberOptions o;
  o.index = i;
  o.name = "node" + std::to_string(i);
  o.ttl = ttl;
  o.loop_wait = loop_wait;
  o.retry_timeout = retry_timeout;
  return o;
}

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
  // `s` with {data_dir}, {pg_port} and {dir} replaced by this member's values.
  std::string expand(const std::string& s) const;

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
