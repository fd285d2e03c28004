#include "pgwarden/dcs/kubernetes/layout.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <set>

#include "pgwarden/dcs/etcd/cluster_builder.hpp"

namespace pgwarden::dcs::k8s {

using nlohmann::json;

namespace {

// RFC 3986 unreserved characters stay; everything else is %XX (label selectors contain '=' and ',').
std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

const json* annotations_of(const json* object) {
  if (!object || !object->is_object()) return nullptr;
  auto md = object->find("metadata");
  if (md == object->end() || !md->is_object()) return nullptr;
  auto a = md->find("annotations");
  if (a == md->end() || !a->is_object()) return nullptr;
  return &*a;
}

// The string annotation `key`, or nullopt when absent or not a string.
std::optional<std::string> annotation(const json* object, const char* key) {
  const json* a = annotations_of(object);
  if (!a) return std::nullopt;
  auto it = a->find(key);
  if (it == a->end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::string name_of(const json& object) {
  return object.value("/metadata/name"_json_pointer, std::string());
}

std::optional<int64_t> parse_int(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return v;
  return std::nullopt;
}

// A JSON annotation of the wanted shape, or nullopt with a warning naming it.
std::optional<json> json_annotation(const json* object, const char* key, bool want_array,
                                    std::vector<std::string>* warnings) {
  auto raw = annotation(object, key);
  if (!raw) return std::nullopt;
  auto j = json::parse(*raw, nullptr, false);
  if (j.is_discarded() || (want_array ? !j.is_array() : !j.is_object())) {
    if (warnings)
      warnings->push_back(name_of(*object) + ": ignoring malformed annotation " + key + " (expected " +
                          (want_array ? "a JSON array" : "a JSON object") + ")");
    return std::nullopt;
  }
  return j;
}

json ports_or_default(const json& ports) {
  if (ports.is_array() && !ports.empty()) {
    json out = json::array();
    for (const auto& p : ports) {
      if (!p.is_object()) continue;
      json port = json::object();
      if (p.contains("name")) port["name"] = p["name"];
      if (p.contains("port")) {
        const json& n = p["port"];
        if (n.is_string()) {
          if (auto v = parse_int(n.get<std::string>())) port["port"] = *v;
        } else {
          port["port"] = n;
        }
      }
      if (p.contains("protocol")) port["protocol"] = p["protocol"];
      out.push_back(port);
    }
    return out;
  }
  return json::array({json{{"port", 5432}}});
}

}  // namespace

std::string Layout::path(const std::string& resource, const std::string& name) const {
  std::string p = "/api/v1/namespaces/" + namespace_ + "/" + resource;
  if (!name.empty()) p += "/" + name;
  return p;
}

std::string Layout::selector() const {
  std::string s;
  for (const auto& [k, v] : labels) {
    if (!s.empty()) s += ",";
    s += k + "=" + v;
  }
  return url_encode(s);
}

Layout layout_from(const std::string& namespace_, const std::string& scope, bool use_endpoints,
                   std::map<std::string, std::string> labels, const std::string& scope_label,
                   const std::string& role_label) {
  Layout l;
  l.namespace_ = namespace_.empty() ? "default" : namespace_;
  l.scope = scope;
  l.use_endpoints = use_endpoints;
  l.labels = std::move(labels);
  l.labels[scope_label.empty() ? "cluster-name" : scope_label] = scope;
  l.role_label = role_label.empty() ? "role" : role_label;
  return l;
}

json leader_record(const json& leader_object) {
  json r = json::object();
  const json* a = annotations_of(&leader_object);
  if (!a) return r;
  for (const char* k : {"leader", "acquireTime", "ttl", "renewTime", "transitions"}) {
    auto it = a->find(k);
    if (it != a->end()) r[k] = *it;
  }
  return r;
}

std::string rv_of(const json& object) {
  return object.is_object() ? object.value("/metadata/resourceVersion"_json_pointer, std::string()) : std::string();
}

int64_t rv_index(const json& object) { return parse_int(rv_of(object)).value_or(0); }

Cluster build_cluster(const ClusterInputs& in, std::vector<std::string>* warnings) {
  Cluster c;
  if (in.config) {
    if (auto init = annotation(in.config, "initialize")) c.initialize = *init;
    if (auto cfg = json_annotation(in.config, "config", false, warnings)) {
      c.config = std::move(*cfg);
      c.config_index = rv_index(*in.config);
    }
    if (auto h = json_annotation(in.config, "history", true, warnings)) c.history = std::move(*h);
  }
  if (in.leader) {
    if (auto optime = annotation(in.leader, "optime")) {
      if (auto v = parse_int(*optime)) c.last_lsn = *v;
      else if (warnings) warnings->push_back(name_of(*in.leader) + ": ignoring malformed annotation optime (expected an integer)");
    }
    auto holder = annotation(in.leader, "leader");
    if (in.leader_valid && holder && !holder->empty()) {
      Leader l;
      l.name = *holder;
      l.index = rv_index(*in.leader);
      c.leader = std::move(l);
    }
  }
  if (in.failover) {
    json f = json::object();
    for (const char* k : {"leader", "member", "scheduled_at"})
      if (auto v = annotation(in.failover, k)) f[k] = *v;
    // A legacy single value "leader:candidate" in the `value` annotation is not something
    // Patroni's Kubernetes DCS writes; only the three annotations count.
    if (!f.empty()) {
      c.failover = std::move(f);
      c.failover_index = rv_index(*in.failover);
    }
  }
  if (in.sync) {
    json s = json::object();
    for (const char* k : {"leader", "sync_standby"})
      if (auto v = annotation(in.sync, k)) s[k] = *v;
    if (!s.empty()) {
      c.sync = std::move(s);
      c.sync_index = rv_index(*in.sync);
    }
  }
  for (const json* pod : in.pods) {
    if (!pod || !pod->is_object()) continue;
    Member m;
    m.name = name_of(*pod);
    if (m.name.empty()) continue;
    m.index = rv_index(*pod);
    if (auto status = annotation(pod, "status")) {
      json data;
      if (etcd::parse_member_value(*status, data)) m.data = std::move(data);
      else if (warnings) warnings->push_back("pod " + m.name + ": ignoring malformed annotation status (expected a JSON object)");
    }
    c.members.push_back(std::move(m));
  }
  std::sort(c.members.begin(), c.members.end(), [](const Member& a, const Member& b) { return a.name < b.name; });
  return c;
}

std::string iso_timestamp(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long frac = static_cast<long>(us % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (frac != 0) {
    char f[16];
    std::snprintf(f, sizeof f, ".%06ld", frac);
    out += f;
  }
  return out + "+00:00";
}

json lock_annotations(const json* previous, const std::string& me, int ttl, const std::string& now_iso) {
  json a = json::object();
  a["leader"] = me;
  a["ttl"] = std::to_string(ttl);
  a["renewTime"] = now_iso;
  a["acquireTime"] = now_iso;
  a["transitions"] = "0";
  // As Patroni: with a previous record, its count carries over and grows by one when the
  // holder changes (a released lock counts as a change); the same holder keeps acquireTime.
  json record = previous ? leader_record(*previous) : json::object();
  if (!record.empty()) {
    auto transitions = annotation(previous, "transitions");
    int64_t n = transitions ? parse_int(*transitions).value_or(0) : 0;
    auto holder = annotation(previous, "leader");
    if (!holder || *holder != me) {
      ++n;
    } else if (auto acquired = annotation(previous, "acquireTime"); acquired && !acquired->empty()) {
      a["acquireTime"] = *acquired;
    }
    a["transitions"] = std::to_string(n);
  }
  return a;
}

json leader_subsets(const std::string& ip, const json* pod, const std::string& namespace_, const json& ports) {
  if (ip.empty()) return json::array();
  json address = {{"ip", ip}};
  if (pod && pod->is_object()) {
    std::string name = name_of(*pod);
    if (auto h = pod->value("/spec/hostname"_json_pointer, std::string()); !h.empty()) address["hostname"] = h;
    if (auto n = pod->value("/spec/nodeName"_json_pointer, std::string()); !n.empty()) address["nodeName"] = n;
    json ref = {{"kind", "Pod"}, {"namespace", namespace_}, {"name", name}};
    if (auto uid = pod->value("/metadata/uid"_json_pointer, std::string()); !uid.empty()) ref["uid"] = uid;
    address["targetRef"] = ref;
  }
  return json::array({json{{"addresses", json::array({address})}, {"ports", ports_or_default(ports)}}});
}

bool same_subsets(const json& a, const json& b) {
  auto digest = [](const json& subsets) {
    std::set<std::string> ips, ports;
    size_t addresses = 0;
    if (subsets.is_array()) {
      for (const auto& s : subsets) {
        if (!s.is_object()) continue;
        for (const auto& addr : s.value("addresses", json::array())) {
          ++addresses;
          if (addr.is_object()) ips.insert(addr.value("ip", ""));
        }
        for (const auto& p : s.value("ports", json::array()))
          if (p.is_object())
            ports.insert(p.value("name", "") + "/" + p.value("port", json(0)).dump() + "/" + p.value("protocol", "TCP"));
      }
    }
    return std::make_tuple(addresses, ips, ports);
  };
  return digest(a) == digest(b);
}

json object_body(const Layout& l, const std::string& name, const json& annotations,
                 const std::optional<std::string>& resource_version) {
  json md = {{"name", name}, {"namespace", l.namespace_}, {"labels", l.labels}, {"annotations", annotations}};
  if (resource_version) md["resourceVersion"] = *resource_version;
  return json{{"metadata", md}};
}

json role_label_value(bool holds_lock, const json& member_data) {
  if (holds_lock) return "master";
  if (member_data.value("state", "") == "running") {
    std::string role = member_data.value("role", "");
    if (role == "primary") role = "master";
    if (!role.empty()) return role;
  }
  return nullptr;
}

json failover_annotations(const json& value) {
  json a = {{"leader", nullptr}, {"member", nullptr}, {"scheduled_at", nullptr}};
  if (value.is_object()) {
    for (const char* k : {"leader", "member", "scheduled_at"}) {
      auto it = value.find(k);
      if (it != value.end() && !it->is_null()) a[k] = it->is_string() ? it->get<std::string>() : it->dump();
    }
    // Some writers name the candidate `candidate`.
    if (a["member"].is_null() && value.contains("candidate") && value["candidate"].is_string())
      a["member"] = value["candidate"];
  }
  return a;
}

json sync_annotations(const json& value) {
  json a = {{"leader", nullptr}, {"sync_standby", nullptr}};
  if (value.is_object()) {
    for (const char* k : {"leader", "sync_standby"}) {
      auto it = value.find(k);
      if (it != value.end() && !it->is_null()) a[k] = it->is_string() ? it->get<std::string>() : it->dump();
    }
  }
  return a;
}

}  // namespace pgwarden::dcs::k8s
