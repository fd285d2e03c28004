#pragma once
// TCP keep-alive for the long-lived DCS streams (etcd's watch, the Kubernetes watches). A
// stream has no read timeout (an idle cluster sends nothing for hours), so a peer that
// vanished without a FIN or RST (a partitioned host) is found by TCP itself.
#include <chrono>

namespace pgwarden::util {

// Probes after `idle` of silence, every `interval`, `probes` of them unanswered end the
// connection. A non-zero `user_timeout` also ends it when sent data stays unacknowledged
// that long (TCP_USER_TIMEOUT). Failures are ignored: the stream works without keep-alive.
void enable_tcp_keepalive(int fd, std::chrono::seconds idle, std::chrono::seconds interval, int probes,
                          std::chrono::milliseconds user_timeout = std::chrono::milliseconds(0));

}  // namespace pgwarden::util
