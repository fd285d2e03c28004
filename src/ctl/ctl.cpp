// `pgwarden ctl`: the command line and the commands, after Patroni 3.0.2's ctl.py (same
// command and option names, prompts, messages and output formats, so scripts port as they
// are). Reads go through Dcs::peek_cluster; edit-config writes the config key with
// compare-and-set; everything else is a request to a member's REST API.
#include "pgwarden/ctl/ctl.hpp"

#include <CLI/CLI.hpp>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "pgwarden/api/management.hpp"
#include "pgwarden/config/config.hpp"
#include "pgwarden/ctl/format.hpp"
#include "pgwarden/ctl/http.hpp"
#include "pgwarden/dcs/dcs.hpp"
#include "pgwarden/util/log.hpp"
#include "pgwarden/version.hpp"

extern char** environ;

namespace pgwarden::ctl {

using nlohmann::json;

namespace {

// A failure to report as "Error: <message>" with exit status 1 (click's ClickException).
struct CtlError {
  std::string message;
};

[[noreturn]] void fail(const std::string& message) { throw CtlError{message}; }

// --- time

// datetime.now().strftime('%Y-%m-%d %H:%M:%S.%f')[:precision - 7]
std::string timestamp(int precision = 6) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char frac[32];
  std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(us));
  std::string s = std::string(buf) + frac;
  return s.substr(0, s.size() - static_cast<std::size_t>(7 - precision));
}

std::string offset_text(long seconds) {
  char sign = seconds < 0 ? '-' : '+';
  seconds = std::labs(seconds);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, seconds / 3600, (seconds % 3600) / 60);
  return buf;
}

