#pragma once
// Helpers shared by ha_bench and k8s_bench: polling with SIGINT/SIGTERM handling, one-shot SQL
// over libpq, the first committed write among survivors, medians and printing.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <csignal>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.hpp"

namespace bench {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline std::atomic<bool> g_interrupted{false};
inline const char* g_name = "bench";  // prefix of log lines

inline void on_signal(int) { g_interrupted = true; }

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

struct Failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Polls `pred` every `every` until it holds or `timeout` passes; returns the time it first held.
inline std::optional<Clock::time_point> poll(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                                             std::chrono::milliseconds every = 20ms) {
  auto end = Clock::now() + timeout;
  for (;;) {
    if (g_interrupted) throw Interrupted();
    if (pred()) return Clock::now();
    if (Clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(every);
  }
}

// Sleeps `d`, waking up for SIGINT/SIGTERM.
inline void sleep_for(Clock::duration d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    if (g_interrupted) throw Interrupted();
    std::this_thread::sleep_for(std::min<Clock::duration>(200ms, end - Clock::now()));
  }
}

inline void log(const std::string& s) {
  std::fprintf(stderr, "[%s] %s\n", g_name, s.c_str());
  std::fflush(stderr);
}

// One connection, one statement; true when it committed.
inline bool try_exec(int port, const std::string& query, int connect_timeout = 2) {
  std::string ci = "host=127.0.0.1 port=" + std::to_string(port) +
                   " user=postgres dbname=postgres connect_timeout=" + std::to_string(connect_timeout) +
                   " password=" + pgwarden::test::kSuperuserPassword;
  PGconn* c = PQconnectdb(ci.c_str());
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  bool ok = false;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, query.c_str());
    ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
  }
  PQfinish(c);
  return ok;
}

// After the leader was killed: probes every survivor every ~10 ms with a new connection and
// `INSERT INTO bench_probe VALUES (now())`; returns when and where the first one committed.
inline std::optional<Clock::time_point> first_write(const std::vector<pgwarden::test::PgwardenMember*>& survivors,
                                                    std::chrono::milliseconds timeout,
                                                    pgwarden::test::PgwardenMember*& where) {
  return poll(
      [&] {
        for (auto* s : survivors)
          if (try_exec(s->pg_port(), "INSERT INTO bench_probe VALUES (now())")) {
            where = s;
            return true;
          }
        return false;
      },
      timeout, 10ms);
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline std::string fmt(double v, bool integral = false, int decimals = 2) {
  if (integral) return std::to_string(std::lround(v));
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

using Results = std::map<std::string, std::vector<double>>;  // figure name -> one value per run

// One figure a bench prints: its name, Patroni 3.0.2's value and the target ("-" when none).
struct Figure {
  Figure(std::string n, std::string p = "-", std::string t = "-", bool count = false, int places = 2)
      : name(std::move(n)), patroni(std::move(p)), target(std::move(t)), integral(count), decimals(places) {}
  std::string name, patroni, target;
  bool integral;  // a count, printed without decimals
  int decimals;   // otherwise printed with this many
};

// "median=<m>  runs=[a, b]", or "median=n/a  runs=[]" when the figure has no value.
inline std::string median_and_runs(const Results& res, const Figure& f) {
  auto it = res.find(f.name);
  if (it == res.end() || it->second.empty()) return "median=n/a  runs=[]";
  std::string out = "median=" + fmt(median(it->second), f.integral, f.decimals) + "  runs=[";
  for (size_t i = 0; i < it->second.size(); ++i)
    out += (i ? ", " : "") + fmt(it->second[i], f.integral, f.decimals);
  return out + "]";
}

// One line per figure: "<label>  <name>  median=..  runs=[..]  patroni=..  target..".
inline void print_figures(const std::string& label, const std::vector<Figure>& figures, const Results& res) {
  for (const auto& f : figures) {
    std::string line = label + "  " + f.name + "  " + median_and_runs(res, f) + "  patroni=" + f.patroni +
                       "  target" + (f.target == "-" ? "=-" : f.target);
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

// SIGINT/SIGTERM set g_interrupted (a bench stops at its next poll and cleans up); SIGPIPE is
// ignored (a member may close a connection while it is killed).
inline void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace bench
