#pragma once
// POST /switchover, POST /failover and DELETE /switchover, as Patroni 3.0.2 answers them:
// the request is checked against the cluster as this member sees it, then written to the
// failover key; the HA loops (leader and candidate) do the rest, and the answer waits for the
// lock to move. Independent of the socket layer and of the HA loop: everything it needs
// comes in through SwitchoverDeps, so tests drive it with fakes.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/dcs/cluster.hpp"
#include "pgwarden/ha/node_view.hpp"
#include "pgwarden/ha/peer_status.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::api {

struct SwitchoverDeps {
  // Writes the failover value (JSON object text); `index`: only if unchanged since then.
  std::function<Status(const std::string& value, std::optional<int64_t> index)> write_failover;
  // The freshest cluster view available (a DCS read, or the HA loop's last one).
  std::function<Result<dcs::Cluster>()> read_cluster;
  std::function<bool()> paused;
  std::function<std::vector<ha::PeerStatus>(const std::vector<dcs::Member>&)> fetch_peers;
  std::function<void()> wake_ha;  // the local HA loop acts on the request at once
  std::function<double()> now;    // epoch seconds
  std::function<void(std::chrono::milliseconds)> sleep;
  std::chrono::milliseconds poll_timeout{std::chrono::seconds(30)};
};

struct SwitchoverReply {
  int status = 200;
  std::string body;  // plain text, as Patroni
};

// `action` is "switchover" or "failover" (the path). `body` is the request body.
SwitchoverReply post_switchover(const std::string& action, const std::string& body, const SwitchoverDeps& deps);
SwitchoverReply delete_switchover(const SwitchoverDeps& deps);

}  // namespace pgwarden::api