// patronictl's parse_scheduled: "now" (or nothing) is immediate; otherwise an unambiguous
// timestamp, local time when it names no zone, returned as datetime.isoformat() writes it.
std::optional<std::string> parse_scheduled(const std::string& text) {
  if (text.empty() || text == "now") return std::nullopt;
  static const std::regex re(
      R"(^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?)?\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, re))
    fail("Unable to parse scheduled timestamp (" + text + "). It should be in an unambiguous format (e.g. ISO 8601)");
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = m[4].matched ? std::stoi(m[4]) : 0;
  tm.tm_min = m[5].matched ? std::stoi(m[5]) : 0;
  tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
    fail("Unable to parse scheduled timestamp (" + text + "). It should be in an unambiguous format (e.g. ISO 8601)");
  std::string micro = m[7].matched ? m[7].str() : "";
  while (!micro.empty() && micro.size() < 6) micro += "0";
  if (micro == "000000") micro.clear();
  long offset = 0;
  if (m[8].matched) {
    std::string z = m[8];
    if (z != "Z" && z != "z" && z != "UTC") {
      std::string digits;
      for (char c : z)
        if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
      long h = std::stol(digits.substr(0, 2)), mi = digits.size() >= 4 ? std::stol(digits.substr(2, 2)) : 0;
      offset = (z[0] == '-' ? -1 : 1) * (h * 3600 + mi * 60);
    }
  } else {
    std::tm local = tm;
    local.tm_isdst = -1;
    std::mktime(&local);
    offset = local.tm_gmtoff;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return std::string(buf) + (micro.empty() ? "" : "." + micro) + offset_text(offset);
}

std::string next_hour_example() {
  std::time_t t = std::time(nullptr) + 3600;
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M", &tm);
  return buf;
}

// --- the session: configuration, DCS, prompts

struct GlobalOptions {
  std::string config_file;
  bool config_file_given = false;
  std::string dcs_url;
  bool insecure = false;
};

class Session {
 public:
  Session(GlobalOptions g, const util::Environment& env, Io io) : g_(std::move(g)), env_(env), io_(io) {}

  std::ostream& out() { return io_.out; }
  std::ostream& err() { return io_.err; }

  // The configuration document as patronictl reads it (a missing default file is an empty one).
  const json& document() {
    if (doc_) return *doc_;
    json doc = json::object();
    std::ifstream f(g_.config_file);
    if (!f) {
      if (g_.config_file_given)
        fail("Provided config file " + g_.config_file +
             " not existing or no read rights. Check the -c/--config-file parameter");
    } else {
      std::stringstream ss;
      ss << f.rdbuf();
      auto parsed = parse_yaml_text(ss.str());
      if (!parsed) fail(g_.config_file + ": " + parsed.status().message());
      if (parsed->is_object()) doc = *parsed;
      else if (!parsed->is_null()) fail(g_.config_file + ": expected a mapping at the top level");
    }
    if (!g_.dcs_url.empty()) {
      std::string url = g_.dcs_url;
      if (auto p = url.find("://"); p != std::string::npos) {
        std::string scheme = url.substr(0, p);
        if (scheme != "etcd3" && scheme != "etcd" && scheme != "http")
          fail("Unknown dcs scheme: " + scheme + " (pgwarden ctl supports etcd3://host:port)");
        url = url.substr(p + 3);
      }
      if (url.find(':') == std::string::npos) url += ":2379";
      for (const char* k : {"etcd", "etcd3", "kubernetes", "consul", "zookeeper", "exhibitor", "raft"}) doc.erase(k);
      doc["etcd3"] = {{"hosts", url}};
    }
    doc_ = doc;
    return *doc_;
  }

  std::string default_scope() {
    const json& d = document();
    if (auto s = d.find("scope"); s != d.end() && s->is_string()) return s->get<std::string>();
    if (auto it = env_.find("PATRONI_SCOPE"); it != env_.end()) return it->second;
    return "";
  }

  // The typed configuration with `scope` set to the cluster asked for. Sections only the
  // daemon needs (name, restapi.listen, postgresql) get placeholders when absent, as
  // patronictl does not require them.
  config::Config config_for(const std::string& scope) {
    json doc = document();
    if (!scope.empty()) doc["scope"] = scope;
    if (!doc.contains("scope") && !env_.count("PATRONI_SCOPE"))
      fail("no cluster name: give one on the command line or set scope in " + g_.config_file);
    if (!doc.contains("name") && !env_.count("PATRONI_NAME"))
      doc["name"] = doc.contains("scope") ? doc["scope"] : json(env_.at("PATRONI_SCOPE"));
    if (!doc.contains("restapi") || !doc["restapi"].is_object()) doc["restapi"] = json::object();
    if (!doc["restapi"].contains("listen")) doc["restapi"]["listen"] = "127.0.0.1:8008";
    if (!doc.contains("postgresql") || !doc["postgresql"].is_object()) doc["postgresql"] = json::object();
    if (!doc["postgresql"].contains("listen")) doc["postgresql"]["listen"] = "127.0.0.1:5432";
    if (!doc["postgresql"].contains("data_dir")) doc["postgresql"]["data_dir"] = "/nonexistent";
    auto loaded = config::load_from_string(doc.dump(), env_, g_.config_file);
    if (!loaded.config) {
      std::string all;
      for (const auto& e : loaded.errors) all += (all.empty() ? "" : "\n") + e;
      fail("invalid configuration:\n" + all);
    }
    return *loaded.config;
  }

  // The DCS of `scope` (the configured scope when empty) and the cluster read from it.
  struct Opened {
    config::Config cfg;
    std::unique_ptr<dcs::Dcs> dcs;
    dcs::Cluster cluster;
  };
  Opened open(const std::string& scope) {
    Opened o{config_for(scope), nullptr, {}};
    auto d = dcs::make_dcs(o.cfg);
    if (!d) fail("DCS: " + d.status().message());
    o.dcs = std::move(*d);
    auto c = o.dcs->peek_cluster();
    if (!c) fail("cannot read cluster " + o.cfg.scope + " from the DCS: " + c.status().message());
    o.cluster = std::move(*c);
    http_ = http_options(o.cfg, g_.insecure);
    return o;
  }

  Result<HttpResponse> request(const dcs::Member& m, const std::string& method, const std::string& path,
                               const std::optional<json>& body = std::nullopt) {
    std::optional<std::string> text;
    if (body) text = body->dump();
    if (m.api_url().empty()) return Status::Unavailable("member " + m.name + " publishes no api_url");
    return request_member(m.api_url(), method, path, text, http_);
  }

  // click.confirm: "<question> [y/N]: ", anything but y/yes is no (end of input too).
  bool confirm(const std::string& question) {
    io_.out << question << " [y/N]: " << std::flush;
    std::string line;
    if (!std::getline(io_.in, line)) {
      io_.out << "\n";
      return false;
    }
    std::transform(line.begin(), line.end(), line.begin(), [](unsigned char c) { return std::tolower(c); });
    return line == "y" || line == "yes";
  }

  // click.prompt with a default: "<text> [default]: ".
  std::string prompt(const std::string& text, const std::string& def) {
    io_.out << text << " [" << def << "]: " << std::flush;
    std::string line;
    if (!std::getline(io_.in, line)) fail("Aborted!");
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    return line.empty() ? def : line;
  }

  void print_members(const dcs::Cluster& c, const std::string& name, bool extended = false,
                     const std::string& fmt = "pretty") {
    ListOptions lo;
    lo.cluster_name = name;
    lo.sysid = c.initialize;
    lo.extended = extended;
    lo.fmt = fmt;
    io_.out << render_member_list(api::cluster_as_json(c, ""), lo);
  }

 private:
  GlobalOptions g_;
  const util::Environment& env_;
  Io io_;
  std::optional<json> doc_;
  HttpOptions http_;
};

std::string body_text(const HttpResponse& r) { return r.body; }

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

const dcs::Member* leader_member(const dcs::Cluster& c) {
  return c.leader && !c.leader->name.empty() ? c.member(c.leader->name) : nullptr;
}

// get_all_members: the leader for leader/primary/master/standby-leader, the others for
// replica/standby, everybody for any.
std::vector<const dcs::Member*> members_with_role(const dcs::Cluster& c, std::string role) {
  std::vector<const dcs::Member*> out;
  if (role == "leader" || role == "master" || role == "primary" || role == "standby-leader") {
    const dcs::Member* l = leader_member(c);
    if (!l) return out;
    std::string data_role = l->role();
    bool ok = role == "leader" || (role == "standby-leader" && data_role != "master" && data_role != "primary") ||
              ((role == "master" || role == "primary") && data_role != "standby_leader");
    if (ok) out.push_back(l);
    return out;
  }
  const std::string leader_name = c.leader ? c.leader->name : "";
  for (const auto& m : c.members)
    if (role == "any" || ((role == "replica" || role == "standby") && m.name != leader_name)) out.push_back(&m);
  return out;
}

// get_all_members_leader_first: members with an api_url, the leader first.
std::vector<const dcs::Member*> leader_first(const dcs::Cluster& c) {
  std::vector<const dcs::Member*> out;
  const dcs::Member* l = leader_member(c);
  if (l && !l->api_url().empty()) out.push_back(l);
  for (const auto& m : c.members)
    if (!m.api_url().empty() && (!l || m.name != l->name)) out.push_back(&m);
  return out;
}

void confirm_members_action(Session& s, const std::vector<const dcs::Member*>& members, bool force,
                            const std::string& action, const std::optional<std::string>& scheduled_at = std::nullopt) {
  if (force) return;
  std::vector<std::string> names;
  for (auto* m : members) names.push_back(m->name);
  if (scheduled_at) {
    if (!s.confirm("Are you sure you want to schedule " + action + " of members " + join(names, ", ") + " at " +
                   *scheduled_at + "?"))
      fail("Aborted scheduled " + action);
  } else if (!s.confirm("Are you sure you want to " + action + " members " + join(names, ", ") + "?")) {
    fail("Aborted " + action);
  }
}

// get_members: the members an action applies to, after showing the cluster.
std::vector<const dcs::Member*> pick_members(Session& s, const dcs::Cluster& c, const std::string& cluster_name,
                                             std::vector<std::string> names, const std::string& role, bool force,
                                             const std::string& action, bool ask_confirmation = true) {
  auto members = members_with_role(c, role);
  std::vector<std::string> candidates;
  for (auto* m : members) candidates.push_back(m->name);
  if (names.empty() && candidates.empty()) fail(cluster_name + " cluster doesn't have any members");
  s.print_members(c, cluster_name);
  for (const auto& n : names) {
    if (!c.member(n)) fail(n + " is not a member of cluster " + cluster_name);
    if (std::find(candidates.begin(), candidates.end(), n) == candidates.end())
      fail("No " + role + " among provided members (" + n + ")");
  }
  if (names.empty() && action != "reinitialize") names = candidates;
  if (names.empty() && !force)
    names = {s.prompt("Which member do you want to " + action + " [" + join(candidates, ", ") + "]?", "")};
  std::vector<const dcs::Member*> picked;
  for (const auto& n : names) {
    auto it = std::find_if(members.begin(), members.end(), [&](const dcs::Member* m) { return m->name == n; });
    if (it == members.end()) fail(n + " is not a member of cluster");
    if (std::find(picked.begin(), picked.end(), *it) == picked.end()) picked.push_back(*it);
  }
  if (picked.empty()) fail("No member given to " + action);
  if (ask_confirmation) confirm_members_action(s, picked, force, action);
  return picked;
}

// restart/reload/reinit/flush take `[cluster_name] member...` like patronictl's
// `<cluster_name> <member...>`: a first word equal to the configured scope is the cluster.
std::pair<std::string, std::vector<std::string>> split_cluster_and_members(Session& s, std::vector<std::string> words) {
  std::string scope = s.default_scope();
  if (!words.empty() && (words[0] == scope || scope.empty())) {
    std::string name = words[0];
    words.erase(words.begin());
    return {name, words};
  }
  return {"", words};
}

// --- commands

int cmd_list(Session& s, std::vector<std::string> names, bool extended, bool ts, const std::string& fmt, bool W,
             double watch) {
  if (names.empty()) {
    std::string scope = s.default_scope();
    if (scope.empty()) {
      s.err() << "Listing members: No cluster names were provided\n";
      return 0;
    }
    names = {scope};
  }
  if (W && watch <= 0) watch = 2;
  for (;;) {
    if (watch > 0) s.out() << "\033[H\033[2J";
    if (ts) s.out() << timestamp(0) << "\n";
    for (const auto& n : names) {
      auto o = s.open(n);
      s.print_members(o.cluster, o.cfg.scope, extended, fmt);
    }
    if (watch <= 0) return 0;
    s.out() << std::flush;
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(watch * 1000)));
  }
}

