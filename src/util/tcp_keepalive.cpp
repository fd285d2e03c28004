#include "pgwarden/util/tcp_keepalive.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace pgwarden::util {

void enable_tcp_keepalive(int fd, std::chrono::seconds idle, std::chrono::seconds interval, int probes,
                          std::chrono::milliseconds user_timeout) {
  int on = 1;
  int idle_s = static_cast<int>(idle.count()), interval_s = static_cast<int>(interval.count());
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
  if (user_timeout.count() > 0) {
    auto ms = static_cast<unsigned int>(user_timeout.count());
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
  }
}

}  // namespace pgwarden::util
