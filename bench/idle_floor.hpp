#pragma once
// The idle-CPU floor of a leader's HA cycle on this machine: a loop that does only what a
// cycle cannot leave out, with as little code of its own as possible. Every loop_wait it
// wakes, keeps an etcd lease alive (HTTP/JSON gateway, kept connection), and sends pgwarden's
// state query to PostgreSQL over the unix socket and waits for the answer. (Until 2026-12-07
// it also appended a log line, as a leader then logged every cycle.) ha_bench runs it in a thread beside the members during the idle minute and
// prints its CPU time (CLOCK_THREAD_CPUTIME_ID): on a machine where waking up and system calls
// are slow the floor alone can exceed a target, and the leader's figure minus the floor is
// what pgwarden's own code costs. No JSON library, no HTTP library: a fixed request, read
// until the chunked or sized body ends.
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

namespace bench {

struct FloorResult {
  double cpu_s = 0;  // thread CPU time over the window
  int cycles = 0;
};

class IdleFloor {
 public:
  // `lease_id`: a lease granted for the floor's own use (decimal); `pg_conninfo`: the leader's
  // PostgreSQL over its unix socket.
  IdleFloor(int etcd_port, std::string lease_id, std::string pg_conninfo, const char* state_sql)
      : etcd_port_(etcd_port), lease_(std::move(lease_id)), conninfo_(std::move(pg_conninfo)), sql_(state_sql) {}

  // Runs `window`, one cycle every `loop_wait`; nullopt when etcd or PostgreSQL cannot be reached.
  // `one_wake`: send the keep-alive and the query just before the sleep and read both answers on
  // waking, so that a cycle wakes once (the sleep's end) instead of twice (the sleep's end, then
  // PostgreSQL's answer). It measures what that pipelining would save a daemon's cycle.
  std::optional<FloorResult> run(std::chrono::seconds loop_wait, std::chrono::seconds window,
                                 const std::atomic<bool>& interrupted, bool one_wake = false) {
    const std::string body = "{\"ID\":\"" + lease_ + "\"}";
    const std::string request = "POST /v3/lease/keepalive HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(etcd_port_) +
                                "\r\nContent-Type: application/json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
    int sock = connect_etcd();
    PGconn* pg = PQconnectdb(conninfo_.c_str());
    std::optional<FloorResult> out;
    if (sock >= 0 && PQstatus(pg) == CONNECTION_OK) {
      FloorResult r;
      const double start = thread_cpu_s();
      const auto end = std::chrono::steady_clock::now() + window;
      bool ok = true;
      auto send_both = [&] {
        return send(sock, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()) &&
               PQsendQuery(pg, sql_) == 1;
      };
      auto read_both = [&] {
        bool tuples = false;
        while (PGresult* res = PQgetResult(pg)) {
          tuples = tuples || PQresultStatus(res) == PGRES_TUPLES_OK;
          PQclear(res);
        }
        return tuples && read_reply(sock);
      };
      if (one_wake) ok = send_both();
      while (ok && !interrupted && std::chrono::steady_clock::now() < end) {
        ::poll(nullptr, 0, static_cast<int>(std::chrono::milliseconds(loop_wait).count()));
        if (one_wake) {
          ok = read_both() && send_both();
        } else {
          ok = send(sock, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
          PGresult* res = PQexec(pg, sql_);
          ok = ok && PQresultStatus(res) == PGRES_TUPLES_OK;
          PQclear(res);
          ok = ok && read_reply(sock);
        }
        ++r.cycles;
      }
      if (one_wake && ok) ok = read_both();
      r.cpu_s = thread_cpu_s() - start;
      if (ok) out = r;
    }
    if (sock >= 0) close(sock);
    PQfinish(pg);
    return out;
  }

 private:
  static double thread_cpu_s() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  }

  int connect_etcd() const {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(etcd_port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(s);
      return -1;
    }
    return s;
  }

  // One HTTP/1.1 reply, whole: headers, then Content-Length bytes or chunks up to the last.
  static bool read_reply(int sock) {
    std::string buf;
    char chunk[2048];
    for (;;) {
      ssize_t n = recv(sock, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buf.append(chunk, static_cast<size_t>(n));
      auto head_end = buf.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      if (buf.compare(0, 12, "HTTP/1.1 200") != 0) return false;
      auto cl = buf.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) {
        if (buf.size() >= head_end + 4 + std::stoul(buf.substr(cl + 16))) return true;
      } else if (buf.size() >= 5 && buf.compare(buf.size() - 5, 5, "0\r\n\r\n") == 0) {
        return true;
      }
    }
  }

  int etcd_port_;
  std::string lease_;
  std::string conninfo_;
  const char* sql_;
};

}  // namespace bench
