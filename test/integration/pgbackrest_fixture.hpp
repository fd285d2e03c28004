#pragma once
// A pgBackRest repository for integration tests and benches (no GoogleTest dependency).
//
// PgBackRestRepo owns a temp dir holding
//   repo/             the posix repository (repo1-path)
//   log/ lock/ spool/ pgBackRest's own directories
//   pgbackrest.conf   [global] settings and an empty [<stanza>] section: the pg1-* options come
//                     per member from PGBACKREST_PG1_PATH/PORT/SOCKET_PATH/USER in the environment
//   scripts/          our equivalents of the timescaledb-single chart's scripts:
//     archive_push.sh %p            archive_command (exit 0 without pushing unless
//                                   PGBACKREST_BACKUP_ENABLED=true, as the chart's)
//     archive_get.sh %f "%p"        restore_command
//     replica_restore.sh            create_replica method `pgbackrest` (no_params: PGDATA from env)
//     restore_or_initdb.sh ARGS...  bootstrap method: with BOOTSTRAP_FROM_BACKUP=1 restore the
//                                   newest backup, recover to the end of the archive with a
//                                   temporary postmaster (port/socket from PGBACKREST_PG1_*),
//                                   promote, stop; else initdb with ARGS minus --scope/--datadir
//     restore_only.sh               bootstrap method that only runs `pgbackrest restore` (for a
//                                   method with its own recovery_conf, e.g. point in time)
// The bootstrap scripts read the repository named by BOOTSTRAP_PGBACKREST_CONFIG when set
// (else PGBACKREST_CONFIG), so a new cluster can restore from another cluster's repository and
// archive into its own. Everything is removed with the object (unless PGWARDEN_KEEP_TEST_DIRS).
//
// Typical use:
//   PgBackRestRepo repo;
//   MemberOptions o; o.scope = "bk"; o.name = "node1";
//   repo.configure(o);                       // env + replica methods + restore_command + archiving
//   PgwardenMember leader(etcd, o); leader.start(); ...wait for leader...
//   auto r = repo.stanza_create(leader);  if (!r.ok()) FAIL() << r.output;
//   r = repo.backup(leader);              // full
//   nlohmann::json info = repo.info_json();
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster_fixture.hpp"
#include "support/harness.hpp"

namespace pgwarden::test {

struct PgBackRestResult {
  int exit_code = -1;  // -1: did not finish in time (killed) or could not start
  std::string output;  // the command line, then stdout+stderr
  bool ok() const { return exit_code == 0; }
};

class PgBackRestRepo;

// What configure() puts into a MemberOptions.
struct PgBackRestUse {
  bool archive = true;         // dcs parameters archive_mode on + archive_command archive_push.sh
  bool replica_method = true;  // create_replica_methods [pgbackrest, basebackup] + pgbackrest section
  bool restore_command = true; // postgresql.recovery_conf.restore_command archive_get.sh
  // When set, BOOTSTRAP_PGBACKREST_CONFIG: the bootstrap scripts restore from that repository.
  const PgBackRestRepo* bootstrap_from = nullptr;
};

class PgBackRestRepo {
 public:
  explicit PgBackRestRepo(std::string stanza = "poddb", std::string compress_type = "lz4");
  PgBackRestRepo(const PgBackRestRepo&) = delete;
  PgBackRestRepo& operator=(const PgBackRestRepo&) = delete;

  const std::string& stanza() const { return stanza_; }
  std::string dir() const { return dir_.path(); }
  std::string repo_path() const { return dir_.file("repo"); }
  std::string config_path() const { return dir_.file("pgbackrest.conf"); }
  std::string script(const std::string& name) const { return dir_.file("scripts/" + name); }
  std::string archive_push_script() const { return script("archive_push.sh"); }
  std::string archive_get_script() const { return script("archive_get.sh"); }
  std::string replica_restore_script() const { return script("replica_restore.sh"); }
  std::string restore_or_initdb_script() const { return script("restore_or_initdb.sh"); }
  std::string restore_only_script() const { return script("restore_only.sh"); }

  // Environment a member runs with, values with the fixture's placeholders ({data_dir},
  // {pg_port}, {dir}): PGBACKREST_CONFIG, PGBACKREST_STANZA, PGBACKREST_PG1_PATH/PORT/
  // SOCKET_PATH/USER, PGBACKREST_BACKUP_ENABLED=true, PGDATA.
  std::map<std::string, std::string> member_env() const;
  // YAML for MemberOptions (see cluster_fixture.hpp for where each goes).
  std::string postgresql_yaml(const PgBackRestUse& use = {}) const;  // replica methods, recovery_conf
  std::string dcs_parameters_yaml() const;                            // archive_mode, archive_command
  // Adds member_env() (plus BOOTSTRAP_PGBACKREST_CONFIG) to extra_env, and appends the YAML to
  // postgresql_yaml / dcs_parameters_yaml. Existing extra_env entries are kept.
  void configure(MemberOptions& opts, const PgBackRestUse& use = {}) const;

  // Runs `pgbackrest ARGS` (as postgres when root) with the config and stanza in the environment,
  // and the pg1-* options of `member` when given; killed after `timeout`.
  PgBackRestResult run(const std::vector<std::string>& args, const PgwardenMember* member = nullptr,
                       std::chrono::seconds timeout = std::chrono::seconds(180)) const;
  PgBackRestResult stanza_create(const PgwardenMember& primary) const;
  // type: full, diff or incr; from the primary `member`.
  PgBackRestResult backup(const PgwardenMember& primary, const std::string& type = "full") const;
  PgBackRestResult check(const PgwardenMember& primary) const;
  // `pgbackrest info --output=json` parsed (an array with one entry per stanza); null on error.
  nlohmann::json info_json() const;
  // The newest archived WAL segment name ([0].archive[0].max), empty when none.
  std::string newest_archived_wal() const;
  // Number of backups in the repository for the stanza.
  size_t backup_count() const;

  // Switches WAL on `primary` and waits until that segment is archived (pg_stat_archiver);
  // returns the segment name or nullopt on timeout.
  static std::optional<std::string> switch_wal_and_wait_archived(
      const PgwardenMember& primary, std::chrono::seconds timeout = std::chrono::seconds(60));

 private:
  void write_files(const std::string& compress_type);

  std::string stanza_;
  TempDir dir_{"pgwarden-pgbackrest"};
  mutable int runs_ = 0;
};

// SQL helpers used with backups: the member's own WAL receiver status ("" when none).
std::string wal_receiver_status(const PgwardenMember& m);

}  // namespace pgwarden::test
