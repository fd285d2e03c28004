#include "pgbackrest_fixture.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace pgwarden::test {
namespace fs = std::filesystem;
namespace {

void make_dir(const std::string& path) {
  fs::create_directories(path);
  chmod(path.c_str(), 0750);
  if (running_as_root())
    if (passwd* pw = getpwnam("postgres")) {
      if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) { /* best effort */
      }
    }
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
  return s;
}

// YAML single-quoted scalar.
std::string yq(const std::string& s) { return "'" + replace_all(s, "'", "''") + "'"; }

const char* kArchivePush = R"SH(#!/bin/bash
# archive_command of the tests: pushes one WAL file (%p) into the repository named by
# PGBACKREST_CONFIG / PGBACKREST_STANZA. With backups disabled it reports success without
# pushing, as the chart's archive script does.
if [ "${PGBACKREST_BACKUP_ENABLED:-false}" != true ]; then exit 0; fi
unset PGBACKREST_BACKUP_ENABLED
exec pgbackrest archive-push "$@"
)SH";

const char* kArchiveGet = R"SH(#!/bin/bash
# restore_command of the tests: fetches WAL file $1 (%f) into $2 (%p) from the repository.
unset PGBACKREST_BACKUP_ENABLED
exec pgbackrest archive-get "$1" "$2"
)SH";

const char* kReplicaRestore = R"SH(#!/bin/bash
# create_replica method `pgbackrest` of the tests (no_params): restores the newest backup into
# $PGDATA, creating it when missing; --delta --force reuse whatever is already there.
: "${PGDATA:?PGDATA is not set}"
unset PGBACKREST_BACKUP_ENABLED
mkdir -p "$PGDATA" && chmod 0700 "$PGDATA" || exit 1
exec pgbackrest --force --delta --log-level-console=detail restore
)SH";

const char* kRestoreOnly = R"SH(#!/bin/bash
# Bootstrap method of the tests that only restores the newest backup into $PGDATA (pgwarden
# then writes the method's recovery_conf). Patroni's --scope/--datadir are dropped; any other
# argument goes to `pgbackrest restore`. BOOTSTRAP_PGBACKREST_CONFIG names the source repository.
: "${PGDATA:?PGDATA is not set}"
if [ -n "${BOOTSTRAP_PGBACKREST_CONFIG:-}" ]; then export PGBACKREST_CONFIG="$BOOTSTRAP_PGBACKREST_CONFIG"; fi
unset PGBACKREST_BACKUP_ENABLED
args=()
for a in "$@"; do
  case "$a" in --scope*|--datadir*) ;; *) args+=("$a") ;; esac
done
mkdir -p "$PGDATA" && chmod 0700 "$PGDATA" || exit 1
exec pgbackrest --log-level-console=detail restore "${args[@]}"
)SH";

// @PG_BIN@ is replaced with PostgreSQL's bin directory.
const char* kRestoreOrInitdb = R"SH(#!/bin/bash
# Bootstrap method of the tests, doing what the timescaledb-single chart's restore_or_initdb.sh
# does. BOOTSTRAP_FROM_BACKUP=1: restore the newest backup (of BOOTSTRAP_PGBACKREST_CONFIG's
# repository when set), recover it to the end of the archive with a temporary postmaster on
# PGBACKREST_PG1_PORT / PGBACKREST_PG1_SOCKET_PATH (archiving off), promote, stop. Otherwise:
# initdb with our arguments minus --scope/--datadir. Waits are bounded by
# RESTORE_WAIT_SECONDS (default 180).
set -u
say() { echo "restore_or_initdb: $*" >&2; }
PG_BIN='@PG_BIN@'
: "${PGDATA:?PGDATA is not set}"

if [ "${BOOTSTRAP_FROM_BACKUP:-0}" != 1 ]; then
  args=()
  for a in "$@"; do
    case "$a" in --scope*|--datadir*) ;; *) args+=("$a") ;; esac
  done
  say "no backup requested: initdb"
  exec "$PG_BIN/initdb" --auth-local=peer --auth-host=md5 --pgdata="$PGDATA" ${WALDIR:+--waldir="$WALDIR"} "${args[@]}"
fi

if [ -n "${BOOTSTRAP_PGBACKREST_CONFIG:-}" ]; then export PGBACKREST_CONFIG="$BOOTSTRAP_PGBACKREST_CONFIG"; fi
unset PGBACKREST_BACKUP_ENABLED
port="${PGBACKREST_PG1_PORT:?PGBACKREST_PG1_PORT is not set}"
sock="${PGBACKREST_PG1_SOCKET_PATH:?PGBACKREST_PG1_SOCKET_PATH is not set}"
user="${PGBACKREST_PG1_USER:-postgres}"
wait_s="${RESTORE_WAIT_SECONDS:-180}"

