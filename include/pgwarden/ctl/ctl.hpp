#pragma once
// `pgwarden ctl`: patronictl's commands (list, topology, switchover, failover, restart,
// reload, reinit, pause, resume, show-config, edit-config, history, flush, version) over the
// same configuration file, reading the cluster from the DCS and acting through the members'
// REST APIs (dynamic configuration edits go to the DCS with compare-and-set).
#include <iostream>
#include <string>
#include <vector>

#include "pgwarden/util/process.hpp"

namespace pgwarden::ctl {

struct Io {
  std::istream& in = std::cin;
  std::ostream& out = std::cout;
  std::ostream& err = std::cerr;
};

// `args` are the words after "ctl" (options and the command). Returns the exit status:
// 0 success, 1 failure (the reason on `io.err` as "Error: ..."), 2 bad usage.
int run(const std::vector<std::string>& args, const util::Environment& env, Io io = {});

// The configuration file patronictl would read: PATRONICTL_CONFIG_FILE, else
// $XDG_CONFIG_HOME/patroni/patronictl.yaml (~/.config/... without XDG_CONFIG_HOME).
std::string default_config_path(const util::Environment& env);

}  // namespace pgwarden::ctl
