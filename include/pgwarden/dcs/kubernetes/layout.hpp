#pragma once
// Patroni's Kubernetes data layout (../shared/reference/patroni-kubernetes-dcs.md): object
// names, annotation keys, and pure functions from API objects to a dcs::Cluster and from our
// intentions to patch bodies. No I/O here, so every rule has a unit test.
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/dcs/cluster.hpp"

namespace pgwarden::dcs::k8s {

// Where the cluster lives and how its objects are labelled.
struct Layout {
  std::string namespace_ = "default";
  std::string scope;
  bool use_endpoints = false;
  std::map<std::string, std::string> labels;  // kubernetes.labels plus <scope_label>: <scope>
  std::string role_label = "role";

  std::string kind() const { return use_endpoints ? "endpoints" : "configmaps"; }
  std::string leader_name() const { return use_endpoints ? scope : scope + "-leader"; }
  std::string config_name() const { return scope + "-config"; }
  std::string failover_name() const { return scope + "-failover"; }
  std::string sync_name() const { return scope + "-sync"; }
  // /api/v1/namespaces/<ns>/<resource>[/<name>]
  std::string path(const std::string& resource, const std::string& name = "") const;
  // The URL-encoded label selector built from `labels`, e.g. app%3Dx%2Ccluster-name%3Dx.
  std::string selector() const;
};

Layout layout_from(const std::string& namespace_, const std::string& scope, bool use_endpoints,
                   std::map<std::string, std::string> labels, const std::string& scope_label,
                   const std::string& role_label);

// The leader record Patroni compares to judge expiry: {leader, acquireTime, ttl, renewTime,
// transitions}, values as written (absent keys are absent).
nlohmann::json leader_record(const nlohmann::json& leader_object);

// Everything the builder needs besides the objects: which leader record we consider valid
// (judged by the caller's own clock) and the resourceVersions turned into indexes.
struct ClusterInputs {
  const nlohmann::json* leader = nullptr;  // the leader object or null
  const nlohmann::json* config = nullptr;
  const nlohmann::json* failover = nullptr;
  const nlohmann::json* sync = nullptr;
  std::vector<const nlohmann::json*> pods;
  bool leader_valid = false;  // the record changed within ttl of our clock
};

// Builds the cluster view. Malformed annotations lose only that item; each problem is
// appended to `warnings` (one line naming object and annotation).
Cluster build_cluster(const ClusterInputs& in, std::vector<std::string>* warnings);

// A resourceVersion as a Cluster index: its decimal value, 0 when it is not a number.
int64_t rv_index(const nlohmann::json& object);
std::string rv_of(const nlohmann::json& object);

// Python's datetime.now(tz=UTC).isoformat(): 2024-01-18T15:43:45.123456+00:00 (no fraction
// when the microseconds are zero).
std::string iso_timestamp(std::chrono::system_clock::time_point t);

// The annotations of a lock write. `previous` is the leader object as last read (may be null).
// Keeps acquireTime and transitions when the holder stays `me`, else acquireTime = now and
// transitions + 1.
nlohmann::json lock_annotations(const nlohmann::json* previous, const std::string& me, int ttl,
                                const std::string& now_iso);

// The Endpoints subsets that route the primary Service to us: one subset, one address with
// `ip` (and the pod's hostname/nodeName/targetRef when the pod object is known), the ports
// from kubernetes.ports (default [{port: 5432}]). Empty array when ip is empty.
nlohmann::json leader_subsets(const std::string& ip, const nlohmann::json* pod, const std::string& namespace_,
                              const nlohmann::json& ports);
// Whether two subsets lists route the same way (same IPs and port set), as Patroni compares.
bool same_subsets(const nlohmann::json& a, const nlohmann::json& b);

// The metadata part of a patch or create body: name, namespace, labels, annotations (null
// values delete on patch), plus resourceVersion when given (the optimistic-lock precondition).
nlohmann::json object_body(const Layout& l, const std::string& name, const nlohmann::json& annotations,
                           const std::optional<std::string>& resource_version);

// The role label value Patroni 3.0.2 writes: master while holding the lock; else the role
// when PostgreSQL is running; else null (the label is removed).
nlohmann::json role_label_value(bool holds_lock, const nlohmann::json& member_data);

// Failover annotations (leader, member, scheduled_at; null for missing) from the JSON value
// the HA/REST layer uses, and back.
nlohmann::json failover_annotations(const nlohmann::json& value);
nlohmann::json sync_annotations(const nlohmann::json& value);

}  // namespace pgwarden::dcs::k8s