if ! pgbackrest info >&2; then say "pgbackrest info failed: no usable repository"; exit 1; fi
mkdir -p "$PGDATA" && chmod 0700 "$PGDATA" || exit 1
if ! pgbackrest --log-level-console=detail restore >&2; then say "pgbackrest restore failed"; exit 1; fi
touch "$PGDATA/recovery.signal"

pglog="$(dirname "$PGDATA")/restore_or_initdb.postgres.log"
# The restored configuration is the source cluster's: its port, sockets and file paths.
opts="-p $port -k $sock -c listen_addresses='' -c archive_command=/bin/false"
opts="$opts -c hba_file=$PGDATA/pg_hba.conf -c ident_file=$PGDATA/pg_ident.conf"
stop_pg() { "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t "$wait_s" stop >&2; }
q() { "$PG_BIN/psql" -X -A -t -q -h "$sock" -p "$port" -U "$user" -d postgres -c "$1" 2>/dev/null; }

if ! "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$pglog" -w -t "$wait_s" -o "$opts" start >&2; then
  say "PostgreSQL did not start; its log:"; tail -n 30 "$pglog" >&2; stop_pg; exit 1
fi
ready=0
for _ in $(seq "$wait_s"); do
  if "$PG_BIN/pg_isready" -q -h "$sock" -p "$port"; then ready=1; break; fi
  sleep 1
done
if [ $ready != 1 ]; then say "PostgreSQL did not become ready"; stop_pg; exit 1; fi

newest=$(pgbackrest info --output=json | grep -o '"max":[ ]*"[0-9A-F]\{24\}"' | head -n 1 | grep -o '[0-9A-F]\{24\}')
say "newest archived WAL: ${newest:-none}"
# Recovery ends by itself when the archive is exhausted; once the newest archived segment is
# in pg_wal, promote as the chart does.
promoted=0
done_recovery=0
for _ in $(seq $((wait_s * 2))); do
  if [ "$(q 'SELECT pg_is_in_recovery()')" = f ]; then done_recovery=1; break; fi
  if [ $promoted = 0 ] && [ -n "$newest" ] && [ -f "$PGDATA/pg_wal/$newest" ]; then
    say "newest archived WAL is restored: promoting"
    "$PG_BIN/pg_ctl" -D "$PGDATA" promote >&2 || say "(archive recovery ends by itself at the end of the archive)"
    promoted=1
  fi
  sleep 0.5
done
if [ $done_recovery != 1 ]; then say "recovery did not end within ${wait_s}s"; stop_pg; exit 1; fi
say "recovery finished on timeline $(q 'SELECT timeline_id FROM pg_control_checkpoint()')"
stop_pg || { say "PostgreSQL did not stop"; exit 1; }
say "restored"
exit 0
)SH";

}  // namespace

PgBackRestRepo::PgBackRestRepo(std::string stanza, std::string compress_type) : stanza_(std::move(stanza)) {
  write_files(compress_type);
}

void PgBackRestRepo::write_files(const std::string& compress_type) {
  for (const char* d : {"repo", "log", "lock", "spool", "scripts", "out"}) make_dir(dir_.file(d));
  std::string conf = "[global]\n"
                     "repo1-path=" + repo_path() + "\n"
                     "repo1-retention-full=9999\n"
                     "log-path=" + dir_.file("log") + "\n"
                     "lock-path=" + dir_.file("lock") + "\n"
                     "spool-path=" + dir_.file("spool") + "\n"
                     "archive-async=n\n"
                     "start-fast=y\n"
                     "compress-type=" + compress_type + "\n"
                     "log-level-file=detail\n"
                     "\n[" + stanza_ + "]\n";
  write_file(config_path(), conf, 0640);
  write_file(archive_push_script(), kArchivePush, 0755);
  write_file(archive_get_script(), kArchiveGet, 0755);
  write_file(replica_restore_script(), kReplicaRestore, 0755);
  write_file(restore_only_script(), kRestoreOnly, 0755);
  write_file(restore_or_initdb_script(), replace_all(kRestoreOrInitdb, "@PG_BIN@", pg_bin_dir()), 0755);
}

std::map<std::string, std::string> PgBackRestRepo::member_env() const {
  return {{"PGBACKREST_CONFIG", config_path()},
          {"PGBACKREST_STANZA", stanza_},
          {"PGBACKREST_PG1_PATH", "{data_dir}"},
          {"PGBACKREST_PG1_PORT", "{pg_port}"},
          {"PGBACKREST_PG1_SOCKET_PATH", "{dir}"},
          {"PGBACKREST_PG1_USER", "postgres"},
          {"PGBACKREST_BACKUP_ENABLED", "true"},
          {"PGDATA", "{data_dir}"}};
}

