#include "pgwarden/dcs/kubernetes/kubernetes_dcs.hpp"

#include "pgwarden/util/log.hpp"

namespace pgwarden::dcs::k8s {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr const char* kStrategicMerge = "application/strategic-merge-patch+json";

std::chrono::milliseconds seconds_ms(int s) { return std::chrono::milliseconds(int64_t{s} * 1000); }

std::string now_iso() { return iso_timestamp(std::chrono::system_clock::now()); }

std::string annotation_of(const json& object, const char* key) {
  const json* a = nullptr;
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object() &&
      object["metadata"].contains("annotations") && object["metadata"]["annotations"].is_object())
    a = &object["metadata"]["annotations"];
  if (!a || !a->contains(key) || !(*a)[key].is_string()) return "";
  return (*a)[key].get<std::string>();
}

// Annotations of a create body: null means "absent", which a create expresses by omission.
json without_nulls(const json& annotations) {
  json out = json::object();
  for (const auto& [k, v] : annotations.items())
    if (!v.is_null()) out[k] = v;
  return out;
}

json without_position(json data) {
  if (data.is_object()) data.erase("xlog_location");
  return data;
}

}  // namespace

KubernetesOptions kubernetes_options_from(const config::Config& cfg) {
  KubernetesOptions o;
  const auto& k = cfg.kubernetes;
  o.layout = layout_from(k.namespace_, cfg.scope, k.use_endpoints, k.labels, k.scope_label, k.role_label);
  o.name = cfg.name;
  o.pod_ip = k.pod_ip;
  o.ports = k.ports;
  o.ttl = cfg.dynamic.ttl;
  o.loop_wait = cfg.dynamic.loop_wait;
  o.retry_timeout = cfg.dynamic.retry_timeout;
  return o;
}

KubernetesDcs::KubernetesDcs(KubernetesOptions opts, std::unique_ptr<ApiClient> client)
    : opts_(std::move(opts)), client_(std::move(client)), ttl_(opts_.ttl), retry_timeout_(opts_.retry_timeout) {
  const Layout& l = opts_.layout;
  objects_ = std::make_unique<WatchedList>(*client_, l.path(l.kind()), l.selector(),
                                           [this](const json& b, const json& a) { on_object_change(b, a); });
  pods_ = std::make_unique<WatchedList>(*client_, l.path("pods"), l.selector(),
                                        [this](const json& b, const json& a) { on_pod_change(b, a); });
  objects_->start();
  pods_->start();
}

KubernetesDcs::~KubernetesDcs() { close(); }

std::string KubernetesDcs::initialize_location() const {
  const Layout& l = opts_.layout;
  return std::string(l.use_endpoints ? "Endpoints " : "ConfigMap ") + l.namespace_ + "/" + l.config_name();
}

// ---- reading ----

void KubernetesDcs::observe_leader(const json& leader_object) {
  json record = leader_object.is_object() ? leader_record(leader_object) : json::object();
  std::lock_guard lk(mu_);
  if ((!record.empty() || !observed_record_.empty()) && record != observed_record_) {
    observed_record_ = std::move(record);
    observed_at_ = SteadyClock::now();
    observed_ = true;
  }
}

Result<Cluster> KubernetesDcs::load_cluster() { return read_view(true); }

Result<Cluster> KubernetesDcs::peek_cluster() { return read_view(false); }

