// A three-member pgwarden cluster on the Kubernetes backend (the in-process API emulator,
// PostgreSQL 15 and the pgwarden binary on loopback): failover time and Kubernetes API
// requests per member per minute in steady state, beside Patroni 3.0.2's writes computed from
// its layout rules. Figures, not assertions. See bench/README.md.
//
//   k8s_bench [--quick] [--runs N] [--configmaps]
//
// Parameter sets: ttl=30/loop_wait=10/retry_timeout=10 (the chart's values) with a 60 s window,
// and ttl=10/loop_wait=2/retry_timeout=4 with a 30 s window (--quick: only the second set, with
// a 20 s window). Objects are Endpoints (the chart's default) unless --configmaps. With --runs N
// each scenario is repeated N times and the median is printed.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "cluster_fixture.hpp"
#include "test_dcs.hpp"

namespace {

using namespace pgwarden::test;
using namespace bench;
using json = nlohmann::json;

struct Params {
  int ttl, loop_wait, retry_timeout;
  int window_s;  // steady-state measurement window
  std::string label() const { return "ttl=" + std::to_string(ttl) + " loop_wait=" + std::to_string(loop_wait); }
};

const std::vector<Figure> kFigures = {
    {"bootstrap_to_streaming_s"},
    {"leader_reads_per_min"},
    {"leader_writes_per_min"},
    {"replica_reads_per_min"},
    {"replica_writes_per_min"},
    {"failover_kill_to_write_s"},
    {"failover_kill_to_lock_taken_s"},
    {"failover_lock_taken_to_write_s"},
};

// Patroni 3.0.2's writes per member per minute by its Kubernetes layout rules: every member
// patches its pod once per loop_wait (status annotation, with xlog_location moving); the leader
// also writes the lock (leader Endpoints/ConfigMap annotations) once per loop_wait.
std::string patroni_reference(const std::string& figure, const Params& p) {
  double per_loop = 60.0 / p.loop_wait;
  if (figure == "leader_writes_per_min") return fmt(2 * per_loop);
  if (figure == "replica_writes_per_min") return fmt(per_loop);
  return "-";
}

void print(const Params& p, const std::string& backend, const Results& res) {
  for (auto& f : kFigures) {
    std::string line = p.label() + "  " + backend + "  " + f.name + "  " + median_and_runs(res, f);
    std::string ref = patroni_reference(f.name, p);
    if (ref != "-") line += "  patroni_3.0.2_by_its_rules=" + ref;
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

class Cluster {
 public:
  Cluster(const Params& p, bool use_endpoints) : dcs(use_endpoints) {
    for (int i = 1; i <= 3; ++i) {
      MemberOptions o;
      o.name = "node" + std::to_string(i);
      o.index = i;
      o.ttl = p.ttl;
      o.loop_wait = p.loop_wait;
      o.retry_timeout = p.retry_timeout;
      members.push_back(std::make_unique<PgwardenMember>(dcs, o));
    }
  }
  ~Cluster() { members.clear(); }  // before the emulator goes

  PgwardenMember* leader() {
    for (auto& m : members)
      if (m->alive() && m->get("/leader").status == 200) return m.get();
    return nullptr;
  }

  static bool streams_from(PgwardenMember* r, PgwardenMember* from) {
    return r->sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") ==
           "streaming:" + std::to_string(from->pg_port());
  }

  int streaming_replicas(PgwardenMember* m) {
    int n = 0;
    for (auto& r : members)
      if (r.get() != m && r->alive() && streams_from(r.get(), m)) ++n;
    return n;
  }

  std::string lock_holder() {
    json lock = dcs.emulator().get(dcs.ns(), dcs.kind(), dcs.leader_object());
    return lock.value("/metadata/annotations/leader"_json_pointer, std::string());
  }

  std::string logs_tail() {
    std::string all;
    for (auto& m : members) {
      std::string l = m->log();
      if (l.size() > 3000) l = l.substr(l.size() - 3000);
      all += "----- " + m->options().name + " (last lines)\n" + l;
    }
    return all;
  }

  K8sTestDcs dcs;
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

// Joins a thread on scope exit after setting its stop flag.
struct StopJoin {
  std::thread& t;
  std::atomic<bool>& stop;
  ~StopJoin() {
    stop = true;
    if (t.joinable()) t.join();
  }
};

void run_once(const Params& p, bool use_endpoints, Results& res) {
  Cluster c(p, use_endpoints);
  auto fail = [&](const std::string& what) { throw Failed(what + "\n" + c.logs_tail()); };

  // --- bootstrap
  auto t0 = Clock::now();
  for (auto& m : c.members) m->start();
  PgwardenMember* old = nullptr;
  auto up = poll([&] { old = c.leader(); return old && c.streaming_replicas(old) == 2; }, 180s, 50ms);
  if (!up) fail("bootstrap: no leader with two streaming replicas after 180 s");
  res["bootstrap_to_streaming_s"].push_back(secs(*up - t0));
  log(p.label() + ": bootstrap " + fmt(secs(*up - t0)) + " s, leader " + old->options().name);

  // --- steady state with a little write load: one INSERT per second on the leader
  if (old->sql("CREATE TABLE bench_probe(t timestamptz)") != "OK") fail("cannot create bench_probe");
  std::atomic<bool> stop_writer{false};
  std::atomic<long> inserts{0};
  int leader_port = old->pg_port();
  std::thread writer([&] {
    while (!stop_writer) {
      if (try_exec(leader_port, "INSERT INTO bench_probe VALUES (now())")) ++inserts;
      for (int i = 0; i < 10 && !stop_writer; ++i) std::this_thread::sleep_for(100ms);
    }
  });
  {
    StopJoin wj{writer, stop_writer};
    // Let bootstrap's one-off writes (initialize, config, slots, first status) settle.
    sleep_for(std::chrono::seconds(std::max(5, 2 * p.loop_wait)));
    if (c.leader() != old) fail("leadership moved before the steady-state window");
    std::vector<K8sEmulator::RequestCounts> before, after;
    for (auto& m : c.members) before.push_back(c.dcs.requests(m->options().name));
    auto w0 = Clock::now();
    sleep_for(std::chrono::seconds(p.window_s));
    for (auto& m : c.members) after.push_back(c.dcs.requests(m->options().name));
    double minutes = secs(Clock::now() - w0) / 60.0;
    if (c.leader() != old || c.streaming_replicas(old) != 2) fail("cluster not healthy through the window");
    std::string detail;
    for (size_t i = 0; i < c.members.size(); ++i) {
      double r = (after[i].reads - before[i].reads) / minutes;
      double w = (after[i].writes - before[i].writes) / minutes;
      bool is_leader = c.members[i].get() == old;
      res[is_leader ? "leader_reads_per_min" : "replica_reads_per_min"].push_back(r);
      res[is_leader ? "leader_writes_per_min" : "replica_writes_per_min"].push_back(w);
      detail += " " + c.members[i]->options().name + (is_leader ? "(leader)" : "") + " reads " + fmt(r) +
                "/min writes " + fmt(w) + "/min;";
    }
    log(p.label() + ": steady state over " + fmt(minutes * 60) + " s, " + std::to_string(inserts.load()) +
        " inserts:" + detail);
  }

  // --- unplanned failover: kill -9 of the leader's pgwarden and postmaster
  if (!poll([&] {
        for (auto& m : c.members)
          if (m.get() != old && m->sql("SELECT count(*) > 0 FROM bench_probe") != "t") return false;
        return true;
      }, 30s))
    fail("bench_probe rows did not reach the replicas");
  std::vector<PgwardenMember*> survivors;
  for (auto& m : c.members)
    if (m.get() != old) survivors.push_back(m.get());
  if (c.lock_holder() != old->options().name) fail("lock not held by the leader");

  auto pm = old->postmaster_pid();
  auto t_kill = Clock::now();
  old->kill9();
  if (pm) kill(*pm, SIGKILL);

  // The lock object is in the emulator's store: read it every 20 ms for the takeover.
  std::atomic<bool> stop_watch{false};
  std::optional<Clock::time_point> t_taken;
  std::thread watcher([&] {
    while (!stop_watch) {
      std::string h = c.lock_holder();
      if (!h.empty() && h != old->options().name) {
        t_taken = Clock::now();
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  PgwardenMember* next = nullptr;
  std::optional<Clock::time_point> t_write;
  {
    StopJoin wj{watcher, stop_watch};
    t_write = first_write(survivors, std::chrono::seconds(p.ttl * 3 + 60), next);
  }
  if (!t_write) fail("failover: no survivor accepted a write");
  res["failover_kill_to_write_s"].push_back(secs(*t_write - t_kill));
  if (t_taken) {
    res["failover_kill_to_lock_taken_s"].push_back(secs(*t_taken - t_kill));
    res["failover_lock_taken_to_write_s"].push_back(secs(*t_write - *t_taken));
  }
  log(p.label() + ": failover to " + next->options().name + " " + fmt(secs(*t_write - t_kill)) + " s after kill" +
      (t_taken ? ", " + fmt(secs(*t_write - *t_taken)) + " s after the lock changed hands" : std::string()));
}

}  // namespace

int main(int argc, char** argv) {
  bench::g_name = "k8s_bench";
  bool quick = false, use_endpoints = true;
  int runs = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--configmaps") use_endpoints = false;
    else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--runs N] [--configmaps]\n", argv[0]);
      return 2;
    }
  }
  install_signal_handlers();

  std::vector<Params> sets;
  if (!quick) sets.push_back({30, 10, 10, 60});
  sets.push_back({10, 2, 4, quick ? 20 : 30});
  std::string backend = use_endpoints ? "k8s_endpoints" : "k8s_configmaps";

  int failures = 0;
  for (auto& p : sets) {
    Results res;
    for (int r = 0; r < runs && !g_interrupted; ++r) {
      log(p.label() + " " + backend + ": run " + std::to_string(r + 1) + "/" + std::to_string(runs));
      try {
        run_once(p, use_endpoints, res);
      } catch (const Interrupted&) {
        log("interrupted; stopping everything");
      } catch (const std::exception& e) {
        ++failures;
        log(p.label() + ": run failed: " + e.what());
      }
    }
    print(p, backend, res);
  }
  if (g_interrupted) return 130;
  return failures ? 1 : 0;
}