int cmd_failover(Session& s, const std::string& action, const std::string& cluster_name, std::optional<std::string> leader,
                 std::optional<std::string> candidate, bool force, std::optional<std::string> scheduled) {
  auto o = s.open(cluster_name);
  const std::string name = o.cfg.scope;
  const dcs::Cluster& c = o.cluster;
  s.out() << "Current cluster topology\n";
  s.print_members(c, name);
  const dcs::Member* lm = leader_member(c);
  if (action == "switchover" && !(c.leader && !c.leader->name.empty())) fail("This cluster has no leader");

  if (!leader) {
    if (force || action == "failover") {
      if (c.leader && !c.leader->name.empty()) leader = c.leader->name;
    } else {
      bool standby = c.config && c.config->contains("standby_cluster") && !(*c.config)["standby_cluster"].is_null();
      leader = s.prompt(standby ? "Standby Leader" : "Primary", c.leader->name);
    }
  }
  if (leader && c.leader && c.leader->name != *leader)
    fail("Member " + *leader + " is not the leader of cluster " + name);

  std::vector<std::string> candidates;
  for (const auto& m : c.members)
    if ((!leader || m.name != *leader) && !m.nofailover()) candidates.push_back(m.name);
  std::sort(candidates.begin(), candidates.end());
  if (candidates.empty()) fail("No candidates found to " + action + " to");

  if (!candidate && !force) {
    std::string list = "[";
    for (std::size_t i = 0; i < candidates.size(); ++i) list += (i ? ", '" : "'") + candidates[i] + "'";
    list += "]";
    std::string answer = s.prompt("Candidate " + list, "");
    if (!answer.empty()) candidate = answer;
  }
  if (action == "failover" && (!candidate || candidate->empty()))
    fail("Failover could be performed only to a specific candidate");
  std::string title = action;
  title[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(title[0])));
  if (candidate && leader && *candidate == *leader) fail(title + " target and source are the same.");
  if (candidate && std::find(candidates.begin(), candidates.end(), *candidate) == candidates.end()) {
    if (c.member(*candidate)) fail("Member " + *candidate + " cannot be a candidate: it is tagged nofailover");
    fail("Member " + *candidate + " does not exist in cluster " + name);
  }

  std::optional<std::string> scheduled_at;
  if (action == "switchover") {
    if (!scheduled && !force)
      scheduled = s.prompt("When should the switchover take place (e.g. " + next_hour_example() + " ) ", "now");
    scheduled_at = parse_scheduled(scheduled.value_or(""));
    if (scheduled_at && c.is_paused()) fail("Can't schedule switchover in the paused state");
  }

  if (!force) {
    std::string demote = leader ? ", demoting current leader " + *leader : "";
    if (scheduled_at) {
      if (!s.confirm("Are you sure you want to schedule " + action + " of cluster " + name + " at " + *scheduled_at +
                     demote + "?"))
        fail("Aborting scheduled " + action);
    } else if (!s.confirm("Are you sure you want to " + action + " cluster " + name + demote + "?")) {
      fail("Aborting " + action);
    }
  }

  json body = {{"leader", leader ? json(*leader) : json(nullptr)},
               {"candidate", candidate ? json(*candidate) : json(nullptr)},
               {"scheduled_at", scheduled_at ? json(*scheduled_at) : json(nullptr)}};
  const dcs::Member* target = lm ? lm : (candidate ? c.member(*candidate) : nullptr);
  Result<HttpResponse> r = target ? s.request(*target, "POST", "/" + action, body)
                                  : Result<HttpResponse>(Status::Unavailable("no member to ask"));
  if (r && r->status == 501 && action == "switchover" &&
      r->body.find("Server does not support this operation") != std::string::npos)
    r = s.request(*target, "POST", "/failover", body);
  if (r) {
    if (r->status != 200 && r->status != 202)
      fail(title + " failed, details: " + std::to_string(r->status) + ", " + body_text(*r));
    s.out() << timestamp() << " " << r->body << "\n";
  } else {
    // The REST API could not be reached: write the failover key for the HA loops directly.
    s.err() << "Could not reach " << (target ? target->name : std::string("any member")) << ": "
            << r.status().message() << "\n";
    s.out() << timestamp() << " Could not " << action << " using Patroni api, falling back to DCS\n";
    json value = json::object();
    if (leader) value["leader"] = *leader;
    if (candidate) value["member"] = *candidate;
    if (scheduled_at) value["scheduled_at"] = *scheduled_at;
    if (Status st = o.dcs->set_failover_value(value.dump(), std::nullopt); !st)
      fail("cannot write the failover key: " + st.message());
  }
  auto after = o.dcs->peek_cluster();
  if (after) s.print_members(*after, name);
  return 0;
}