std::string PgBackRestRepo::postgresql_yaml(const PgBackRestUse& use) const {
  std::string y;
  if (use.replica_method)
    y += "  create_replica_methods:\n    - pgbackrest\n    - basebackup\n"
         "  pgbackrest:\n    command: " + yq(replica_restore_script()) +
         "\n    keep_data: true\n    no_params: true\n    no_master: true\n";
  if (use.restore_command)
    y += "  recovery_conf:\n    restore_command: " + yq(archive_get_script() + " %f \"%p\"") + "\n";
  return y;
}

std::string PgBackRestRepo::dcs_parameters_yaml() const {
  return "        archive_mode: 'on'\n        archive_command: " + yq(archive_push_script() + " %p") + "\n";
}

void PgBackRestRepo::configure(MemberOptions& opts, const PgBackRestUse& use) const {
  for (const auto& [k, v] : member_env()) opts.extra_env.try_emplace(k, v);
  if (use.bootstrap_from) opts.extra_env["BOOTSTRAP_PGBACKREST_CONFIG"] = use.bootstrap_from->config_path();
  opts.postgresql_yaml += postgresql_yaml(use);
  if (use.archive) opts.dcs_parameters_yaml += dcs_parameters_yaml();
}

PgBackRestResult PgBackRestRepo::run(const std::vector<std::string>& args, const PgwardenMember* member,
                                     std::chrono::seconds timeout) const {
  PgBackRestResult res;
  std::vector<std::string> argv{"pgbackrest"};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const auto& a : argv) res.output += (res.output.empty() ? "" : " ") + a;
  res.output += "\n";
  std::map<std::string, std::string> env{{"PGBACKREST_CONFIG", config_path()}, {"PGBACKREST_STANZA", stanza_}};
  if (member) {
    env["PGBACKREST_PG1_PATH"] = member->data_dir();
    env["PGBACKREST_PG1_PORT"] = std::to_string(member->pg_port());
    env["PGBACKREST_PG1_SOCKET_PATH"] = member->dir();
    env["PGBACKREST_PG1_USER"] = "postgres";
  }
  std::string log = dir_.file("out/run-" + std::to_string(++runs_) + ".log");
  try {
    Child c(argv, env_with(env), log, true);
    auto code = c.wait(timeout);
    if (!code) {
      c.signal(SIGKILL);
      c.wait(std::chrono::seconds(10));
      res.output += "(killed after " + std::to_string(timeout.count()) + " s)\n";
    } else {
      res.exit_code = *code;
    }
  } catch (const std::exception& e) {
    res.output += std::string("could not start: ") + e.what() + "\n";
  }
  res.output += read_file(log);
  return res;
}

PgBackRestResult PgBackRestRepo::stanza_create(const PgwardenMember& primary) const {
  return run({"--log-level-console=info", "stanza-create"}, &primary);
}

PgBackRestResult PgBackRestRepo::backup(const PgwardenMember& primary, const std::string& type) const {
  return run({"--log-level-console=info", "--type=" + type, "backup"}, &primary, std::chrono::seconds(1800));
}

PgBackRestResult PgBackRestRepo::check(const PgwardenMember& primary) const {
  return run({"--log-level-console=info", "check"}, &primary);
}

nlohmann::json PgBackRestRepo::info_json() const {
  auto r = run({"--log-level-console=off", "--log-level-stderr=off", "--output=json", "info"}, nullptr,
               std::chrono::seconds(60));
  if (!r.ok()) return nullptr;
  auto start = r.output.find("\n[");
  if (start == std::string::npos) return nullptr;
  return nlohmann::json::parse(r.output.substr(start + 1), nullptr, false);
}

std::string PgBackRestRepo::newest_archived_wal() const {
  auto j = info_json();
  if (!j.is_array() || j.empty() || !j[0].contains("archive") || !j[0]["archive"].is_array() ||
      j[0]["archive"].empty())
    return "";
  return j[0]["archive"][0].value("max", "");
}

size_t PgBackRestRepo::backup_count() const {
  auto j = info_json();
  if (!j.is_array() || j.empty() || !j[0].contains("backup") || !j[0]["backup"].is_array()) return 0;
  return j[0]["backup"].size();
}

std::optional<std::string> PgBackRestRepo::switch_wal_and_wait_archived(const PgwardenMember& primary,
                                                                        std::chrono::seconds timeout) {
  std::string seg = primary.sql("SELECT pg_walfile_name(pg_switch_wal())");
  if (seg.size() != 24) return std::nullopt;
  bool ok = wait_until(
      [&] {
        std::string last = primary.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        // Also "<segment>.<offset>.backup" after a backup; a "<tli>.history" does not count.
        return last.size() >= 24 && last.substr(8, 16) >= seg.substr(8);
      },
      timeout);
  if (!ok) return std::nullopt;
  return seg;
}

std::string wal_receiver_status(const PgwardenMember& m) {
  return m.sql("SELECT coalesce((SELECT status FROM pg_stat_wal_receiver LIMIT 1), '')");
}

}  // namespace pgwarden::test
