// Top-level identity (scope, name, namespace), logging, tags, the REST API, pgwarden's
// backup API and the DCS sections of the typed Config.
#include <arpa/inet.h>

#include <algorithm>
#include <sstream>

#include "config_internal.hpp"

namespace pgwarden::config::detail {
namespace {

void required_string(const json& doc, const std::string& key, std::string& out, Problems& p) {
  const json* v = field(doc, key);
  if (!v) {
    p.errors.push_back(key + ": missing (expected a non-empty string)");
    return;
  }
  auto s = read_string(*v, key, &p.errors);
  if (!s) return;
  if (s->empty()) {
    expected(key, "a non-empty string", *v, &p.errors);
    return;
  }
  out = *s;
}

// Patroni builds its DCS base path as "/<namespace>/<scope>" with repeated slashes collapsed.
std::string normalise_namespace(const std::string& ns) {
  std::string out = "/" + ns + "/";
  std::string collapsed;
  for (char c : out)
    if (!(c == '/' && !collapsed.empty() && collapsed.back() == '/')) collapsed.push_back(c);
  return collapsed;
}

void fill_tags(const json& doc, Config& cfg, Problems& p) {
  const json* tags = field(doc, "tags");
  if (!tags) return;
  if (!tags->is_object()) {
    expected("tags", "a mapping", *tags, &p.errors);
    return;
  }
  for (const auto& [k, v] : tags->items()) {
    if (v.is_object() || v.is_array()) {
      expected("tags." + k, "a scalar", v, &p.errors);
      continue;
    }
    cfg.tags[k] = scalar_text(v);
    // Patroni 3.0.2 (Patroni.get_tags) does not publish these four when they are falsy.
    static const char* kDropWhenFalse[] = {"clonefrom", "nofailover", "noloadbalance", "nosync"};
    bool drop = !truthy(v) && std::any_of(std::begin(kDropWhenFalse), std::end(kDropWhenFalse),
                                          [&](const char* t) { return k == t; });
    if (!drop) cfg.tags_json[k] = v;
  }
  for (const char* b : {"nofailover", "clonefrom", "noloadbalance", "nosync"}) {
    if (const json* v = field(*tags, b); v && !v->is_boolean() && !py_bool(*v))
      expected(std::string("tags.") + b, "a boolean", *v, &p.errors);
  }
}

void fill_restapi(const json& doc, Config& cfg, Problems& p) {
  const json* r = field(doc, "restapi");
  if (!r) {
    p.errors.push_back("restapi.listen: missing (expected host:port with a port between 1 and 65535)");
    return;
  }
  if (!r->is_object()) {
    expected("restapi", "a mapping", *r, &p.errors);
    return;
  }
  auto& api = cfg.restapi;
  std::string listen_text;
  if (const json* l = field(*r, "listen")) {
    if (!l->is_string()) {
      expected("restapi.listen", "host:port with a port between 1 and 65535", *l, &p.errors);
    } else if (auto hp = split_host_port(l->get<std::string>(), std::nullopt)) {
      api.listen = *hp;
      listen_text = l->get<std::string>();
    } else {
      expected("restapi.listen", "host:port with a port between 1 and 65535", *l, &p.errors);
    }
  } else {
    p.errors.push_back("restapi.listen: missing (expected host:port with a port between 1 and 65535)");
  }
  if (const json* c = field(*r, "connect_address")) {
    if (!c->is_string() || !split_host_port(c->get<std::string>(), std::nullopt))
      expected("restapi.connect_address", "host:port with a port between 1 and 65535", *c, &p.errors);
    else
      api.connect_address = c->get<std::string>();
  } else {
    api.connect_address = listen_text;
  }
  if (const json* auth = field(*r, "authentication")) {
    if (!auth->is_object()) {
      expected("restapi.authentication", "a mapping", *auth, &p.errors);
    } else {
      read_into(*auth, "username", "restapi.authentication", api.username, &p.errors);
      read_into(*auth, "password", "restapi.authentication", api.password, &p.errors);
    }
  }
  read_into(*r, "certfile", "restapi", api.certfile, &p.errors);
  read_into(*r, "keyfile", "restapi", api.keyfile, &p.errors);
  read_into(*r, "keyfile_password", "restapi", api.keyfile_password, &p.errors);
  read_into(*r, "cafile", "restapi", api.cafile, &p.errors);
  read_into(*r, "verify_client", "restapi", api.verify_client, &p.errors);
  read_into(*r, "ciphers", "restapi", api.ciphers, &p.errors);
  if (!api.verify_client.empty() && api.verify_client != "none" && api.verify_client != "optional" &&
      api.verify_client != "required")
    expected("restapi.verify_client", "one of none, optional, required", *field(*r, "verify_client"), &p.errors);
}

// "h1:2379,h2:2379", ["h1:2379", "h2"], with etcd3.port (default 2379) for hosts without one.
void add_etcd_host(const std::string& raw, const std::string& path, int default_port, EtcdConfig& etcd,
                   Problems& p) {
  std::string value = raw;
  auto b = value.find_first_not_of(" \t");
  auto e = value.find_last_not_of(" \t");
  value = b == std::string::npos ? "" : value.substr(b, e - b + 1);
  if (value.empty()) return;
  if (auto scheme = value.find("://"); scheme != std::string::npos) {
    etcd.protocol = value.substr(0, scheme);
    value = value.substr(scheme + 3);
  }
  if (auto hp = split_host_port(value, default_port); hp && !hp->host.empty())
    etcd.hosts.push_back(*hp);
  else
    expected(path, "host:port with a port between 1 and 65535", json(raw), &p.errors);
}

void fill_etcd3(const json& section, Config& cfg, Problems& p) {
  auto& etcd = cfg.etcd3;
  if (!section.is_null() && !section.is_object()) {
    expected("etcd3", "a mapping", section, &p.errors);
    return;
  }
  read_into(section, "protocol", "etcd3", etcd.protocol, &p.errors);
  read_into(section, "username", "etcd3", etcd.username, &p.errors);
  read_into(section, "password", "etcd3", etcd.password, &p.errors);
  read_into(section, "cacert", "etcd3", etcd.cacert, &p.errors);
  read_into(section, "cert", "etcd3", etcd.cert, &p.errors);
  read_into(section, "key", "etcd3", etcd.key, &p.errors);
  if (etcd.protocol != "http" && etcd.protocol != "https")
    expected("etcd3.protocol", "http or https", *field(section, "protocol"), &p.errors);
  int default_port = 2379;
  read_into(section, "port", "etcd3", default_port, &p.errors);

  // Patroni's precedence: url, then hosts, then host.
  if (const json* url = field(section, "url")) {
    if (auto s = read_string(*url, "etcd3.url", &p.errors)) add_etcd_host(*s, "etcd3.url", 2379, etcd, p);
  } else if (const json* hosts = field(section, "hosts")) {
    if (hosts->is_string()) {
      std::stringstream ss(hosts->get<std::string>());
      std::string item;
      while (std::getline(ss, item, ',')) add_etcd_host(item, "etcd3.hosts", default_port, etcd, p);
    } else if (hosts->is_array()) {
      for (size_t i = 0; i < hosts->size(); ++i) {
        auto path = "etcd3.hosts[" + std::to_string(i) + "]";
        if (auto s = read_string((*hosts)[i], path, &p.errors)) add_etcd_host(*s, path, default_port, etcd, p);
      }
    } else {
      expected("etcd3.hosts", "a comma separated string or a list of host:port", *hosts, &p.errors);
    }
  } else if (const json* host = field(section, "host")) {
    if (auto s = read_string(*host, "etcd3.host", &p.errors)) add_etcd_host(*s, "etcd3.host", default_port, etcd, p);
  }
  if (etcd.hosts.empty() && p.errors.empty())
    p.errors.push_back("etcd3: no etcd endpoint configured (expected etcd3.hosts, etcd3.host or etcd3.url)");
}

void fill_kubernetes(const json& section, Config& cfg, Problems& p) {
  auto& k = cfg.kubernetes;
  k.enabled = true;
  if (section.is_null()) return;
  if (!section.is_object()) {
    expected("kubernetes", "a mapping", section, &p.errors);
    return;
  }
  read_into(section, "namespace", "kubernetes", k.namespace_, &p.errors);
  read_into(section, "scope_label", "kubernetes", k.scope_label, &p.errors);
  read_into(section, "role_label", "kubernetes", k.role_label, &p.errors);
  read_into(section, "use_endpoints", "kubernetes", k.use_endpoints, &p.errors);
  read_into(section, "bypass_api_service", "kubernetes", k.bypass_api_service, &p.errors);
  read_into(section, "pod_ip", "kubernetes", k.pod_ip, &p.errors);
  read_into(section, "context", "kubernetes", k.context, &p.errors);
  read_into(section, "cacert", "kubernetes", k.cacert, &p.errors);
  if (const json* codes = field(section, "retriable_http_codes")) {
    // Patroni accepts one code or a list of them.
    json list = codes->is_array() ? *codes : json::array({*codes});
    for (const auto& c : list) {
      auto n = py_int(c);
      if (!n || *n < 100 || *n > 599)
        expected("kubernetes.retriable_http_codes", "HTTP status codes (100-599)", *codes, &p.errors);
      else
        k.retriable_http_codes.push_back(static_cast<int>(*n));
    }
  }
  if (!k.pod_ip.empty()) {
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET, k.pod_ip.c_str(), buf) != 1 && inet_pton(AF_INET6, k.pod_ip.c_str(), buf) != 1)
      expected("kubernetes.pod_ip", "an IPv4 or IPv6 address", json(k.pod_ip), &p.errors);
  }
  if (const json* labels = field(section, "labels")) {
    if (!labels->is_object()) {
      expected("kubernetes.labels", "a mapping", *labels, &p.errors);
    } else {
      for (const auto& [name, v] : labels->items())
        if (auto s = read_string(v, "kubernetes.labels." + name, &p.errors)) k.labels[name] = *s;
    }
  }
  if (const json* ports = field(section, "ports")) {
    if (!ports->is_array()) {
      expected("kubernetes.ports", "a list of {name, port}", *ports, &p.errors);
    } else {
      for (size_t i = 0; i < ports->size(); ++i) {
        const json& port = (*ports)[i];
        auto path = "kubernetes.ports[" + std::to_string(i) + "]";
        const json* num = field(port, "port");
        auto n = num ? py_int(*num) : std::nullopt;
        if (!port.is_object() || !n || *n < 1 || *n > 65535)
          expected(path, "a mapping with a port between 1 and 65535", port, &p.errors);
      }
      k.ports = *ports;
    }
  }
}

