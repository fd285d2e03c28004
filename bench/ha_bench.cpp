// HA timings and footprint of a real three-member pgwarden cluster (etcd, PostgreSQL 15 and
// the pgwarden binary on loopback): figures, not assertions. See bench/README.md.
//
//   ha_bench [--quick | --idle] [--runs N]
//
// Every scenario runs with ttl=30/loop_wait=10/retry_timeout=10 and ttl=10/loop_wait=2/
// retry_timeout=4 (--quick: only the second set, and no idle minute; --idle: only the second
// set's bootstrap and idle minute, for work on the footprint). With --runs N each
// scenario is repeated N times and the median is printed. Everything the bench starts is
// stopped when a run ends, also when a scenario fails (fixture destructors).
#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "cluster_fixture.hpp"
#include "idle_floor.hpp"
#include "pgwarden/postgres/postgres.hpp"

namespace {

using namespace pgwarden::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using namespace bench;

// ---------------------------------------------------------------- etcd via the JSON gateway

std::string base64(const std::string& in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += tbl[v >> 18 & 63];
    out += tbl[v >> 12 & 63];
    out += tbl[v >> 6 & 63];
    out += tbl[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    out += tbl[v >> 18 & 63];
    out += tbl[v >> 12 & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += tbl[v >> 18 & 63];
    out += tbl[v >> 12 & 63];
    out += tbl[v >> 6 & 63];
    out += '=';
  }
  return out;
}

std::string unbase64(const std::string& in) {
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (char c : in) {
    int d;
    if (c >= 'A' && c <= 'Z') d = c - 'A';
    else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
    else if (c >= '0' && c <= '9') d = c - '0' + 52;
    else if (c == '+') d = 62;
    else if (c == '/') d = 63;
    else continue;
    v = v << 6 | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(v >> bits & 0xff);
    }
  }
  return out;
}

const char* kLeaderKey = "/service/itest/leader";

struct LeaderKey {
  bool ok = false;       // etcd answered
  bool present = false;  // the key exists
  std::string owner;
  std::string lease;  // decimal lease id
};

LeaderKey read_leader_key(const EtcdServer& etcd) {
  LeaderKey k;
  json req = {{"key", base64(kLeaderKey)}};
  auto r = http_request("POST", "127.0.0.1", etcd.client_port(), "/v3/kv/range", req.dump(), 2s);
  if (r.status != 200) return k;
  try {
    auto j = json::parse(r.body);
    k.ok = true;
    if (j.contains("kvs") && !j["kvs"].empty()) {
      auto& kv = j["kvs"][0];
      k.present = true;
      k.owner = unbase64(kv.value("value", ""));
      if (kv.contains("lease")) k.lease = kv["lease"].is_string() ? kv["lease"].get<std::string>() : kv["lease"].dump();
    }
  } catch (const std::exception&) {
    k.ok = false;
  }
  return k;
}

// Remaining and granted TTL (seconds, etcd's whole-second resolution) of a lease.
std::optional<std::pair<double, double>> lease_ttl(const EtcdServer& etcd, const std::string& lease) {
  if (lease.empty()) return std::nullopt;
  auto r = http_request("POST", "127.0.0.1", etcd.client_port(), "/v3/lease/timetolive",
                        "{\"ID\":\"" + lease + "\"}", 2s);
  if (r.status != 200) return std::nullopt;
  try {
    auto j = json::parse(r.body);
    auto num = [&](const char* f) {
      auto& v = j.at(f);
      return v.is_string() ? std::stod(v.get<std::string>()) : v.get<double>();
    };
    return std::make_pair(num("TTL"), num("grantedTTL"));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// ---------------------------------------------------------------- /proc footprint

struct ProcSample {
  long rss_kb = -1;
  long pss_kb = -1;          // proportional: shared library pages divided among their users
  long private_kb = -1;      // Private_Clean + Private_Dirty: memory only this process holds
  long ticks = -1;  // utime + stime, whole clock ticks (10 ms): too coarse for an idle minute
  long long cpu_ns = -1;   // on-CPU time of the live threads (schedstat), nanoseconds
  std::vector<int> tids;   // those threads
};

// Sums /proc/<pid>/task/*/schedstat (first field: time on CPU in ns). Threads that ended are
// not counted, so a comparison is only valid when `tids` did not change.
void sample_threads(int pid, ProcSample& s) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  long long total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream f(e.path() / "schedstat");
    long long ns = 0;
    if (!(f >> ns)) return;
    total += ns;
    s.tids.push_back(std::atoi(e.path().filename().c_str()));
  }
  if (ec || s.tids.empty()) return;
  std::sort(s.tids.begin(), s.tids.end());
  s.cpu_ns = total;
}

ProcSample sample_proc(int pid) {
  ProcSample s;
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::atol(line.c_str() + 6);
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  long priv = 0;
  while (std::getline(rollup, line)) {
    if (line.rfind("Pss:", 0) == 0) s.pss_kb = std::atol(line.c_str() + 4);
    if (line.rfind("Private_Clean:", 0) == 0) priv += std::atol(line.c_str() + 14);
    if (line.rfind("Private_Dirty:", 0) == 0) priv += std::atol(line.c_str() + 14);
  }
  if (s.pss_kb >= 0) s.private_kb = priv;
  std::ifstream sf("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(sf)), std::istreambuf_iterator<char>());
  auto rp = all.rfind(')');
  if (rp != std::string::npos) {
    std::istringstream is(all.substr(rp + 2));
    std::vector<std::string> f;
    std::string tok;
    while (is >> tok) f.push_back(tok);
    // After "pid (comm) ": field 3 (state) is f[0]; utime is field 14 -> f[11], stime f[12].
    if (f.size() > 12) s.ticks = std::atol(f[11].c_str()) + std::atol(f[12].c_str());
  }
  sample_threads(pid, s);
  return s;
}

// ---------------------------------------------------------------- results

struct Params {
  int ttl, loop_wait, retry_timeout;
  std::string label() const {
    return "ttl=" + std::to_string(ttl) + " loop_wait=" + std::to_string(loop_wait);
  }
};

// Figures in print order, with Patroni's reference and the target ("-" when none).
const std::vector<Figure> kFigures = {
    {"bootstrap_to_streaming_s", "17.4", "<=6"},
    {"failover_kill_to_write_s", "-", "-"},
    {"failover_lock_remaining_at_kill_s", "-", "-"},
    {"failover_lease_ttl_at_kill_s", "-", "-"},
    {"failover_lock_expiry_to_write_s", "0.3", "<=0.3"},
    {"replica_follows_new_leader_s", "5", "<=1"},
    {"old_leader_rejoin_to_streaming_s", "7.6-8.3", "<=3"},
    {"handover_write_gap_s", "-", "<1"},
    {"handover_sigterm_to_write_s", "-", "-"},
    {"handover_rows_acked", "-", "-", true},
    {"handover_rows_lost", "-", "=0", true},
    {"idle_rss_mb_per_member", "61", "<=6"},
    {"idle_pss_mb_per_member", "-", "-"},
    {"idle_private_mb_per_member", "-", "-"},
    {"idle_cpu_s_per_member_60s", "0.09", "<=0.01", false, 4},
    // The same minute split by role: the leader renews its lock every loop_wait.
    {"idle_cpu_s_leader_60s", "-", "<=0.01", false, 4},
    {"idle_cpu_s_replica_60s", "-", "<=0.01", false, 4},
    // What the least possible leader cycle costs on this machine in the same minute
    // (bench/idle_floor.hpp): a wake, a keep-alive and the state query.
    {"idle_cpu_floor_s_60s", "-", "-", false, 4},
    // The same floor waking once a cycle: keep-alive and query sent before the sleep.
    {"idle_cpu_floor_one_wake_s_60s", "-", "-", false, 4},
};

// ---------------------------------------------------------------- the cluster

class Cluster {
 public:
  explicit Cluster(const Params& p) {
    for (int i = 1; i <= 3; ++i) {
      MemberOptions o;
      o.name = "node" + std::to_string(i);
      o.ttl = p.ttl;
      o.loop_wait = p.loop_wait;
      o.retry_timeout = p.retry_timeout;
      members.push_back(std::make_unique<PgwardenMember>(etcd, o));
    }
  }
  ~Cluster() {
    // Stop members in parallel-ish order: each destructor sends SIGTERM and waits.
    members.clear();
  }

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

  std::string logs_tail() {
    std::string all;
    for (auto& m : members) {
      std::string l = m->log();
      if (l.size() > 3000) l = l.substr(l.size() - 3000);
      all += "----- " + m->options().name + " (last lines)\n" + l;
    }
    return all;
  }

  EtcdServer etcd;
  std::vector<std::unique_ptr<PgwardenMember>> members;
};

// One run of every scenario with parameters `p`; figures are appended to `res`.
// How long after both replicas stream the idle minute starts.
constexpr auto kSettle = std::chrono::seconds(35);

void run_once(const Params& p, bool idle_minute, bool only_idle, Results& res) {
  Cluster c(p);
  auto fail = [&](const std::string& what) { throw Failed(what + "\n" + c.logs_tail()); };

  // --- bootstrap: start of the three pgwarden processes -> both replicas streaming
  auto t0 = Clock::now();
  for (auto& m : c.members) m->start();
  PgwardenMember* old = nullptr;
  auto up = poll([&] { old = c.leader(); return old && c.streaming_replicas(old) == 2; }, 180s, 50ms);
  if (!up) fail("bootstrap: no leader with two streaming replicas after 180 s");
  res["bootstrap_to_streaming_s"].push_back(secs(*up - t0));
  log(p.label() + ": bootstrap " + fmt(secs(*up - t0)) + " s, leader " + old->options().name);

  // --- footprint over an idle minute, once the cluster has settled: the first seconds after
  // bootstrap still create slots and write member keys, and 30 s after start each member drops
  // its start-up code pages (util::release_unused_pages). Patroni was measured the same way.
  if (idle_minute) {
    auto settled = Clock::now() + kSettle;
    while (Clock::now() < settled) {
      if (g_interrupted) throw Interrupted();
      std::this_thread::sleep_for(200ms);
    }
    // The floor runs beside the members, on its own lease and the leader's PostgreSQL.
    // Two floors, each on its own lease: as the daemon does it (two wakes a cycle) and waking once.
    std::optional<FloorResult> floor[2];
    std::thread floor_thread[2];
    std::string floor_lease[2];
    for (int i = 0; i < 2; ++i) {
      auto grant = http_request("POST", "127.0.0.1", c.etcd.client_port(), "/v3/lease/grant", "{\"TTL\":\"120\"}", 2s);
      try {
        if (grant.status == 200) floor_lease[i] = json::parse(grant.body).value("ID", "");
      } catch (const std::exception&) {
      }
      if (floor_lease[i].empty()) {
        log(p.label() + ": no lease for the idle floor: HTTP " + std::to_string(grant.status));
        continue;
      }
      IdleFloor f(c.etcd.client_port(), floor_lease[i],
                  "host=" + old->dir() + " port=" + std::to_string(old->pg_port()) + " user=postgres dbname=postgres",
                  pgwarden::postgres::state_query_sql());
      floor_thread[i] = std::thread([f, &floor, p, i]() mutable {
        floor[i] = f.run(std::chrono::seconds(p.loop_wait), 60s, g_interrupted, i == 1);
      });
    }
    std::vector<ProcSample> before;
    for (auto& m : c.members) before.push_back(sample_proc(m->child_pid()));
    log(p.label() + ": idle minute");
    auto end = Clock::now() + 60s;
    while (Clock::now() < end && !g_interrupted) std::this_thread::sleep_for(200ms);
    for (auto& t : floor_thread)
      if (t.joinable()) t.join();
    if (g_interrupted) throw Interrupted();
    const char* floor_figure[2] = {"idle_cpu_floor_s_60s", "idle_cpu_floor_one_wake_s_60s"};
    for (int i = 0; i < 2; ++i) {
      if (floor[i]) res[floor_figure[i]].push_back(floor[i]->cpu_s);
      else if (!floor_lease[i].empty()) log(p.label() + ": the idle floor could not reach etcd or PostgreSQL");
    }
    double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
    for (size_t i = 0; i < c.members.size(); ++i) {
      auto after = sample_proc(c.members[i]->child_pid());
      if (after.rss_kb < 0 || before[i].ticks < 0 || after.ticks < 0) continue;
      res["idle_rss_mb_per_member"].push_back(after.rss_kb / 1024.0);
      if (after.pss_kb >= 0) res["idle_pss_mb_per_member"].push_back(after.pss_kb / 1024.0);
      if (after.private_kb >= 0) res["idle_private_mb_per_member"].push_back(after.private_kb / 1024.0);
      // Nanoseconds when the same threads lived through the minute, else whole ticks.
      bool same_threads = before[i].cpu_ns >= 0 && after.cpu_ns >= 0 && before[i].tids == after.tids;
      const double cpu_s = same_threads ? (after.cpu_ns - before[i].cpu_ns) / 1e9 : (after.ticks - before[i].ticks) / tck;
      res["idle_cpu_s_per_member_60s"].push_back(cpu_s);
      res[c.members[i].get() == old ? "idle_cpu_s_leader_60s" : "idle_cpu_s_replica_60s"].push_back(cpu_s);
    }
  }

  if (only_idle) return;

  // --- unplanned failover: kill -9 of the leader's pgwarden and postmaster
  if (old->sql("CREATE TABLE bench_probe(t timestamptz)") != "OK") fail("cannot create bench_probe");
  if (!poll([&] {
        for (auto& m : c.members)
          if (m.get() != old && m->sql("SELECT to_regclass('bench_probe') IS NOT NULL") != "t") return false;
        return true;
      }, 30s))
    fail("bench_probe did not reach the replicas");
  std::vector<PgwardenMember*> survivors;
  for (auto& m : c.members)
    if (m.get() != old) survivors.push_back(m.get());

  LeaderKey before_kill = read_leader_key(c.etcd);
  if (!before_kill.present || before_kill.owner != old->options().name) fail("leader key not held by the leader");
  auto ttl_at_kill = lease_ttl(c.etcd, before_kill.lease);
  auto pm = old->postmaster_pid();
  auto t_kill = Clock::now();
  old->kill9();
  if (pm) kill(*pm, SIGKILL);

  // Watch the leader key every 20 ms: the time it disappears is the lock expiry.
  std::atomic<bool> stop_watch{false};
  std::optional<Clock::time_point> t_expiry;
  bool expiry_seen_absent = false;
  std::thread watcher([&] {
    while (!stop_watch) {
      auto k = read_leader_key(c.etcd);
      auto now = Clock::now();
      if (k.ok && (!k.present || k.owner != old->options().name)) {
        t_expiry = now;
        expiry_seen_absent = !k.present;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  struct Joiner {
    std::thread& t;
    std::atomic<bool>& stop;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{watcher, stop_watch};

  PgwardenMember* next = nullptr;
  auto t_write = first_write(survivors, std::chrono::seconds(p.ttl * 3 + 60), next);
  stop_watch = true;
  watcher.join();
  if (!t_write) fail("failover: no survivor accepted a write");
  res["failover_kill_to_write_s"].push_back(secs(*t_write - t_kill));
  if (ttl_at_kill) res["failover_lease_ttl_at_kill_s"].push_back(ttl_at_kill->first);
  if (t_expiry) {
    res["failover_lock_remaining_at_kill_s"].push_back(secs(*t_expiry - t_kill));
    res["failover_lock_expiry_to_write_s"].push_back(secs(*t_write - *t_expiry));
    if (!expiry_seen_absent) log("note: the leader key changed owner between two 20 ms polls");
  }
  log(p.label() + ": failover to " + next->options().name + " " + fmt(secs(*t_write - t_kill)) + " s after kill" +
      (t_expiry ? ", " + fmt(secs(*t_write - *t_expiry)) + " s after lock expiry" : std::string()) +
      (ttl_at_kill ? ", lease TTL at kill " + fmt(ttl_at_kill->first) + "/" + fmt(ttl_at_kill->second) : ""));

  // --- the other replica streams from the new leader
  PgwardenMember* other = survivors[0] == next ? survivors[1] : survivors[0];
  auto t_follow = poll([&] { return Cluster::streams_from(other, next); }, 120s, 20ms);
  if (!t_follow) fail("the other replica did not stream from the new leader within 120 s");
  res["replica_follows_new_leader_s"].push_back(secs(*t_follow - *t_write));

  // --- the old leader, restarted, streams again
  auto t_restart = Clock::now();
  old->start();
  auto t_rejoin = poll([&] { return Cluster::streams_from(old, next); }, 180s, 50ms);
  if (!t_rejoin) fail("the old leader did not stream again within 180 s");
  res["old_leader_rejoin_to_streaming_s"].push_back(secs(*t_rejoin - t_restart));
  log(p.label() + ": other replica followed after " + fmt(secs(*t_follow - *t_write)) + " s, old leader rejoined after " +
      fmt(secs(*t_rejoin - t_restart)) + " s");

  // --- graceful handover on SIGTERM of the leader, with a continuous writer
  if (!poll([&] { return c.streaming_replicas(next) == 2; }, 60s)) fail("cluster not healthy before handover");
  if (next->sql("CREATE TABLE bench_rows(id bigint PRIMARY KEY, t timestamptz)") != "OK")
    fail("cannot create bench_rows");
  PgwardenMember* h_old = next;
  struct Ack {
    long id;
    Clock::time_point t;
    PgwardenMember* on;
  };
  std::vector<Ack> acks;
  std::mutex acks_mu;
  std::atomic<bool> stop_writer{false};
  std::thread writer([&] {
    long id = 0;
    size_t pref = 0;  // index of the member that took the last write: tried first
    while (!stop_writer) {
      ++id;
      std::string q = "INSERT INTO bench_rows VALUES (" + std::to_string(id) + ", now())";
      bool done = false;
      for (size_t k = 0; k < c.members.size() && !done; ++k) {
        size_t i = (pref + k) % c.members.size();
        if (try_exec(c.members[i]->pg_port(), q, 1)) {
          auto now = Clock::now();
          std::lock_guard<std::mutex> g(acks_mu);
          acks.push_back({id, now, c.members[i].get()});
          pref = i;
          done = true;
        }
      }
      if (!done) std::this_thread::sleep_for(5ms);
    }
  });
  struct WJoin {
    std::thread& t;
    std::atomic<bool>& stop;
    ~WJoin() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } wjoin{writer, stop_writer};

  std::this_thread::sleep_for(2s);  // steady writes on the old leader first
  auto t_term = Clock::now();
  std::thread stopper([&] { h_old->stop(SIGTERM, 90s); });
  // Wait until a write lands on another member, then keep writing for one more second.
  bool new_seen = false;
  try {
    new_seen = poll(
                   [&] {
                     std::lock_guard<std::mutex> g(acks_mu);
                     return std::any_of(acks.begin(), acks.end(),
                                        [&](const Ack& a) { return a.on != h_old && a.t > t_term; });
                   },
                   std::chrono::seconds(p.ttl * 3 + 60), 50ms)
                   .has_value();
  } catch (...) {
    stopper.join();
    throw;
  }
  if (new_seen) std::this_thread::sleep_for(1s);
  stop_writer = true;
  writer.join();
  stopper.join();
  std::optional<Clock::time_point> first_new;
  if (!new_seen) fail("handover: no write landed on another member");
  std::optional<Clock::time_point> last_old;
  PgwardenMember* h_new = nullptr;
  for (auto& a : acks) {
    if (a.on == h_old) last_old = a.t;
    else if (a.t > t_term && !first_new) {
      first_new = a.t;
      h_new = a.on;
    }
  }
  if (!last_old || !first_new || !h_new) fail("handover: no write before or after the SIGTERM");
  res["handover_write_gap_s"].push_back(secs(*first_new - *last_old));
  res["handover_sigterm_to_write_s"].push_back(secs(*first_new - t_term));
  // Every acknowledged row must be on the new leader.
  std::string present_s = h_new->sql("SELECT count(*) FROM bench_rows");
  std::string ids;
  for (auto& a : acks) ids += (ids.empty() ? "" : ",") + std::to_string(a.id);
  std::string missing_s =
      h_new->sql("SELECT count(*) FROM unnest(ARRAY[" + ids + "]::bigint[]) AS a(id) "
                 "WHERE NOT EXISTS (SELECT 1 FROM bench_rows r WHERE r.id = a.id)");
  long missing = std::atol(missing_s.c_str());
  if (missing_s.rfind("ERROR", 0) == 0) fail("handover: cannot count rows: " + missing_s);
  res["handover_rows_acked"].push_back(static_cast<double>(acks.size()));
  res["handover_rows_lost"].push_back(static_cast<double>(missing));
  log(p.label() + ": handover " + h_old->options().name + " -> " + h_new->options().name + ", gap " +
      fmt(secs(*first_new - *last_old)) + " s, acked " + std::to_string(acks.size()) + ", present " + present_s +
      ", lost " + std::to_string(missing));
}

}  // namespace

int main(int argc, char** argv) {
  bench::g_name = "ha_bench";
  bool quick = false, idle_only = false;
  int runs = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--idle") idle_only = true;
    else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--quick | --idle] [--runs N]\n", argv[0]);
      return 2;
    }
  }
  install_signal_handlers();

  std::vector<Params> sets;
  if (!quick && !idle_only) sets.push_back({30, 10, 10});
  sets.push_back({10, 2, 4});

  int failures = 0;
  for (auto& p : sets) {
    Results res;
    for (int r = 0; r < runs && !g_interrupted; ++r) {
      log(p.label() + ": run " + std::to_string(r + 1) + "/" + std::to_string(runs));
      try {
        run_once(p, !quick, idle_only, res);
      } catch (const Interrupted&) {
        log("interrupted; stopping everything");
      } catch (const std::exception& e) {
        ++failures;
        log(p.label() + ": run failed: " + e.what());
      }
    }
    print_figures(p.label(), kFigures, res);
  }
  if (g_interrupted) return 130;
  return failures ? 1 : 0;
}
