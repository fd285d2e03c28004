// Prints how long one HA decision takes (the pure core): figures, not assertions.
#include <chrono>
#include <cstdio>

#include "pgwarden/ha/decide.hpp"

int main() {
  using namespace pgwarden;
  ha::Snapshot s;
  s.me = "node1";
  s.dcs_ok = true;
  s.cluster.edit().initialize = "7000000000000000001";
  for (int i = 0; i < 5; ++i) {
    dcs::Member m;
    m.name = "node" + std::to_string(i + 1);
    m.data = {{"state", "running"}, {"xlog_location", 1000 + i}, {"role", "replica"}};
    s.cluster.edit().members.push_back(m);
  }
  s.pg.initialized = true;
  s.pg.running = true;
  s.pg.query_ok = true;
  s.pg.in_recovery = true;
  s.pg.wal_position = 1004;
  s.pg.sysid = "7000000000000000001";
  const int n = 200000;
  size_t sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) sink += ha::decide(s).actions.size();
  auto t1 = std::chrono::steady_clock::now();
  double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
  std::printf("decide(): %.0f ns per decision over %d runs (5 members, no leader) [%zu]\n", ns, n, sink);
  return 0;
}
