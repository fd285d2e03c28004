#include "support/harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace pgwarden::test {
namespace fs = std::filesystem;
namespace http = boost::beast::http;

namespace {

// Whether a listening socket could bind 127.0.0.1:<port> now (0: any port; the one bound is
// returned through `port`).
bool can_bind(int& port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (ok) {
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return ok;
}

// The lowest port the kernel hands out for outgoing connections (ip_local_port_range).
int ephemeral_low() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768;
  if (!(f >> low)) low = 32768;
  return low;
}

}  // namespace

int free_port() {
  // A test that asks for several ports (three members, each with a REST and a PostgreSQL port)
  // must never get one twice, or two processes race for it: ports given out by this process
  // are skipped. Ports come from below the kernel's ephemeral range, picked at random: a port
  // the kernel hands out for bind(0) is one an outgoing connection (libpq, an etcd client, a
  // test running beside this one) may take before our server binds it.
  static std::mutex mu;
  static std::set<int> given;
  static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(getpid()));
  std::lock_guard<std::mutex> lock(mu);
  const int top = std::min(ephemeral_low(), 32768) - 1, bottom = 10000;
  if (top > bottom) {
    std::uniform_int_distribution<int> pick(bottom, top);
    for (int attempt = 0; attempt < 200; ++attempt) {
      int port = pick(rng);
      if (given.count(port) == 0 && can_bind(port)) {
        given.insert(port);
        return port;
      }
    }
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    int port = 0;
    if (!can_bind(port)) throw std::runtime_error("bind failed");
    if (given.insert(port).second) return port;
  }
  throw std::runtime_error("no free port that was not given out already");
}

bool running_as_root() { return geteuid() == 0; }

namespace {
void chown_postgres(const std::string& path) {
  if (!running_as_root()) return;
  if (passwd* pw = getpwnam("postgres")) {
    if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) { /* best effort */
    }
  }
}
}  // namespace

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-" + std::string(6, 'X');  // mkstemp/mkdtemp template
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
  chmod(path_.c_str(), 0755);
  chown_postgres(path_);
}

TempDir::~TempDir() {
  if (std::getenv("PGWARDEN_KEEP_TEST_DIRS")) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void write_file(const std::string& path, const std::string& content, int mode) {
  {
    std::ofstream f(path, std::ios::trunc);
    f << content;
  }
  chmod(path.c_str(), static_cast<mode_t>(mode));
  chown_postgres(path);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) { return fs::exists(path); }

Child::Child(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string log_path,
             bool as_postgres)
    : log_path_(std::move(log_path)) {
  int logfd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (logfd < 0) throw std::runtime_error("cannot open log " + log_path_);
  chown_postgres(log_path_);
  std::vector<std::string> envs;
  for (auto& [k, v] : env) envs.push_back(k + "=" + v);
  passwd* pw = (as_postgres && running_as_root()) ? getpwnam("postgres") : nullptr;
  if (pw) {
    envs.push_back(std::string("HOME=") + pw->pw_dir);
    envs.push_back("USER=postgres");
  }
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> av;
  for (auto& a : argv) av.push_back(a.data());
  av.push_back(nullptr);
  uid_t uid = pw ? pw->pw_uid : 0;
  gid_t gid = pw ? pw->pw_gid : 0;
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    setpgid(0, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    close_range(3, ~0U, 0);
    if (pw) {
      if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(126);
    }
    // Die with the test process, so a killed or crashed test leaves no etcd or pgwarden.
    // (Set after the credential change, which clears it.)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execvpe(av[0], av.data(), envp.data());
    _exit(127);
  }
  setpgid(pid_, pid_);
  close(logfd);
}

Child::~Child() {
  if (alive()) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    wait(std::chrono::seconds(10));
  }
}

bool Child::alive() {
  if (exit_code_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return false;
  }
  return r == 0;
}

void Child::signal(int sig) {
  if (alive()) kill(pid_, sig);
}

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
  wait_until([&] { return !alive(); }, timeout);
  return exit_code_;
}

std::string Child::log() const { return read_file(log_path_); }

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

HttpReply http_request(const std::string& method, const std::string& host, int port, const std::string& target,
                       const std::string& body, std::chrono::milliseconds timeout) {
  HttpReply reply;
  try {
    boost::asio::io_context ioc;
    boost::beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(host), static_cast<unsigned short>(port));
    stream.connect(ep);
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, host);
    if (!body.empty()) {
      req.body() = body;
      req.prepare_payload();
    }
    http::write(stream, req);
    boost::beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.skip(method == "HEAD");
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream, buf, parser);
    auto& res = parser.get();
    reply.status = static_cast<int>(res.result_int());
    reply.body = res.body();
    for (auto& h : res) {
      std::string name(h.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(h.value());
    }
  } catch (const std::exception&) {
    if (reply.status == 0) reply.body.clear();
  }
  return reply;
}

std::map<std::string, std::string> env_with(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto& [k, v] : extra) env[k] = v;
  return env;
}

EtcdServer::EtcdServer() {
  dir_ = std::make_unique<TempDir>("pgwarden-etcd");
  client_port_ = free_port();
  peer_port_ = free_port();
  std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
  std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  proc_ = std::make_unique<Child>(
      std::vector<std::string>{"etcd", "--name", "test", "--data-dir", dir_->file("data"), "--listen-client-urls",
                               client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
                               "--initial-advertise-peer-urls", peer, "--initial-cluster", "test=" + peer,
                               "--log-level", "warn"},
      env_with({{"ETCD_UNSUPPORTED_ARCH", ""}}), dir_->file("etcd.log"), false);
  if (!wait_until([&] { return ready(); }, std::chrono::seconds(20)))
    throw std::runtime_error("etcd did not start: " + proc_->log());
}

EtcdServer::~EtcdServer() { kill_now(); }

void EtcdServer::kill_now() {
  if (proc_) {
    proc_->signal(SIGKILL);
    proc_->wait(std::chrono::seconds(10));
    proc_.reset();
  }
}

int EtcdServer::pid() const { return proc_ ? proc_->pid() : -1; }

bool EtcdServer::ready() {
  auto r = http_request("GET", "127.0.0.1", client_port_, "/health", "", std::chrono::seconds(1));
  return r.status == 200 && r.body.find("true") != std::string::npos;
}

std::map<std::string, std::string> EtcdServer::get_prefix(const std::string& prefix) {
  std::map<std::string, std::string> out;
  std::string cmd = "ETCDCTL_API=3 etcdctl --endpoints=" + endpoint() + " get --prefix '" + prefix + "' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::string all;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) all.append(buf, n);
  pclose(p);
  std::stringstream ss(all);
  std::string key, value;
  while (std::getline(ss, key) && std::getline(ss, value)) out[key] = value;
  return out;
}

std::string pg_bin_dir() { return "/usr/lib/postgresql/15/bin"; }

}  // namespace pgwarden::test