Result<Cluster> KubernetesDcs::read_view(bool for_decisions) {
  auto budget = seconds_ms(retry_timeout_);
  auto until = SteadyClock::now() + budget;
  auto left = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()));
  };
  if (!objects_->wait_ready(left()) || !pods_->wait_ready(left()))
    return Status::Unavailable("kubernetes: cannot read the cluster from the API server at " +
                               client_->server().authority() + " (list/watch not established)");
  const Layout& l = opts_.layout;
  auto objects = objects_->items();
  auto pods = pods_->items();
  auto find = [&](const std::string& name) -> const json* {
    auto it = objects.find(name);
    return it == objects.end() ? nullptr : &it->second;
  };
  const json* leader = find(l.leader_name());
  observe_leader(leader ? *leader : json());
  if (for_decisions) {
    std::lock_guard lk(mu_);
    loaded_leader_ = leader ? std::optional<json>(*leader) : std::nullopt;
    const json* cfg = find(l.config_name());
    loaded_config_ = cfg ? std::optional<json>(*cfg) : std::nullopt;
  }

  ClusterInputs in;
  in.leader = leader;
  in.config = find(l.config_name());
  in.failover = find(l.failover_name());
  in.sync = find(l.sync_name());
  for (const auto& [name, pod] : pods) in.pods.push_back(&pod);
  {
    std::lock_guard lk(mu_);
    int ttl = ttl_;
    if (auto it = observed_record_.find("ttl"); it != observed_record_.end() && it->is_string()) {
      try {
        int t = std::stoi(it->get<std::string>());
        if (t > 0) ttl = t;
      } catch (const std::exception&) {
      }
    }
    in.leader_valid = leader && observed_ && SteadyClock::now() < observed_at_ + seconds_ms(ttl);
  }
  std::vector<std::string> warnings;
  Cluster c = build_cluster(in, &warnings);
  std::set<std::string> now_warned(warnings.begin(), warnings.end());
  {
    std::lock_guard lk(mu_);
    for (const auto& w : warnings)
      if (!warned_.count(w)) spdlog::warn("kubernetes: {}", w);
    warned_ = std::move(now_warned);
  }
  return c;
}

bool KubernetesDcs::holds_lock() {
  auto leader = objects_->get(opts_.layout.leader_name());
  if (!leader || annotation_of(*leader, "leader") != opts_.name) return false;
  observe_leader(*leader);
  std::lock_guard lk(mu_);
  return observed_ && SteadyClock::now() < observed_at_ + seconds_ms(ttl_);
}

// ---- change notifications (watch threads) ----

void KubernetesDcs::on_object_change(const json& before, const json& after) {
  const json& obj = after.is_null() ? before : after;
  std::string name = obj.value("/metadata/name"_json_pointer, std::string());
  const Layout& l = opts_.layout;
  bool wake = false;
  if (name == l.leader_name()) {
    observe_leader(after);
    wake = annotation_of(before, "leader") != annotation_of(after, "leader");
  } else if (name == l.config_name()) {
    wake = annotation_of(before, "config") != annotation_of(after, "config");
  } else if (name == l.failover_name() || name == l.sync_name()) {
    wake = before != after;
  }
  if (wake) signal_wake();
}

void KubernetesDcs::on_pod_change(const json& before, const json& after) {
  // A member that publishes its status for the first time may need a replication slot from
  // the leader: wake the leader rather than wait for its next cycle.
  if (annotation_of(before, "status").empty() && !annotation_of(after, "status").empty()) {
    auto leader = objects_->get(opts_.layout.leader_name());
    if (leader && annotation_of(*leader, "leader") == opts_.name) signal_wake();
  }
}

void KubernetesDcs::signal_wake() {
  std::lock_guard lk(mu_);
  woken_ = true;
  cv_.notify_all();
}

void KubernetesDcs::wake() { signal_wake(); }

bool KubernetesDcs::watch(std::chrono::milliseconds timeout) {
  auto now = SteadyClock::now();
  auto deadline = now + timeout;
  std::unique_lock lk(mu_);
  // A lock held by someone else expires, by our clock, ttl after we saw it change: wake then,
  // so the race for it starts at once and not at our next loop_wait tick.
  std::optional<SteadyClock::time_point> expiry;
  std::string holder = observed_record_.is_object() ? observed_record_.value("leader", "") : "";
  if (observed_ && !holder.empty() && holder != opts_.name) {
    int ttl = ttl_;
    try {
      ttl = std::stoi(observed_record_.value("ttl", std::to_string(ttl_)));
    } catch (const std::exception&) {
    }
    auto at = observed_at_ + seconds_ms(ttl) + std::chrono::milliseconds(10);
    if (at > now && at < deadline) expiry = at;
  }
  bool woken = cv_.wait_until(lk, expiry.value_or(deadline), [&] { return woken_; });
  if (woken) {
    woken_ = false;
    return true;
  }
  return expiry.has_value();
}

// ---- writing ----