// pgwarden's backup API: served only when a listen address is given.
void fill_backup_api(const json& doc, Config& cfg, Problems& p) {
  const json* section = field(doc, "backup_api");
  if (!section) return;
  if (!section->is_object()) {
    expected("backup_api", "a mapping", *section, &p.errors);
    return;
  }
  auto& b = cfg.backup_api;
  if (const json* l = field(*section, "listen")) {
    auto hp = l->is_string() ? split_host_port(l->get<std::string>(), std::nullopt) : std::nullopt;
    if (!hp) {
      expected("backup_api.listen", "host:port with a port between 1 and 65535", *l, &p.errors);
    } else {
      b.listen = *hp;
      b.enabled = true;
    }
  } else if (!section->empty()) {
    p.warnings.push_back("backup_api: no listen address; the backup API is not served");
  }
  // A stanza or program name that YAML read as a number or a boolean is a mistake.
  for (auto [key, out] : {std::pair<const char*, std::string*>{"stanza", &b.stanza}, {"command", &b.command}}) {
    const json* v = field(*section, key);
    if (!v) continue;
    if (!v->is_string() || v->get<std::string>().empty())
      expected(std::string("backup_api.") + key, "a non-empty string", *v, &p.errors);
    else
      *out = v->get<std::string>();
  }
}

}  // namespace

