// Operations benchmark of a real three-member cluster (etcd, PostgreSQL 15, pgwarden):
// figures, not assertions. See bench/README.md.
//
//   ops_bench [--runs N] [--no-wrk]
//
// Planned switchover through POST /switchover with a continuous writer: the write gap from
// the old leader's last acknowledged write to the first on the candidate, the time to the
// HTTP answer, and rows lost (must be 0). Then REST throughput on GET /health with wrk
// (-t2 -c16 -d10s, keep-alive), requests/s and p99 latency.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "cluster_fixture.hpp"

namespace {

using namespace pgwarden::test;
using namespace bench;
using namespace std::chrono_literals;

struct Params {
  int ttl, loop_wait, retry_timeout;
  std::string label() const { return "ttl=" + std::to_string(ttl) + " loop_wait=" + std::to_string(loop_wait); }
};

const std::vector<Figure> kFigures = {
    {"switchover_write_gap_s", "1.40", "<=0.5"},
    {"switchover_http_answer_s", "2.06", "<=1"},
    {"switchover_rows_lost", "-", "=0", true},
    {"health_requests_per_s", "384-618", ">=20000"},
    {"health_p99_ms", "54-211", "<5"},
};

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// wrk's "Requests/sec:" and the 99% line of --latency, in ms.
void run_wrk(int port, Results& res) {
  std::string out = run_capture("wrk -t2 -c16 -d10s --latency http://127.0.0.1:" + std::to_string(port) + "/health");
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))")))
    res["health_requests_per_s"].push_back(std::atof(m[1].str().c_str()));
  if (std::regex_search(out, m, std::regex(R"(99%\s+([0-9.]+)(us|ms|s))"))) {
    double v = std::atof(m[1].str().c_str());
    std::string unit = m[2].str();
    res["health_p99_ms"].push_back(unit == "us" ? v / 1000 : unit == "s" ? v * 1000 : v);
  }
  if (res["health_requests_per_s"].empty()) log("wrk gave no figures:\n" + out);
}

void run_once(const Params& p, bool wrk, Results& res) {
  EtcdServer etcd;
  std::vector<std::unique_ptr<PgwardenMember>> members;
  for (int i = 1; i <= 3; ++i) {
    MemberOptions o;
    o.name = "node" + std::to_string(i);
    o.index = i;
    o.ttl = p.ttl;
    o.loop_wait = p.loop_wait;
    o.retry_timeout = p.retry_timeout;
    members.push_back(std::make_unique<PgwardenMember>(etcd, o));
  }
  for (auto& m : members) m->start();
  auto leader = [&]() -> PgwardenMember* {
    for (auto& m : members)
      if (m->alive() && m->get("/leader").status == 200) return m.get();
    return nullptr;
  };
  auto streaming = [&](PgwardenMember* l) {
    int n = 0;
    for (auto& r : members)
      if (r.get() != l && r->sql("SELECT status || ':' || sender_port FROM pg_stat_wal_receiver") ==
                              "streaming:" + std::to_string(l->pg_port()))
        ++n;
    return n;
  };
  PgwardenMember* old = nullptr;
  if (!poll([&] { old = leader(); return old && streaming(old) == 2; }, 180s, 50ms))
    throw Failed("no healthy cluster after 180 s");
  PgwardenMember* cand = members[0].get() == old ? members[1].get() : members[0].get();
  if (old->sql("CREATE TABLE bench_rows(id bigint PRIMARY KEY)") != "OK") throw Failed("cannot create bench_rows");

  struct Ack {
    long id;
    Clock::time_point t;
    PgwardenMember* on;
  };
  std::vector<Ack> acks;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    long id = 0;
    size_t pref = 0;
    while (!stop) {
      ++id;
      std::string q = "INSERT INTO bench_rows VALUES (" + std::to_string(id) + ")";
      bool done = false;
      for (size_t k = 0; k < members.size() && !done; ++k) {
        size_t i = (pref + k) % members.size();
        if (try_exec(members[i]->pg_port(), q, 1)) {
          std::lock_guard<std::mutex> g(mu);
          acks.push_back({id, Clock::now(), members[i].get()});
          pref = i;
          done = true;
        }
      }
      if (!done) std::this_thread::sleep_for(5ms);
    }
  });
  struct Join {
    std::thread& t;
    std::atomic<bool>& s;
    ~Join() {
      s = true;
      if (t.joinable()) t.join();
    }
  } join{writer, stop};

  sleep_for(2s);
  auto t0 = Clock::now();
  nlohmann::json body = {{"leader", old->options().name}, {"candidate", cand->options().name}};
  HttpReply r = http_request("POST", "127.0.0.1", old->api_port(), "/switchover", body.dump(), 60s);
  auto t_answer = Clock::now();
  if (r.status != 200) throw Failed("switchover answered " + std::to_string(r.status) + ": " + r.body);
  bool new_seen = poll(
                      [&] {
                        std::lock_guard<std::mutex> g(mu);
                        return std::any_of(acks.begin(), acks.end(), [&](const Ack& a) { return a.on == cand; });
                      },
                      30s, 20ms)
                      .has_value();
  if (new_seen) sleep_for(1s);
  stop = true;
  writer.join();
  if (!new_seen) throw Failed("no write landed on the candidate");
  std::optional<Clock::time_point> last_old, first_new;
  for (auto& a : acks) {
    if (a.on == old) last_old = a.t;
    else if (a.on == cand && !first_new) first_new = a.t;
  }
  if (!last_old || !first_new) throw Failed("no write before or after the switchover");
  res["switchover_write_gap_s"].push_back(secs(*first_new - *last_old));
  res["switchover_http_answer_s"].push_back(secs(t_answer - t0));
  std::string ids;
  for (auto& a : acks) ids += (ids.empty() ? "" : ",") + std::to_string(a.id);
  std::string missing = cand->sql("SELECT count(*) FROM unnest(ARRAY[" + ids +
                                  "]::bigint[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM bench_rows r WHERE r.id = a.id)");
  if (missing.rfind("ERROR", 0) == 0) throw Failed("cannot count rows: " + missing);
  res["switchover_rows_lost"].push_back(std::atof(missing.c_str()));
  log(p.label() + ": switchover " + old->options().name + " -> " + cand->options().name + ", gap " +
      fmt(secs(*first_new - *last_old)) + " s, answer " + fmt(secs(t_answer - t0)) + " s, lost " + missing);
  if (wrk) run_wrk(cand->api_port(), res);
}

}  // namespace

int main(int argc, char** argv) {
  bench::g_name = "ops_bench";
  int runs = 1;
  bool wrk = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--no-wrk") wrk = false;
    else {
      std::fprintf(stderr, "usage: %s [--runs N] [--no-wrk]\n", argv[0]);
      return 2;
    }
  }
  install_signal_handlers();
  if (wrk && std::system("command -v wrk >/dev/null 2>&1") != 0) {
    log("wrk is not installed (apt-get install wrk): skipping the throughput figures");
    wrk = false;
  }
  int failures = 0;
  for (Params p : {Params{30, 10, 10}, Params{10, 2, 4}}) {
    Results res;
    for (int r = 0; r < runs && !g_interrupted; ++r) {
      try {
        run_once(p, wrk, res);
      } catch (const Interrupted&) {
        log("interrupted; stopping everything");
      } catch (const std::exception& e) {
        ++failures;
        log(p.label() + ": run failed: " + e.what());
      }
    }
    print_figures(p.label(), kFigures, res);
  }
  return failures ? 1 : 0;
}