Status KubernetesDcs::status_of(const Result<ApiReply>& r, const std::string& what) const {
  if (!r.ok()) return Status::Unavailable("kubernetes: " + what + ": " + r.status().message());
  int code = r->status;
  std::string msg = r->message().empty() ? r->body.substr(0, 200) : r->message();
  switch (code) {
    case 401:
      return Status::Failed("kubernetes: " + what + ": the API server rejected our credentials (401): " + msg);
    case 403:
      return Status::Failed("kubernetes: " + what + ": permission denied (403): " + msg);
    case 404:
      return Status::NotFound("kubernetes: " + what + ": not found: " + msg);
    case 409:
      return Status::Conflict("kubernetes: " + what + ": " + (r->reason().empty() ? "Conflict" : r->reason()) + ": " + msg);
    case 422:
      return Status::Invalid("kubernetes: " + what + ": the API server refused the object: " + msg);
    default:
      return Status::Failed("kubernetes: " + what + ": HTTP " + std::to_string(code) + ": " + msg);
  }
}

Result<json> KubernetesDcs::write_object(const std::string& name, const json& annotations, std::optional<std::string> rv,
                                         bool cas, const std::optional<json>& subsets) {
  const Layout& l = opts_.layout;
  std::string what = "write " + l.kind() + " " + name;
  auto cached = objects_->get(name);
  auto create = [&]() -> Result<json> {
    json body = object_body(l, name, without_nulls(annotations), std::nullopt);
    body["apiVersion"] = "v1";
    body["kind"] = l.use_endpoints ? "Endpoints" : "ConfigMap";
    if (subsets && l.use_endpoints && !subsets->empty()) body["subsets"] = *subsets;
    auto r = client_->call("POST", l.path(l.kind()), body.dump());
    if (r.ok() && (r->status == 200 || r->status == 201)) return r->json();
    return status_of(r, what);
  };
  auto patch = [&](const std::optional<std::string>& version) -> Result<json> {
    json body = object_body(l, name, annotations, version);
    if (subsets && l.use_endpoints) body["subsets"] = *subsets;
    auto r = client_->call("PATCH", l.path(l.kind(), name), body.dump(), kStrategicMerge);
    if (r.ok() && r->status == 200) return r->json();
    return status_of(r, what);
  };

  Result<json> out = Status::Failed("unreachable");
  if (cas) {
    // A conditional write: with the version we decided on, or, if the object did not exist
    // then, a create that fails when someone else created it first.
    out = rv ? patch(rv) : create();
  } else if (cached) {
    out = patch(std::nullopt);
    if (!out.ok() && out.status().code() == Code::kNotFound) out = create();
  } else {
    out = create();
    if (!out.ok() && out.status().code() == Code::kConflict) out = patch(std::nullopt);
  }
  if (out.ok()) objects_->put(*out);
  return out;
}

Status KubernetesDcs::attempt_to_acquire_leader() {
  const Layout& l = opts_.layout;
  // The decision to take the lock was made on the last load; a precondition on the version
  // seen then (not a fresher one) makes a lock taken meanwhile by another member win.
  std::optional<json> prev;
  {
    std::lock_guard lk(mu_);
    prev = loaded_leader_;
  }
  int ttl = ttl_;
  json ann = lock_annotations(prev ? &*prev : nullptr, opts_.name, ttl, now_iso());
  std::optional<json> subsets;
  if (l.use_endpoints && prev && prev->contains("subsets") && (*prev)["subsets"].is_array() &&
      !(*prev)["subsets"].empty())
    subsets = json::array();  // not promoted yet: route nowhere until the first renewal
  auto r = write_object(l.leader_name(), ann, prev ? std::optional(rv_of(*prev)) : std::nullopt, true, subsets);
  if (r.ok()) {
    observe_leader(*r);
    return Status::Ok();
  }
  if (r.status().code() == Code::kConflict) {
    // Someone wrote first: re-read so the next decision sees who.
    auto g = client_->call("GET", l.path(l.kind(), l.leader_name()));
    if (g.ok() && g->status == 200) objects_->put(g->json());
    return Status::Conflict("kubernetes: could not take out the leader lock: another member wrote it first");
  }
  return r.status();
}

