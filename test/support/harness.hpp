#pragma once
// Helpers for tests that start real processes on loopback: free ports, temp dirs, children
// that are always stopped (even when a test fails), bounded waits, and a tiny HTTP client.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::test {

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

// True when running as root (CI); children that must not be root then run as `postgres`.
bool running_as_root();

// Creates a fresh directory under /tmp; removed (recursively) on destruction unless
// PGWARDEN_KEEP_TEST_DIRS is set. When running as root it is owned by `postgres`.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "pgwarden-test");
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes a file (mode given), chowned to postgres when root.
void write_file(const std::string& path, const std::string& content, int mode = 0644);
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

// A child process in its own process group, output appended to `log_path`. The destructor
// kills the whole group (SIGKILL) if it still runs.
class Child {
 public:
  // `as_postgres`: drop to the postgres user when running as root.
  Child(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string log_path,
        bool as_postgres);
  ~Child();
  int pid() const { return pid_; }
  bool alive();
  void signal(int sig);
  // Waits for exit; returns the exit code (-signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  std::string log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  int pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// Polls `pred` every 100 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

struct HttpReply {
  int status = 0;  // 0: no connection / no reply
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};
HttpReply http_request(const std::string& method, const std::string& host, int port, const std::string& target,
                       const std::string& body = "", std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The process environment plus `extra`.
std::map<std::string, std::string> env_with(const std::map<std::string, std::string>& extra);

// A real etcd on loopback (random ports, own data dir), killed at destruction.
class EtcdServer {
 public:
  EtcdServer();
  ~EtcdServer();
  int client_port() const { return client_port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }
  bool ready();
  int pid() const;
  // etcdctl get --prefix; key -> value.
  std::map<std::string, std::string> get_prefix(const std::string& prefix);
  void kill_now();

 private:
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Child> proc_;
  int client_port_ = 0;
  int peer_port_ = 0;
};

// Directory with PostgreSQL 15's programs.
std::string pg_bin_dir();

}  // namespace pgwarden::test
