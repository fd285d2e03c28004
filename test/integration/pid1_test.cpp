// pgwarden as PID 1 of a PID namespace, as the timescaledb-single chart runs it: it must
// reap every orphan and stop cleanly on SIGTERM delivered to PID 1.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster_fixture.hpp"

namespace pgwarden::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct ProcInfo {
  int pid;
  int ppid;
  char state;
};

std::vector<ProcInfo> all_processes() {
  std::vector<ProcInfo> out;
  for (auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    ProcInfo p{std::stoi(name), 0, '?'};
    rest >> p.state >> p.ppid;
    out.push_back(p);
  }
  return out;
}

std::vector<ProcInfo> descendants(int root) {
  auto procs = all_processes();
  std::vector<ProcInfo> out;
  std::vector<int> frontier{root};
  while (!frontier.empty()) {
    int parent = frontier.back();
    frontier.pop_back();
    for (auto& p : procs)
      if (p.ppid == parent) {
        out.push_back(p);
        frontier.push_back(p.pid);
      }
  }
  return out;
}

int zombies_under(int root) {
  int n = 0;
  for (auto& p : descendants(root)) n += p.state == 'Z';
  return n;
}

// The namespace's PID 1 is unshare's only child.
int namespace_init(int unshare_pid) {
  for (auto& p : all_processes())
    if (p.ppid == unshare_pid) return p.pid;
  return -1;
}

TEST(Pid1, ReapsOrphansAndStopsCleanlyOnSigterm) {
  EtcdServer etcd;
  TempDir scripts;
  // Every callback leaves an orphan behind: a background child whose parent exits at once,
  // so it is re-parented to PID 1 and becomes a zombie unless PID 1 reaps it.
  std::string script = scripts.file("callback.sh");
  write_file(script, "#!/bin/sh\n(sleep 0.2 &)\necho \"$1\" >> " + scripts.file("calls") + "\n", 0755);
  MemberOptions o;
  o.as_pid1 = true;
  o.callback = script;
  PgwardenMember m(etcd, o);
  m.start();
  ASSERT_TRUE(wait_until([&] { return m.get("/leader").status == 200; }, 90s)) << m.log();
  ASSERT_TRUE(wait_until([&] { return read_file(scripts.file("calls")).find("on_start") != std::string::npos; }, 10s));
  // Orphans exit after 0.2 s; none may stay a zombie.
  EXPECT_TRUE(wait_until([&] { return zombies_under(m.child_pid()) == 0; }, 10s))
      << zombies_under(m.child_pid()) << " zombies";
  int init = namespace_init(m.child_pid());
  ASSERT_GT(init, 0);
  // Postgres was started without PATRONI_* / KUBERNETES_* even here.
  for (auto& p : descendants(init)) {
    std::string cmdline = read_file("/proc/" + std::to_string(p.pid) + "/cmdline");
    if (cmdline.find("postgres") == std::string::npos || cmdline.find("-D") == std::string::npos) continue;
    std::string env = read_file("/proc/" + std::to_string(p.pid) + "/environ");
    EXPECT_EQ(env.find("PATRONI_"), std::string::npos);
    EXPECT_EQ(env.find("KUBERNETES_"), std::string::npos);
  }
  kill(init, SIGTERM);
  auto code = m.stop(0, 60s);  // signal 0: only wait
  ASSERT_TRUE(code) << m.log();
  EXPECT_EQ(*code, 0) << m.log();
  EXPECT_EQ(etcd.get_prefix("/service/itest/").count("/service/itest/leader"), 0u) << m.log();
  EXPECT_NE(m.log().find("leader lock released"), std::string::npos) << m.log();
}

}  // namespace
}  // namespace pgwarden::test