bool valid_pg_version(const std::string& v) {
  static const std::regex re(R"(^\d+(\.\d+){0,2}$)");
  return std::regex_match(v, re);
}

int cmd_restart(Session& s, std::vector<std::string> words, const std::string& role_opt, bool any,
                std::optional<std::string> scheduled, std::optional<std::string> version, bool pending,
                std::optional<std::string> timeout, bool force) {
  auto [cluster_name, names] = split_cluster_and_members(s, words);
  auto o = s.open(cluster_name);
  const std::string role = role_opt.empty() ? "any" : role_opt;
  auto members = pick_members(s, o.cluster, o.cfg.scope, names, role, force, "restart", false);
  if (!scheduled && !force)
    scheduled = s.prompt("When should the restart take place (e.g. " + next_hour_example() + ") ", "now");
  auto scheduled_at = parse_scheduled(scheduled.value_or(""));
  confirm_members_action(s, members, force, "restart", scheduled_at);
  if (any && members.size() > 1) {
    std::mt19937 rng(std::random_device{}());
    members = {members[std::uniform_int_distribution<std::size_t>(0, members.size() - 1)(rng)]};
  }
  if (!version && !force)
    version = s.prompt("Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ", "");
  json content = json::object();
  if (pending) content["restart_pending"] = true;
  if (version && !version->empty()) {
    if (!valid_pg_version(*version)) fail(*version + " is not a valid PostgreSQL version");
    content["postgres_version"] = *version;
  }
  if (scheduled_at) {
    if (o.cluster.is_paused()) fail("Can't schedule restart in the paused state");
    content["schedule"] = *scheduled_at;
  }
  if (timeout) content["timeout"] = *timeout;
  bool failed = false;
  for (auto* m : members) {
    if (content.contains("schedule") && force && m->data.contains("scheduled_restart")) {
      auto d = s.request(*m, "DELETE", "/restart");
      if (d && d->status >= 400)
        s.out() << "Failed: flush scheduled restart for member " << m->name << ", status code=" << d->status << ", ("
                << d->body << ")\n";
    }
    auto r = s.request(*m, "POST", "/restart", content);
    if (!r) {
      s.out() << "Failed: restart for member " << m->name << ", " << r.status().message() << "\n";
      failed = true;
    } else if (r->status == 200) {
      s.out() << "Success: restart on member " << m->name << "\n";
    } else if (r->status == 202) {
      s.out() << "Success: restart scheduled on member " << m->name << "\n";
    } else if (r->status == 409) {
      s.out() << "Failed: another restart is already scheduled on member " << m->name << "\n";
      failed = true;
    } else {
      s.out() << "Failed: restart for member " << m->name << ", status code=" << r->status << ", (" << r->body << ")\n";
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

int cmd_reload(Session& s, std::vector<std::string> words, const std::string& role_opt, bool force) {
  auto [cluster_name, names] = split_cluster_and_members(s, words);
  auto o = s.open(cluster_name);
  auto members = pick_members(s, o.cluster, o.cfg.scope, names, role_opt.empty() ? "any" : role_opt, force, "reload");
  int loop_wait = o.cfg.dynamic.loop_wait;
  if (o.cluster.config && o.cluster.config->contains("loop_wait") && (*o.cluster.config)["loop_wait"].is_number())
    loop_wait = (*o.cluster.config)["loop_wait"].get<int>();
  bool failed = false;
  for (auto* m : members) {
    auto r = s.request(*m, "POST", "/reload");
    if (!r) {
      s.out() << "Failed: reload for member " << m->name << ", " << r.status().message() << "\n";
      failed = true;
    } else if (r->status == 200) {
      s.out() << "No changes to apply on member " << m->name << "\n";
    } else if (r->status == 202) {
      s.out() << "Reload request received for member " << m->name << " and will be processed within " << loop_wait
              << " seconds\n";
    } else {
      s.out() << "Failed: reload for member " << m->name << ", status code=" << r->status << ", (" << r->body << ")\n";
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

int cmd_reinit(Session& s, std::vector<std::string> words, bool force, bool wait) {
  auto [cluster_name, names] = split_cluster_and_members(s, words);
  auto o = s.open(cluster_name);
  auto members = pick_members(s, o.cluster, o.cfg.scope, names, "replica", force, "reinitialize");
  std::vector<const dcs::Member*> waiting;
  bool failed = false;
  for (auto* m : members) {
    json body = {{"force", force}};
    for (;;) {
      auto r = s.request(*m, "POST", "/reinitialize", body);
      if (!r) {
        s.out() << "Failed: reinitialize for member " << m->name << ", " << r.status().message() << "\n";
        failed = true;
        break;
      }
      if (r->status < 400) {
        s.out() << "Success: reinitialize for member " << m->name << "\n";
        if (wait) waiting.push_back(m);
        break;
      }
      s.out() << "Failed: reinitialize for member " << m->name << ", status code=" << r->status << ", (" << r->body
              << ")\n";
      if (r->body.ends_with(" already in progress") && !body["force"].get<bool>() &&
          s.confirm("Do you want to cancel it and reinitialize anyway?")) {
        body["force"] = true;
        continue;
      }
      failed = true;
      break;
    }
  }
  std::vector<std::string> shown;
  while (!waiting.empty()) {
    std::vector<std::string> names_now;
    for (auto* m : waiting) names_now.push_back(m->name);
    if (names_now != shown) {
      s.out() << "Waiting for reinitialize to complete on: " << join(names_now, ", ") << "\n" << std::flush;
      shown = names_now;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
    for (auto it = waiting.begin(); it != waiting.end();) {
      auto r = s.request(**it, "GET", "/patroni");
      std::string state;
      if (r) {
        auto doc = json::parse(r->body, nullptr, false);
        if (doc.is_object()) state = doc.value("state", "");
      }
      if (r && state != "creating replica") {
        s.out() << "Reinitialize is completed on: " << (*it)->name << "\n";
        it = waiting.erase(it);
      } else {
        ++it;
      }
    }
  }
  return failed ? 1 : 0;
}

// Whether a member runs with `paused` now: its status document says so (pgwarden and Patroni),
// or, when its REST API cannot be asked, its member key (Patroni writes "pause" there).
bool member_shows_pause(Session& s, const dcs::Member& m, bool paused) {
  auto r = s.request(m, "GET", "/patroni");
  if (r) {
    auto doc = json::parse(r->body, nullptr, false);
    if (doc.is_object()) return doc.value("pause", false) == paused;
  }
  return m.data.value("pause", false) == paused;
}

int cmd_toggle_pause(Session& s, const std::string& cluster_name, bool paused, bool wait) {
  auto o = s.open(cluster_name);
  const dcs::Cluster& c = o.cluster;
  if (c.is_paused() == paused) fail(std::string("Cluster is ") + (paused ? "already" : "not") + " paused");
  const std::string verb = paused ? "pause" : "resume";
  const std::string done = paused ? "paused" : "resumed";
  for (auto* m : leader_first(c)) {
    auto r = s.request(*m, "PATCH", "/config", json{{"pause", paused ? json(true) : json(nullptr)}});
    if (!r) {
      s.err() << "Member " << m->name << " is not accessible: " << r.status().message() << "\n";
      continue;
    }
    if (r->status != 200)
      fail("Failed: " + verb + " cluster management status code=" + std::to_string(r->status) + ", (" + r->body + ")");
    if (!wait) {
      s.out() << "Success: cluster management is " << done << "\n";
      return 0;
    }
    s.out() << "'" << verb << "' request sent, waiting until it is recognized by all nodes\n" << std::flush;
    int loop_wait = o.cfg.dynamic.loop_wait;
    if (c.config && c.config->contains("loop_wait") && (*c.config)["loop_wait"].is_number())
      loop_wait = (*c.config)["loop_wait"].get<int>();
    std::set<std::string> old;
    for (const auto& mm : c.members)
      if (!mm.api_url().empty()) old.insert(mm.name);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(loop_wait + 1);
    std::vector<std::string> remaining;
    for (;;) {
      remaining.clear();
      auto now = o.dcs->peek_cluster();
      if (now) {
        for (const auto& mm : now->members)
          if (old.count(mm.name) && !member_shows_pause(s, mm, paused)) remaining.push_back(mm.name);
      } else {
        remaining = {"(the DCS)"};
      }
      if (remaining.empty() || std::chrono::steady_clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (!remaining.empty()) {
      s.out() << join(remaining, ", ") << " members didn't recognized pause state after " << loop_wait << " seconds\n";
      return 1;
    }
    s.out() << "Success: cluster management is " << done << "\n";
    return 0;
  }
  fail("Can not find accessible cluster member");
}

std::string read_file_or_stdin(Session& s, const std::string& file, std::istream& in) {
  (void)s;
  std::stringstream ss;
  if (file == "-") {
    ss << in.rdbuf();
  } else {
    std::ifstream f(file);
    if (!f) fail("cannot read " + file);
    ss << f.rdbuf();
  }
  return ss.str();
}

json apply_yaml_file(const json& data, const std::string& text, const std::string& file) {
  auto parsed = parse_yaml_text(text);
  if (!parsed) fail(file + ": " + parsed.status().message());
  json changed = data.is_object() ? data : json::object();
  if (parsed->is_object()) api::patch_config(changed, *parsed);
  else if (!parsed->is_null()) fail(file + ": expected a mapping");
  return changed;
}

// invoke_editor: $EDITOR, else editor or vi from PATH, on a temporary file.
std::string edit_in_editor(const std::string& before, const std::string& cluster_name, const util::Environment& env) {
  std::string editor;
  if (auto it = env.find("EDITOR"); it != env.end() && !it->second.empty()) editor = it->second;
  if (editor.empty())
    for (const char* e : {"editor", "vi"}) {
      std::string p = util::find_program(e, "", env);
      if (!p.empty() && access(p.c_str(), X_OK) == 0) {
        editor = p;
        break;
      }
    }
  if (editor.empty()) fail("EDITOR environment variable is not set. editor or vi are not available");
  // mkstemps replaces the six characters before the suffix.
  std::string path = "/tmp/" + cluster_name + "-config-" + std::string(6, 'X') + ".yaml";
  std::vector<char> tmpl(path.begin(), path.end());
  tmpl.push_back('\0');
  int fd = mkstemps(tmpl.data(), 5);
  if (fd < 0) fail("cannot create a temporary file");
  path = tmpl.data();
  if (write(fd, before.data(), before.size()) != static_cast<ssize_t>(before.size())) {
    close(fd);
    unlink(path.c_str());
    fail("cannot write " + path);
  }
  close(fd);
  std::vector<char*> argv = {editor.data(), path.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, editor.c_str(), nullptr, nullptr, argv.data(), environ);
  int status = 0;
  if (rc == 0) waitpid(pid, &status, 0);
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  unlink(path.c_str());
  if (rc != 0) fail("cannot start the editor " + editor);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("Editor exited with return code " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)));
  return ss.str();
}

int cmd_edit_config(Session& s, const std::string& cluster_name, bool force, bool quiet,
                    const std::vector<std::string>& kv, const std::vector<std::string>& pg, const std::string& apply_file,
                    const std::string& replace_file, std::istream& in, const util::Environment& env) {
  auto o = s.open(cluster_name);
  const json before = o.cluster.config && o.cluster.config->is_object() ? *o.cluster.config : json::object();
  const std::string before_text = to_yaml(before);
  bool requested = false;
  json changed = before;
  if (!replace_file.empty()) {
    changed = apply_yaml_file(json::object(), read_file_or_stdin(s, replace_file, in), replace_file);
    requested = true;
  }
  if (!apply_file.empty()) {
    changed = apply_yaml_file(changed, read_file_or_stdin(s, apply_file, in), apply_file);
    requested = true;
  }
  if (!kv.empty() || !pg.empty()) {
    auto r = apply_set_pairs(changed, kv, pg);
    if (!r) fail(r.status().message());
    changed = *r;
    requested = true;
  }
  if (!requested) {
    auto parsed = parse_yaml_text(edit_in_editor(before_text, o.cfg.scope, env));
    if (!parsed) fail("the edited configuration is not valid YAML: " + parsed.status().message());
    changed = parsed->is_null() ? json::object() : *parsed;
    if (!changed.is_object()) fail("the edited configuration must be a mapping");
  }
  if (changed == before) {
    if (!quiet) s.out() << "Not changed\n";
    return 0;
  }
  if (!quiet) s.out() << unified_diff(before_text, to_yaml(changed));
  if ((apply_file == "-" || replace_file == "-") && !force) {
    s.out() << "Use --force option to apply changes\n";
    return 0;
  }
  auto problems = api::validate_dynamic_config(changed);
  if (!problems.empty()) fail("the new configuration is not valid:\n" + join(problems, "\n"));
  if (force || s.confirm("Apply these changes?")) {
    Status st = o.dcs->set_config_value(changed.dump(), o.cluster.config_index);
    if (st.code() == Code::kConflict) fail("Config modification aborted due to concurrent changes");
    if (!st) fail("cannot write the configuration: " + st.message());
    s.out() << "Configuration changed\n";
  }
  return 0;
}

std::string render_table(const Table& t, const std::string& fmt) {
  if (fmt == "json") return render_json(t, false);
  if (fmt == "yaml" || fmt == "yml") return render_yaml(t, false);
  if (fmt == "tsv") return render_tsv(t);
  return render_pretty(t);
}

int cmd_flush(Session& s, std::vector<std::string> words, const std::string& role_opt, bool force) {
  if (words.empty()) fail("Missing argument: restart or switchover");
  std::string target = words.back();
  words.pop_back();
  if (target != "restart" && target != "switchover") fail("flush: the last argument must be restart or switchover");
  auto [cluster_name, names] = split_cluster_and_members(s, words);
  auto o = s.open(cluster_name);
  if (target == "restart") {
    bool failed = false;
    for (auto* m : pick_members(s, o.cluster, o.cfg.scope, names, role_opt.empty() ? "any" : role_opt, force, "flush")) {
      if (!m->data.contains("scheduled_restart")) {
        s.out() << "No scheduled restart for member " << m->name << "\n";
        continue;
      }
      auto r = s.request(*m, "DELETE", "/restart");
      if (r && r->status < 400) {
        s.out() << "Success: flush scheduled restart for member " << m->name << "\n";
      } else {
        s.out() << "Failed: flush scheduled restart for member " << m->name << ", "
                << (r ? "status code=" + std::to_string(r->status) + ", (" + r->body + ")" : r.status().message()) << "\n";
        failed = true;
      }
    }
    return failed ? 1 : 0;
  }
  const auto& f = o.cluster.failover;
  if (!f || !f->is_object() || f->value("scheduled_at", json()).is_null() || f->value("scheduled_at", json()) == "") {
    s.out() << "No pending scheduled switchover\n";
    return 0;
  }
  for (auto* m : leader_first(o.cluster)) {
    auto r = s.request(*m, "DELETE", "/switchover");
    if (!r) {
      s.err() << "Member " << m->name << " is not accessible: " << r.status().message() << "\n";
      continue;
    }
    if (r->status == 200 || r->status == 404) {
      s.out() << (r->status == 200 ? "Success: " : "Failed: ") << r->body << "\n";
      return r->status == 200 ? 0 : 1;
    }
    s.out() << "Failed: member=" << m->name << ", status_code=" << r->status << ", (" << r->body << ")\n";
  }
  s.out() << timestamp() << " Could not find any accessible member of cluster " << o.cfg.scope << "\n";
  if (Status st = o.dcs->set_failover_value("{}", o.cluster.failover_index); !st)
    fail("cannot clear the failover key: " + st.message());
  return 0;
}

std::string format_pg_version(int64_t v) {
  if (v < 100000) return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  return std::to_string(v / 10000) + "." + std::to_string(v % 100);
}

int cmd_version(Session& s, std::vector<std::string> words) {
  s.out() << "pgwarden ctl version " << kVersion << " (patronictl " << kPatroniCompatVersion << " compatible)\n";
  if (words.empty()) return 0;
  std::string cluster_name = words[0];
  std::vector<std::string> names(words.begin() + 1, words.end());
  s.out() << "\n";
  auto o = s.open(cluster_name);
  for (const auto& m : o.cluster.members) {
    if (m.api_url().empty() || (!names.empty() && std::find(names.begin(), names.end(), m.name) == names.end()))
      continue;
    auto r = s.request(m, "GET", "/patroni");
    auto doc = r ? json::parse(r->body, nullptr, false) : json();
    if (!doc.is_object()) {
      s.out() << m.name << ": failed to get version: " << (r ? "unexpected reply" : r.status().message()) << "\n";
      continue;
    }
    std::string version = doc.contains("patroni") ? cell_text(doc["patroni"].value("version", json(""))) : "";
    std::string pg = doc.contains("server_version") && doc["server_version"].is_number_integer()
                         ? " PostgreSQL " + format_pg_version(doc["server_version"].get<int64_t>())
                         : "";
    s.out() << m.name << ": Patroni " << version << pg << "\n";
  }
  return 0;
}

}  // namespace

std::string default_config_path(const util::Environment& env) {
  if (auto it = env.find("PATRONICTL_CONFIG_FILE"); it != env.end() && !it->second.empty()) return it->second;
  std::string base;
  if (auto it = env.find("XDG_CONFIG_HOME"); it != env.end() && !it->second.empty()) base = it->second;
  else if (auto h = env.find("HOME"); h != env.end()) base = h->second + "/.config";
  else base = "~/.config";
  return base + "/patroni/patronictl.yaml";
}

int run(const std::vector<std::string>& args, const util::Environment& env, Io io) {
  CLI::App app{"pgwarden ctl: patronictl-compatible control of a pgwarden (or Patroni) cluster", "pgwarden ctl"};
  app.require_subcommand(1);
  GlobalOptions g;
  app.add_option("-c,--config-file", g.config_file, "Configuration file (default: $PATRONICTL_CONFIG_FILE or " +
                                                        std::string("~/.config/patroni/patronictl.yaml)"));
  app.add_option("-d,--dcs-url,--dcs", g.dcs_url, "The DCS connect url (etcd3://host:port)");
  app.add_flag("-k,--insecure", g.insecure, "Allow connections to SSL sites without certs");

  // Shared option holders (one subcommand runs).
  std::vector<std::string> words, kv, pg;
  std::string fmt = "pretty", role, apply_file, replace_file;
  std::optional<std::string> leader, candidate, scheduled, pg_version, timeout;
  bool force = false, extended = false, ts = false, W = false, wait = false, quiet = false, any = false, pending = false;
  double watch = 0;

  auto add_format = [&](CLI::App* c) {
    c->add_option("-f,--format", fmt, "Output format (pretty, tsv, json, yaml)")
        ->check(CLI::IsMember({"pretty", "tsv", "json", "yaml", "yml"}));
  };
  auto add_force = [&](CLI::App* c) { c->add_flag("--force", force, "Do not ask for confirmation at any point"); };
  auto roles = CLI::IsMember({"leader", "primary", "standby-leader", "replica", "standby", "any", "master"});

  auto* list = app.add_subcommand("list", "List the members of a cluster");
  list->add_option("cluster_names", words, "Clusters (default: the configured scope)");
  list->add_flag("-e,--extended", extended, "Show some extra information");
  list->add_flag("-t,--timestamp", ts, "Print timestamp");
  add_format(list);
  list->add_flag("-W", W, "Auto update the screen every 2 seconds");
  list->add_option("-w,--watch", watch, "Auto update the screen every X seconds");

  auto* topology = app.add_subcommand("topology", "Prints ASCII topology for given cluster");
  topology->add_option("cluster_names", words, "Clusters (default: the configured scope)");
  topology->add_flag("-W", W, "Auto update the screen every 2 seconds");
  topology->add_option("-w,--watch", watch, "Auto update the screen every X seconds");

  auto* switchover = app.add_subcommand("switchover", "Switchover to a replica");
  switchover->add_option("cluster_name", words, "Cluster (default: the configured scope)")->expected(0, 1);
  switchover->add_option("--leader,--primary,--master", leader, "The name of the current leader");
  switchover->add_option("--candidate", candidate, "The name of the candidate");
  switchover->add_option("--scheduled", scheduled, "Timestamp of a scheduled switchover (e.g. ISO 8601)");
  add_force(switchover);

  auto* failover = app.add_subcommand("failover", "Failover to a replica");
  failover->add_option("cluster_name", words, "Cluster (default: the configured scope)")->expected(0, 1);
  failover->add_option("--leader,--primary,--master", leader, "The name of the current leader");
  failover->add_option("--candidate", candidate, "The name of the candidate");
  add_force(failover);

  auto* restart = app.add_subcommand("restart", "Restart cluster members");
  restart->add_option("members", words, "[cluster_name] member...");
  restart->add_option("-r,--role", role, "Restart only members with this role")->check(roles);
  restart->add_flag("--any", any, "Restart a single member only");
  restart->add_option("--scheduled", scheduled, "Timestamp of a scheduled restart (e.g. ISO 8601)");
  restart->add_option("--pg-version", pg_version, "Restart if the PostgreSQL version is less than provided");
  restart->add_flag("--pending", pending, "Restart if pending");
  restart->add_option("--timeout", timeout, "Fail over if restarting takes longer than this");
  add_force(restart);

  auto* reload = app.add_subcommand("reload", "Reload cluster member configuration");
  reload->add_option("members", words, "[cluster_name] member...");
  reload->add_option("-r,--role", role, "Reload only members with this role")->check(roles);
  add_force(reload);

  auto* reinit = app.add_subcommand("reinit", "Reinitialize cluster member");
  reinit->add_option("members", words, "[cluster_name] member...");
  reinit->add_flag("--wait", wait, "Wait until reinitialization completes");
  add_force(reinit);

  auto* pause = app.add_subcommand("pause", "Disable auto failover");
  pause->add_option("cluster_name", words, "Cluster (default: the configured scope)")->expected(0, 1);
  pause->add_flag("--wait", wait, "Wait until pause is applied on all nodes");
  add_force(pause);
  auto* resume = app.add_subcommand("resume", "Resume auto failover");
  resume->add_option("cluster_name", words, "Cluster (default: the configured scope)")->expected(0, 1);
  resume->add_flag("--wait", wait, "Wait until pause is cleared on all nodes");
  add_force(resume);

  auto* show_config = app.add_subcommand("show-config", "Show cluster configuration");
  show_config->add_option("cluster_name", words, "Cluster (default: the configured scope)")->expected(0, 1);

  auto* edit_config = app.add_subcommand("edit-config", "Edit cluster configuration");
  edit_config->add_option("cluster_name", words, "Cluster (default: the configured scope)")->expected(0, 1);
  edit_config->add_flag("-q,--quiet", quiet, "Do not show changes");
  edit_config->add_option("-s,--set", kv, "Set specific configuration value (key.path=yaml value); repeatable");
  edit_config->add_option("-p,--pg", pg, "Set a PostgreSQL parameter (name=value); repeatable");
  edit_config->add_option("--apply", apply_file, "Apply configuration from file. Use - for stdin.");
  edit_config->add_option("--replace", replace_file, "Replace the configuration with a file. Use - for stdin.");
  add_force(edit_config);

  auto* history = app.add_subcommand("history", "Show the history of failovers/switchovers");
  history->add_option("cluster_name", words, "Cluster (default: the configured scope)")->expected(0, 1);
  add_format(history);

  auto* flush = app.add_subcommand("flush", "Discard scheduled events");
  flush->add_option("args", words, "[cluster_name] [member...] restart|switchover")->required();
  flush->add_option("-r,--role", role, "Flush only members with this role")->check(roles);
  add_force(flush);

  auto* version = app.add_subcommand("version", "Version of pgwarden ctl or of the running members");
  version->add_option("args", words, "[cluster_name [member...]]");

  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) sub->fallthrough();

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    io.out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    io.out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    io.err << "Error: " << e.what() << "\n";
    return 2;
  }
  g.config_file_given = !g.config_file.empty();
  if (g.config_file.empty()) {
    g.config_file = default_config_path(env);
    if (env.count("PATRONICTL_CONFIG_FILE")) g.config_file_given = true;
  }
  // Library logging (DCS retries) stays quiet unless asked for, like patronictl's WARNING.
  std::string level = "WARNING";
  for (const char* k : {"LOGLEVEL", "PATRONI_LOGLEVEL", "PATRONI_LOG_LEVEL"})
    if (auto it = env.find(k); it != env.end()) level = it->second;
  if (!spdlog::get("pgwarden")) log::init();
  log::set_level(level == "WARNING" ? "ERROR" : level);

  Session s(g, env, io);
  auto one = [&]() { return words.empty() ? std::string() : words[0]; };
  try {
    if (list->parsed()) return cmd_list(s, words, extended, ts, fmt, W, watch);
    if (topology->parsed()) return cmd_list(s, words, false, false, "topology", W, watch);
    if (switchover->parsed()) return cmd_failover(s, "switchover", one(), leader, candidate, force, scheduled);
    if (failover->parsed())
      return cmd_failover(s, leader ? "switchover" : "failover", one(), leader, candidate, force, std::nullopt);
    if (restart->parsed()) return cmd_restart(s, words, role, any, scheduled, pg_version, pending, timeout, force);
    if (reload->parsed()) return cmd_reload(s, words, role, force);
    if (reinit->parsed()) return cmd_reinit(s, words, force, wait);
    if (pause->parsed()) return cmd_toggle_pause(s, one(), true, wait);
    if (resume->parsed()) return cmd_toggle_pause(s, one(), false, wait);
    if (show_config->parsed()) {
      auto o = s.open(one());
      s.out() << to_yaml(o.cluster.config ? *o.cluster.config : json::object());
      return 0;
    }
    if (edit_config->parsed())
      return cmd_edit_config(s, one(), force, quiet, kv, pg, apply_file, replace_file, io.in, env);
    if (history->parsed()) {
      auto o = s.open(one());
      s.out() << render_table(history_table(o.cluster.history ? *o.cluster.history : json::array()), fmt);
      return 0;
    }
    if (flush->parsed()) return cmd_flush(s, words, role, force);
    if (version->parsed()) return cmd_version(s, words);
  } catch (const CtlError& e) {
    io.out << std::flush;
    io.err << "Error: " << e.message << "\n";
    return 1;
  } catch (const std::exception& e) {
    io.out << std::flush;
    io.err << "Error: " << e.what() << "\n";
    return 1;
  }
  io.err << "Error: no command given\n";
  return 2;
}

}  // namespace pgwarden::ctl