Status KubernetesDcs::renew(const std::optional<int64_t>& last_lsn) {
  const Layout& l = opts_.layout;
  auto started = SteadyClock::now();
  auto build = [&](const json& prev) {
    json ann = lock_annotations(&prev, opts_.name, ttl_, now_iso());
    if (last_lsn) ann["optime"] = std::to_string(*last_lsn);
    return ann;
  };
  auto desired_subsets = [&](const json& prev) -> std::optional<json> {
    if (!l.use_endpoints) return std::nullopt;
    auto pod = pods_->get(opts_.name);
    std::string ip = opts_.pod_ip;
    if (ip.empty() && pod) ip = pod->value("/status/podIP"_json_pointer, std::string());
    json want = leader_subsets(ip, pod ? &*pod : nullptr, l.namespace_, opts_.ports);
    if (same_subsets(want, prev.value("subsets", json::array()))) return std::nullopt;
    return want;
  };
  auto prev = objects_->get(l.leader_name());
  if (!prev || annotation_of(*prev, "leader") != opts_.name)
    return Status::Conflict("kubernetes: the leader lock is no longer ours");
  std::string used = rv_of(*prev);
  auto r = write_object(l.leader_name(), build(*prev), used, true, desired_subsets(*prev));
  if (r.ok()) return Status::Ok();
  if (r.status().code() != Code::kConflict) return r.status();
  // 409: something touched the object (often the endpoints controller). Re-read; renew once
  // more only if it still names us and really changed, with time left.
  if (SteadyClock::now() - started > seconds_ms(retry_timeout_) - std::chrono::seconds(1)) return r.status();
  auto g = client_->call("GET", l.path(l.kind(), l.leader_name()));
  if (!g.ok() || g->status != 200) return status_of(g, "re-read the leader lock");
  json fresh = g->json();
  objects_->put(fresh);
  if (annotation_of(fresh, "leader") != opts_.name || rv_of(fresh) == used)
    return Status::Conflict("kubernetes: the leader lock was taken by " + annotation_of(fresh, "leader"));
  auto again = write_object(l.leader_name(), build(fresh), rv_of(fresh), true, desired_subsets(fresh));
  return again.ok() ? Status::Ok() : again.status();
}

Status KubernetesDcs::update_leader(std::optional<int64_t> last_lsn) { return renew(last_lsn); }

Status KubernetesDcs::delete_leader(std::optional<int64_t> last_lsn) {
  const Layout& l = opts_.layout;
  auto prev = objects_->get(l.leader_name());
  if (!prev || annotation_of(*prev, "leader") != opts_.name) return Status::Ok();
  json ann = {{"leader", nullptr}};
  if (last_lsn) ann["optime"] = std::to_string(*last_lsn);
  std::optional<json> subsets;
  if (l.use_endpoints && prev->contains("subsets") && (*prev)["subsets"].is_array() && !(*prev)["subsets"].empty())
    subsets = json::array();
  auto r = write_object(l.leader_name(), ann, rv_of(*prev), true, subsets);
  return r.ok() ? Status::Ok() : r.status();
}

Status KubernetesDcs::initialize(bool create_new, const std::string& sysid) {
  const Layout& l = opts_.layout;
  json ann = {{"initialize", sysid}};
  if (!create_new) {
    auto r = write_object(l.config_name(), ann, std::nullopt, false);
    return r.ok() ? Status::Ok() : r.status();
  }
  // The bootstrap race: whoever writes first with the version it read wins.
  std::optional<json> cfg;
  {
    std::lock_guard lk(mu_);
    cfg = loaded_config_;
  }
  if (cfg && cfg->contains("metadata") && (*cfg)["metadata"].contains("annotations") &&
      (*cfg)["metadata"]["annotations"].contains("initialize"))
    return Status::Conflict("kubernetes: the cluster is already being initialised");
  auto r = write_object(l.config_name(), ann, cfg ? std::optional(rv_of(*cfg)) : std::nullopt, true);
  return r.ok() ? Status::Ok() : r.status();
}

Status KubernetesDcs::cancel_initialization() {
  auto r = write_object(opts_.layout.config_name(), json{{"initialize", nullptr}}, std::nullopt, false);
  return r.ok() ? Status::Ok() : r.status();
}

namespace {

// The resourceVersion string behind a Cluster index: the cached one when it matches (the
// usual case), else the number itself (servers with integer versions).
std::optional<std::string> version_for(const std::optional<json>& cached, std::optional<int64_t> index) {
  if (!index) return std::nullopt;
  if (cached && rv_index(*cached) == *index) return rv_of(*cached);
  return std::to_string(*index);
}

}  // namespace

Status KubernetesDcs::set_config_value(const std::string& value, std::optional<int64_t> index) {
  const Layout& l = opts_.layout;
  auto r = write_object(l.config_name(), json{{"config", value}},
                        version_for(objects_->get(l.config_name()), index), index.has_value());
  return r.ok() ? Status::Ok() : r.status();
}

