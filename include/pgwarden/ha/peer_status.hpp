#pragma once
// What the other members say about their WAL position during a leader race. Patroni members
// ask each other over the REST API (GET <api_url>, one attempt, short timeout) and only the
// most advanced eligible replica tries to take the lock. Parsing and the verdict are pure so
// the rules can be tested without sockets; fetching is the only part that does I/O.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"
#include "pgwarden/dcs/cluster.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace pgwarden::ha {

struct PeerStatus {
  std::string name;
  bool reachable = false;      // answered with a JSON object that has xlog (or wal)
  bool in_recovery = true;     // false when xlog.location is set: a running primary
  int64_t wal_position = 0;    // replica: max(received, replayed); primary: xlog.location
  int64_t received = 0, replayed = 0;
  int timeline = 0;
  bool nofailover = false;
  bool watchdog_failed = false;
  double dcs_last_seen = 0;
};

// Reads a status document (the body of GET /patroni). Never fails: anything that is not a
// JSON object with an xlog/wal object gives reachable=false, like Patroni's
// _MemberStatus.unknown().
PeerStatus parse_peer_status(const std::string& name, const std::string& body);

// An api_url split for a request. `host` has no brackets for IPv6 literals.
struct ApiUrl {
  std::string scheme;  // "http" or "https"
  std::string host;
  int port = 0;
  std::string target;  // path (+ query), "/" when the URL has none
};
std::optional<ApiUrl> parse_api_url(const std::string& url);

// How https api_urls are checked, as Patroni's PatroniRequest does it: ctl.* first, then
// restapi.* (so a member shows its own REST certificate to peers that require one).
struct PeerTlsOptions {
  std::string ca_file;    // ctl.cacert or restapi.cafile; empty: the system's CAs
  std::string cert_file;  // ctl.certfile or restapi.certfile; empty: no client certificate
  std::string key_file;   // ctl.keyfile or restapi.keyfile; empty: the key is in cert_file
  std::string key_password;
  // ctl.insecure: no verification at all; with a client certificate the chain is still
  // verified but not the host name (urllib3's cert_reqs/assert_hostname in Patroni).
  bool insecure = false;
};
PeerTlsOptions peer_tls_options(const config::Config& cfg);

// An OpenSSL client context for those options (CA, client certificate and key, insecure),
// shared by every HTTPS client of the project (peer fetches, pgwarden ctl). kInvalid names
// the file that could not be loaded.
Result<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context(const PeerTlsOptions& o);

// GETs every member's api_url concurrently (http or https); the result has one entry per
// member, in the same order. Each request (resolve, connect, TLS handshake, send, receive) is
// bounded by `timeout` overall and the call returns by then too. Members without a usable URL
// are unreachable.
std::vector<PeerStatus> fetch_peer_statuses(const std::vector<dcs::Member>& members,
                                            std::chrono::milliseconds timeout, const PeerTlsOptions& tls = {});

struct HealthVerdict {
  bool healthiest = false;
  std::string reason;
};

// Patroni's _is_healthiest_node rules over already-fetched peer statuses. `leader_last_lsn`
// is cluster.last_lsn (0 when unknown). Unreachable peers, peers tagged nofailover and peers
// whose watchdog failed cannot promote, so they do not count against me.
HealthVerdict is_healthiest(const std::string& me, int64_t my_wal_position, int my_timeline, bool i_am_nofailover,
                            int64_t leader_last_lsn, int64_t maximum_lag_on_failover,
                            const std::vector<PeerStatus>& peers);

}  // namespace pgwarden::ha
