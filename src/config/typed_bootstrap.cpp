// The `bootstrap:` section: how a new cluster is created, the users made afterwards, and the
// initial dynamic configuration (bootstrap.dcs) that is also our DynamicConfig until the DCS
// holds one.
#include <algorithm>

#include "config_internal.hpp"

namespace pgwarden::config::detail {
namespace {

const std::vector<std::string> kReserved = {"dcs", "method", "initdb", "pg_hba", "users", "post_init",
                                            "post_bootstrap"};
const std::vector<std::string> kInitdbForbidden = {"pgdata", "nosync", "pwfile", "sync-only", "version"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void fill_initdb(const json& bs, BootstrapConfig& out, Problems& p) {
  const json* initdb = field(bs, "initdb");
  if (!initdb) return;
  auto forbidden = [&](const std::string& opt, const std::string& path) {
    if (!contains(kInitdbForbidden, opt)) return false;
    p.errors.push_back(path + ": the initdb option " + opt + " is set by pgwarden and cannot be configured");
    return true;
  };
  json list = json::array();
  if (initdb->is_object()) {
    // Patroni also takes a mapping; falsy values are skipped as it does.
    for (const auto& [k, v] : initdb->items())
      if (!forbidden(k, "bootstrap.initdb." + k) && truthy(v)) list.push_back({{k, v}});
  } else if (initdb->is_array()) {
    for (size_t i = 0; i < initdb->size(); ++i) {
      const json& opt = (*initdb)[i];
      auto path = "bootstrap.initdb[" + std::to_string(i) + "]";
      if (opt.is_string()) {
        if (!forbidden(opt.get<std::string>(), path)) list.push_back(opt);
      } else if (opt.is_object() && opt.size() == 1 &&
                 (opt.begin()->is_string() || opt.begin()->is_number())) {
        if (!forbidden(opt.begin().key(), path)) list.push_back(opt);
      } else {
        expected(path, "an option name or a single option: value mapping", opt, &p.errors);
      }
    }
  } else {
    expected("bootstrap.initdb", "a list of initdb options", *initdb, &p.errors);
    return;
  }
  out.initdb = list;
}

void fill_users(const json& bs, BootstrapConfig& out, Problems& p) {
  const json* users = field(bs, "users");
  if (!users) return;
  if (!users->is_object()) {
    expected("bootstrap.users", "a mapping of user name: {password, options}", *users, &p.errors);
    return;
  }
  for (const auto& [name, spec] : users->items()) {
    auto path = "bootstrap.users." + name;
    BootstrapUser u;
    u.name = name;
    if (!spec.is_null() && !spec.is_object()) {
      expected(path, "a mapping with password and options", spec, &p.errors);
      continue;
    }
    read_into(spec, "password", path, u.password, &p.errors);
    if (const json* opts = field(spec, "options")) {
      if (opts->is_string()) u.options.push_back(opts->get<std::string>());
      else if (auto l = read_string_list(*opts, path + ".options", &p.errors)) u.options = *l;
    }
    out.users.push_back(u);
  }
}

void fill_methods(const json& bs, BootstrapConfig& out, Problems& p) {
  for (const auto& [name, section] : bs.items()) {
    if (contains(kReserved, name) || !section.is_object() || !field(section, "command")) continue;
    auto path = "bootstrap." + name;
    CustomMethod cm;
    cm.name = name;
    read_into(section, "command", path, cm.command, &p.errors);
    read_into(section, "no_params", path, cm.no_params, &p.errors);
    read_into(section, "keep_existing_recovery_conf", path, cm.keep_existing_recovery_conf, &p.errors);
    for (const auto& [k, v] : section.items())
      if (k != "command" && k != "no_params" && k != "keep_existing_recovery_conf") cm.extra[k] = v;
    out.methods[name] = cm;
  }
  if (out.method != "initdb" && !out.methods.count(out.method))
    p.errors.push_back("bootstrap.method: names \"" + out.method + "\" but there is no bootstrap." + out.method +
                       " section with a command");
}

}  // namespace

void fill_bootstrap(const json& doc, Config& cfg, Problems& p) {
  auto& out = cfg.bootstrap;
  const json* bs = field(doc, "bootstrap");
  if (!bs) return;
  if (!bs->is_object()) {
    expected("bootstrap", "a mapping", *bs, &p.errors);
    return;
  }
  read_into(*bs, "method", "bootstrap", out.method, &p.errors);
  // Patroni prefers post_bootstrap when both are given.
  read_into(*bs, "post_init", "bootstrap", out.post_init, &p.errors);
  read_into(*bs, "post_bootstrap", "bootstrap", out.post_init, &p.errors);
  fill_methods(*bs, out, p);
  fill_initdb(*bs, out, p);
  fill_users(*bs, out, p);

  if (const json* dcs = field(*bs, "dcs")) {
    if (!dcs->is_object()) {
      expected("bootstrap.dcs", "a mapping", *dcs, &p.errors);
      return;
    }
    out.dcs = *dcs;
    cfg.dynamic = merge_dynamic_at(DynamicConfig{}, *dcs, "bootstrap.dcs", &p.errors);
  }
  const auto& d = cfg.dynamic;
  if (d.ttl < d.loop_wait + 2 * d.retry_timeout) {
    p.errors.push_back("bootstrap.dcs.ttl: expected at least loop_wait + 2*retry_timeout = " +
                       std::to_string(d.loop_wait + 2 * d.retry_timeout) + " (loop_wait " +
                       std::to_string(d.loop_wait) + ", retry_timeout " + std::to_string(d.retry_timeout) +
                       "), got " + std::to_string(d.ttl));
  }
}

}  // namespace pgwarden::config::detail