void fill_general(const json& doc, Config& cfg, Problems& p) {
  required_string(doc, "scope", cfg.scope, p);
  required_string(doc, "name", cfg.name, p);
  std::string ns = "service";
  read_into(doc, "namespace", "", ns, &p.errors);
  cfg.namespace_ = normalise_namespace(ns);

  if (const json* log = field(doc, "log")) {
    if (!log->is_object()) {
      expected("log", "a mapping", *log, &p.errors);
    } else if (const json* level = field(*log, "level")) {
      std::string l = level->is_string() ? level->get<std::string>() : "";
      std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::toupper(c); });
      if (l == "DEBUG" || l == "INFO" || l == "WARNING" || l == "ERROR" || l == "CRITICAL")
        cfg.log_level = l;
      else
        expected("log.level", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL", *level, &p.errors);
    }
  }
  fill_tags(doc, cfg, p);
  fill_restapi(doc, cfg, p);
  fill_backup_api(doc, cfg, p);
}

void fill_dcs(const json& doc, Config& cfg, Problems& p) {
  bool unsupported = false;
  if (doc.contains("etcd")) {
    p.errors.push_back("etcd: the etcd v2 API is not supported, only etcd3 is supported (rename the section to etcd3)");
    unsupported = true;
  }
  for (const char* other : {"consul", "zookeeper", "exhibitor", "raft"}) {
    if (doc.contains(other)) {
      p.errors.push_back(std::string(other) + ": not supported (only etcd3 and kubernetes are supported)");
      unsupported = true;
    }
  }
  bool has_etcd3 = doc.contains("etcd3");
  bool has_k8s = doc.contains("kubernetes");
  if (has_etcd3 && has_k8s) {
    p.errors.push_back("etcd3/kubernetes: both configured (expected exactly one DCS)");
    return;
  }
  if (has_etcd3) {
    Problems local;
    fill_etcd3(doc["etcd3"], cfg, local);
    p.errors.insert(p.errors.end(), local.errors.begin(), local.errors.end());
  } else if (has_k8s) {
    fill_kubernetes(doc["kubernetes"], cfg, p);
  } else if (!unsupported) {
    p.errors.push_back("etcd3/kubernetes: no DCS configured (expected an etcd3 or kubernetes section)");
  }
}

}  // namespace pgwarden::config::detail
