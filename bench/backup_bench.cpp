// Backup benchmark: how long adding a replica takes by `pgbackrest restore` (the chart's first
// create_replica method) and by pg_basebackup from the leader, on a database of about 1 GB.
// Figures, not assertions. See bench/README.md.
//
//   backup_bench [--size-mb N] [--runs N] [--compress lz4|none]
//
// One run: etcd + one pgwarden member with archiving into a pgBackRest repository (posix, in a
// temp dir, as test/integration/pgbackrest_fixture.* sets it up); a table of incompressible rows
// (gen_random_bytes) of about N MB; a full backup (timed); then a second member created with
// [pgbackrest, basebackup] (its replica is restored from the backup) and, after it is gone, a
// third with [basebackup] only. Each is timed from starting its pgwarden until its own
// pg_stat_wal_receiver streams from the leader.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "cluster_fixture.hpp"
#include "pgbackrest_fixture.hpp"

namespace {

using namespace pgwarden::test;
using namespace bench;
using namespace std::chrono_literals;

const std::vector<Figure> kFigures = {
    {"db_size_mb", "-", "-", true},
    {"load_s", "-", "-"},
    {"full_backup_s", "-", "-"},
    {"replica_pgbackrest_to_streaming_s", "-", "-"},
    {"replica_basebackup_to_streaming_s", "-", "-"},
};

std::string tail(const std::string& s, size_t n = 3000) { return s.size() <= n ? s : s.substr(s.size() - n); }

bool streams_from(const PgwardenMember& m, const PgwardenMember& leader) {
  return m.sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") ==
         "streaming:" + std::to_string(leader.pg_port());
}

MemberOptions options(const std::string& name, int index) {
  MemberOptions o;
  o.scope = "bkbench";
  o.name = name;
  o.index = index;
  // Loading 1 GB: fewer checkpoints.
  o.parameters_yaml = "    max_wal_size: 4GB\n    checkpoint_timeout: 30min\n";
  return o;
}

void run_once(int size_mb, const std::string& compress, Results& res) {
  EtcdServer etcd;
  PgBackRestRepo repo("poddb", compress);
  auto o1 = options("node1", 1);
  repo.configure(o1);
  PgwardenMember n1(etcd, o1);
  n1.start();
  if (!poll([&] { return n1.get("/leader").status == 200; }, 120s, 100ms))
    throw Failed("no leader:\n" + tail(n1.log()));
  auto r = repo.stanza_create(n1);
  if (!r.ok()) throw Failed("stanza-create: " + r.output);

  long rows = static_cast<long>(size_mb) * 896;  // 7 rows of ~1 KB per 8 KB page
  log("loading " + std::to_string(rows) + " rows (~" + std::to_string(size_mb) + " MB)");
  auto t0 = Clock::now();
  std::string st = n1.sql("CREATE EXTENSION IF NOT EXISTS pgcrypto");
  if (st != "OK") throw Failed("pgcrypto: " + st);
  st = n1.sql("CREATE TABLE bench_data AS SELECT g AS id, gen_random_bytes(1000) AS pad FROM generate_series(1, " +
              std::to_string(rows) + ") g");
  if (st != "OK") throw Failed("load: " + st);
  n1.sql("CHECKPOINT");
  res["load_s"].push_back(secs(Clock::now() - t0));
  res["db_size_mb"].push_back(std::atof(n1.sql("SELECT pg_database_size('postgres') / 1048576.0").c_str()));
  if (!PgBackRestRepo::switch_wal_and_wait_archived(n1, 900s)) throw Failed("WAL not archived:\n" + tail(n1.log()));

  log("full backup");
  t0 = Clock::now();
  r = repo.backup(n1, "full");
  if (!r.ok()) throw Failed("backup: " + tail(r.output));
  res["full_backup_s"].push_back(secs(Clock::now() - t0));
  n1.sql("INSERT INTO bench_data VALUES (0, gen_random_bytes(1000))");

  auto clone = [&](const std::string& name, int index, bool pgbackrest_method, const std::string& figure) {
    auto o = options(name, index);
    repo.configure(o, {.archive = true, .replica_method = pgbackrest_method});
    log("new replica " + name + (pgbackrest_method ? " (pgbackrest, basebackup)" : " (basebackup)"));
    auto start = Clock::now();
    PgwardenMember m(etcd, o);
    m.start();
    auto at = poll([&] { return streams_from(m, n1); }, 3600s, 100ms);
    if (!at) throw Failed(name + " does not stream:\n" + tail(m.log()));
    std::string expect = std::string("replica has been created using ") + (pgbackrest_method ? "pgbackrest" : "basebackup");
    if (m.log().find(expect) == std::string::npos) throw Failed(name + ": no \"" + expect + "\":\n" + tail(m.log()));
    res[figure].push_back(secs(*at - start));
    log(figure + " = " + fmt(secs(*at - start)));
  };
  clone("node2", 2, true, "replica_pgbackrest_to_streaming_s");
  clone("node3", 3, false, "replica_basebackup_to_streaming_s");
}

}  // namespace

int main(int argc, char** argv) {
  bench::g_name = "backup_bench";
  int runs = 1;
  int size_mb = 1024;
  std::string compress = "lz4";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--size-mb" && i + 1 < argc) size_mb = std::max(1, std::atoi(argv[++i]));
    else if (a == "--compress" && i + 1 < argc) compress = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--size-mb N] [--runs N] [--compress lz4|none]\n", argv[0]);
      return 2;
    }
  }
  install_signal_handlers();
  int failures = 0;
  Results res;
  std::string label = "size_mb=" + std::to_string(size_mb) + " compress=" + compress;
  for (int r = 0; r < runs && !g_interrupted; ++r) {
    try {
      run_once(size_mb, compress, res);
    } catch (const Interrupted&) {
      log("interrupted; stopping everything");
    } catch (const std::exception& e) {
      ++failures;
      log(label + ": run failed: " + e.what());
    }
  }
  print_figures(label, kFigures, res);
  if (g_interrupted) return 130;
  return failures ? 1 : 0;
}