Status KubernetesDcs::set_history_value(const std::string& value) {
  auto r = write_object(opts_.layout.config_name(), json{{"history", value}}, std::nullopt, false);
  return r.ok() ? Status::Ok() : r.status();
}

Status KubernetesDcs::set_failover_value(const std::string& value, std::optional<int64_t> index) {
  const Layout& l = opts_.layout;
  json parsed = value.empty() ? json::object() : json::parse(value, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return Status::Invalid("failover value must be a JSON object");
  auto r = write_object(l.failover_name(), failover_annotations(parsed),
                        version_for(objects_->get(l.failover_name()), index), index.has_value());
  return r.ok() ? Status::Ok() : r.status();
}

Status KubernetesDcs::set_sync_state_value(const std::string& value, std::optional<int64_t> index) {
  const Layout& l = opts_.layout;
  json parsed = value.empty() ? json::object() : json::parse(value, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return Status::Invalid("sync value must be a JSON object");
  auto r = write_object(l.sync_name(), sync_annotations(parsed), version_for(objects_->get(l.sync_name()), index),
                        index.has_value());
  return r.ok() ? Status::Ok() : r.status();
}

void KubernetesDcs::ensure_config_service() {
  // Without a Service of the same name the endpoints controller deletes <scope>-config as an
  // orphan. The chart creates it itself and does not grant services/create: 403 is fine.
  const Layout& l = opts_.layout;
  json body = {{"apiVersion", "v1"},
               {"kind", "Service"},
               {"metadata", {{"name", l.config_name()}, {"namespace", l.namespace_}, {"labels", l.labels}}},
               {"spec", {{"clusterIP", "None"}}}};
  auto r = client_->call("POST", l.path("services"), body.dump());
  if (r.ok() && (r->status == 201 || r->status == 200 || r->status == 409 || r->status == 403)) {
    config_service_done_ = true;
    return;
  }
  if (r.ok() && r->status < 500) {
    spdlog::warn("kubernetes: cannot create Service {}: HTTP {}: {}", l.config_name(), r->status, r->message());
    config_service_done_ = true;  // a client error will not go away by repeating it
  }
}

Status KubernetesDcs::touch_member(const json& data) {
  const Layout& l = opts_.layout;
  if (l.use_endpoints && !config_service_done_) ensure_config_service();
  auto pod = pods_->get(opts_.name);
  json label = role_label_value(holds_lock(), data);
  std::string status = data.dump();
  bool significant = true;
  bool position_moved = false;
  if (pod) {
    json cur_label = pod->value(json::json_pointer("/metadata/labels/" + l.role_label), json());
    json cur_status = json::parse(annotation_of(*pod, "status"), nullptr, false);
    significant = cur_label != label || cur_status.is_discarded() || without_position(cur_status) != without_position(data);
    position_moved = !cur_status.is_discarded() && cur_status.value("xlog_location", json()) != data.value("xlog_location", json());
  }
  auto now = SteadyClock::now();
  if (!significant) {
    std::lock_guard lk(mu_);
    // The WAL position alone is refreshed at most once per ttl: peers ask each other over
    // REST for exact positions when it matters; the annotation is for display.
    if (!position_moved || now - last_position_write_ < seconds_ms(ttl_)) return Status::Ok();
  }
  json body = {{"metadata",
                {{"name", opts_.name},
                 {"namespace", l.namespace_},
                 {"labels", {{l.role_label, label}}},
                 {"annotations", {{"status", status}}}}}};
  auto r = client_->call("PATCH", l.path("pods", opts_.name), body.dump(), kStrategicMerge);
  if (!r.ok() || r->status != 200) return status_of(r, "patch pod " + opts_.name);
  pods_->put(r->json());
  std::lock_guard lk(mu_);
  last_position_write_ = now;
  return Status::Ok();
}

// ---- settings and shutdown ----

void KubernetesDcs::set_ttl(int ttl_seconds) { ttl_ = ttl_seconds; }

void KubernetesDcs::set_retry_timeout(int seconds) {
  retry_timeout_ = seconds;
  client_->set_retry_timeout(seconds_ms(seconds));
}

void KubernetesDcs::close() {
  if (closed_.exchange(true)) return;
  objects_->stop();
  pods_->stop();
}

}  // namespace pgwarden::dcs::k8s
