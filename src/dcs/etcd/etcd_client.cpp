#include "pgwarden/dcs/etcd/etcd_client.hpp"

#include <algorithm>
#include <thread>

#include "pgwarden/util/log.hpp"

namespace pgwarden::dcs::etcd {

using nlohmann::json;

namespace {

constexpr auto kMinAttempt = std::chrono::milliseconds(1000);
constexpr auto kPauseBetweenRounds = std::chrono::milliseconds(200);

// gRPC codes that mean "this member cannot serve now, another one may".
bool retryable_grpc_code(int64_t code) { return code == 4 /*DeadlineExceeded*/ || code == 14 /*Unavailable*/; }

// The gateway reports errors either flat ({"error": "...", "code": 5}) or, for streamed
// RPCs such as keepalive, nested ({"error": {"grpc_code": 5, "message": "..."}}).
bool extract_error(const json& j, std::string& message, int64_t& code) {
  if (!j.is_object()) return false;
  auto e = j.find("error");
  if (e == j.end()) return false;
  if (e->is_object()) {
    message = e->value("message", std::string("unknown error"));
    code = json_int64(*e, "grpc_code", -1);
  } else {
    message = e->is_string() ? e->get<std::string>() : e->dump();
    if (auto m = j.find("message"); m != j.end() && m->is_string() && !m->get<std::string>().empty())
      message = m->get<std::string>();
    code = json_int64(j, "code", -1);
  }
  return true;
}

}  // namespace

json first_json_object(const std::string& body) {
  JsonObjectStream s;
  auto objs = s.feed(body);
  if (objs.empty()) return json(json::value_t::discarded);
  return objs.front();
}

EtcdClient::EtcdClient(std::vector<Endpoint> hosts, std::chrono::milliseconds retry_timeout, std::string username,
                       std::string password)
    : hosts_(std::move(hosts)),
      retry_timeout_ms_(retry_timeout.count()),
      username_(std::move(username)),
      password_(std::move(password)) {}

std::string EtcdClient::hosts_string() const {
  std::string out;
  for (const auto& h : hosts_) out += (out.empty() ? "" : ",") + h.str();
  return out;
}

std::string EtcdClient::token() const {
  std::lock_guard lk(token_mu_);
  return token_;
}

Status EtcdClient::authenticate(const Endpoint& ep, Clock::time_point deadline) {
  json body = {{"name", username_}, {"password", password_}};
  auto r = http_post(ep, "/v3/auth/authenticate", body.dump(), "", deadline);
  if (!r.ok()) return r.status();
  json j = first_json_object(r->body);
  std::string msg;
  int64_t code = -1;
  if (r->status >= 300 || extract_error(j, msg, code) || !j.is_object() || !j.contains("token"))
    return Status::Failed("etcd " + ep.str() + ": authentication as '" + username_ + "' failed: " +
                          (msg.empty() ? "HTTP " + std::to_string(r->status) : msg));
  std::lock_guard lk(token_mu_);
  token_ = j["token"].get<std::string>();
  return Status::Ok();
}

EtcdClient::Outcome EtcdClient::interpret(const Endpoint& ep, const std::string& path, const HttpReply& reply,
                                          Result<json>& out) {
  json j = first_json_object(reply.body);
  std::string msg;
  int64_t code = -1;
  bool has_error = extract_error(j, msg, code);
  if (reply.status < 300 && !has_error) {
    if (j.is_discarded()) {
      out = Status::Failed("etcd " + ep.str() + " /v3/" + path + ": reply is not JSON");
      return Outcome::kDone;
    }
    out = std::move(j);
    return Outcome::kDone;
  }
  if (msg.empty()) msg = "HTTP " + std::to_string(reply.status) + " " + reply.body.substr(0, 200);
  if (code == 16 /*Unauthenticated*/ || msg.find("invalid auth token") != std::string::npos)
    return Outcome::kAuthExpired;
  if (retryable_grpc_code(code) || reply.status == 502 || reply.status == 503 || reply.status == 504) {
    out = Status::Unavailable("etcd " + ep.str() + ": " + msg);
    return Outcome::kRetryElsewhere;
  }
  std::string full = "etcd " + ep.str() + " /v3/" + path + ": " + msg;
  out = code == 5 ? Status::NotFound(full) : Status::Failed(full);
  return Outcome::kDone;
}

// How long one host gets within a call: a share of the whole, but never under a second.
std::chrono::milliseconds EtcdClient::per_host_budget(std::chrono::milliseconds total) const {
  return std::max<std::chrono::milliseconds>(kMinAttempt, total / std::max<size_t>(1, hosts_.size()));
}

Result<json> EtcdClient::call(const std::string& path, const json& body, std::optional<Clock::time_point> until) {
  if (hosts_.empty()) return Status::Invalid("no etcd hosts configured");
  const auto total = until ? std::max(std::chrono::milliseconds(0),
                                      std::chrono::ceil<std::chrono::milliseconds>(*until - Clock::now()))
                           : retry_timeout();
  const auto deadline = until ? *until : Clock::now() + total;
  const auto per_attempt = per_host_budget(retry_timeout());
  const std::string payload = body.dump();
  std::vector<std::string> errors(hosts_.size());
  size_t start = preferred_.load();
  bool reauthed = false;
  while (true) {
    for (size_t i = 0; i < hosts_.size(); ++i) {
      size_t idx = (start + i) % hosts_.size();
      const Endpoint& ep = hosts_[idx];
      auto now = Clock::now();
      if (now >= deadline) break;
      auto attempt_deadline = std::min(deadline, now + per_attempt);
      if (!username_.empty() && token().empty()) {
        if (auto s = authenticate(ep, attempt_deadline); !s.ok()) {
          errors[idx] = s.message();
          if (s.code() == Code::kUnavailable) continue;
          return s;
        }
      }
      auto reply = http_post(ep, "/v3/" + path, payload, token(), attempt_deadline);
      if (!reply.ok()) {
        errors[idx] = reply.status().message();
        continue;
      }
      Result<json> out = Status::Failed("no reply");
      switch (interpret(ep, path, *reply, out)) {
        case Outcome::kDone:
          if (preferred_.load() != idx) {
            spdlog::info("etcd: now using {}", ep.str());
            preferred_ = idx;
          }
          return out;
        case Outcome::kRetryElsewhere:
          errors[idx] = out.status().message();
          continue;
        case Outcome::kAuthExpired:
          if (reauthed) return Status::Failed("etcd " + ep.str() + ": authentication rejected");
          reauthed = true;
          {
            std::lock_guard lk(token_mu_);
            token_.clear();
          }
          --i;  // same host again with a fresh token
          continue;
      }
    }
    auto now = Clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(kPauseBetweenRounds, deadline - now));
    start = preferred_.load();
  }
  std::string detail;
  for (size_t i = 0; i < hosts_.size(); ++i)
    detail += (detail.empty() ? "" : "; ") + (errors[i].empty() ? "etcd " + hosts_[i].str() + ": not tried" : errors[i]);
  return Status::Unavailable("etcd not reachable within " + std::to_string(total.count()) + " ms (" + detail + ")");
}

Status EtcdClient::open_watch(HttpStream& stream, const json& body, Clock::time_point deadline,
                              const util::WakeSignal* wake) {
  if (hosts_.empty()) return Status::Invalid("no etcd hosts configured");
  if (!username_.empty() && token().empty()) {
    if (auto s = authenticate(hosts_[preferred_.load() % hosts_.size()], deadline); !s.ok()) return s;
  }
  Status last = Status::Unavailable("etcd: no host tried");
  size_t start = preferred_.load();
  const std::string request = body.dump();
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (Clock::now() >= deadline || (wake && wake->is_set())) break;
    const Endpoint& ep = hosts_[(start + i) % hosts_.size()];
    // A blackholed host must not eat the whole wait: connecting gets a short budget.
    last = stream.open(ep, "/v3/watch", request, token(), std::min(deadline, Clock::now() + std::chrono::seconds(2)), wake);
    if (last.ok()) return last;
  }
  return last;
}

json EtcdClient::cmp_create_revision(const std::string& key, int64_t rev) {
  return {{"key", base64_encode(key)}, {"result", "EQUAL"}, {"target", "CREATE"}, {"create_revision", std::to_string(rev)}};
}
json EtcdClient::cmp_mod_revision(const std::string& key, int64_t rev) {
  return {{"key", base64_encode(key)}, {"result", "EQUAL"}, {"target", "MOD"}, {"mod_revision", std::to_string(rev)}};
}
json EtcdClient::cmp_value(const std::string& key, const std::string& value) {
  return {{"key", base64_encode(key)}, {"result", "EQUAL"}, {"target", "VALUE"}, {"value", base64_encode(value)}};
}
json EtcdClient::cmp_lease(const std::string& key, int64_t lease) {
  return {{"key", base64_encode(key)}, {"result", "EQUAL"}, {"target", "LEASE"}, {"lease", std::to_string(lease)}};
}
json EtcdClient::op_put(const std::string& key, const std::string& value, int64_t lease) {
  json put = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  return {{"request_put", std::move(put)}};
}
json EtcdClient::op_delete(const std::string& key) { return {{"request_delete_range", {{"key", base64_encode(key)}}}}; }
json EtcdClient::op_range(const std::string& key) { return {{"request_range", {{"key", base64_encode(key)}}}}; }

Result<RangeResult> EtcdClient::range_prefix(const std::string& prefix) {
  auto r = call("kv/range", {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_range_end(prefix))}});
  if (!r.ok()) return r.status();
  RangeResult out;
  out.kvs = decode_kvs(*r);
  out.revision = json_int64(r->value("header", json::object()), "revision");
  return out;
}

Result<RangeResult> EtcdClient::range(const std::string& key) {
  auto r = call("kv/range", {{"key", base64_encode(key)}});
  if (!r.ok()) return r.status();
  RangeResult out;
  out.kvs = decode_kvs(*r);
  out.revision = json_int64(r->value("header", json::object()), "revision");
  return out;
}

Status EtcdClient::put(const std::string& key, const std::string& value, int64_t lease,
                       std::optional<Clock::time_point> deadline) {
  json body = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) body["lease"] = std::to_string(lease);
  auto r = call("kv/put", body, deadline);
  return r.ok() ? Status::Ok() : r.status();
}

Status EtcdClient::delete_key(const std::string& key) {
  auto r = call("kv/deleterange", {{"key", base64_encode(key)}});
  return r.ok() ? Status::Ok() : r.status();
}

Result<TxnResult> EtcdClient::txn(const json& compare, const json& success, const json& failure,
                                  std::optional<Clock::time_point> deadline) {
  auto r = call("kv/txn", {{"compare", compare}, {"success", success}, {"failure", failure}}, deadline);
  if (!r.ok()) return r.status();
  TxnResult out;
  out.succeeded = r->value("succeeded", false);  // omitted by the gateway when false
  out.revision = json_int64(r->value("header", json::object()), "revision");
  if (auto it = r->find("responses"); it != r->end() && it->is_array()) out.responses = *it;
  return out;
}

Result<int64_t> EtcdClient::lease_grant(int ttl_seconds) {
  auto r = call("lease/grant", {{"TTL", std::to_string(ttl_seconds)}, {"ID", "0"}});
  if (!r.ok()) return r.status();
  int64_t id = json_int64(*r, "ID");
  if (id == 0) return Status::Failed("etcd lease/grant returned no lease id: " + r->dump());
  return id;
}

namespace {

Result<KeepAliveResult> keepalive_result(const Result<json>& r) {
  if (!r.ok()) {
    if (r.status().code() == Code::kNotFound) return KeepAliveResult{};
    return r.status();
  }
  // Streamed RPC: {"result": {"header": {.., "revision": ..}, "ID": .., "TTL": ..}}; TTL is
  // omitted (0) once the lease expired.
  const json& res = r->contains("result") ? (*r)["result"] : *r;
  KeepAliveResult out;
  out.ttl = json_int64(res, "TTL");
  if (auto h = res.find("header"); h != res.end()) out.revision = json_int64(*h, "revision");
  return out;
}

}  // namespace

Result<KeepAliveResult> EtcdClient::lease_keepalive(int64_t id, std::optional<Clock::time_point> deadline) {
  return keepalive_result(call("lease/keepalive", {{"ID", std::to_string(id)}}, deadline));
}

Result<EtcdClient::PendingKeepAlive> EtcdClient::start_lease_keepalive(int64_t id) {
  if (hosts_.empty()) return Status::Invalid("no etcd hosts configured");
  if (!username_.empty() && token().empty()) return Status::Unavailable("etcd: not authenticated yet");
  PendingKeepAlive p;
  p.host = hosts_[preferred_.load() % hosts_.size()];
  p.sent = Clock::now();
  p.deadline = p.sent + retry_timeout();
  // {"ID":"<id>"}, as json{{"ID", std::to_string(id)}}.dump() writes it.
  const std::string body = "{\"ID\":\"" + std::to_string(id) + "\"}";
  if (auto s = p.exchange.send(p.host, "/v3/lease/keepalive", body, token(),
                               std::min(p.deadline, p.sent + per_host_budget(retry_timeout())));
      !s.ok())
    return s;
  return p;
}

Result<KeepAliveResult> EtcdClient::finish_lease_keepalive(PendingKeepAlive& p) {
  auto reply = p.exchange.receive(std::min(p.deadline, p.sent + per_host_budget(retry_timeout())));
  if (!reply.ok()) return reply.status();
  // The usual answer, read without a JSON document (a leader's every cycle); anything else
  // goes the general way, which tells errors apart.
  if (reply->status == 200)
    if (auto a = read_keepalive_answer(reply->body)) return KeepAliveResult{a->ttl, a->revision};
  Result<json> out = Status::Failed("no reply");
  switch (interpret(p.host, "lease/keepalive", *reply, out)) {
    case Outcome::kDone: return keepalive_result(out);
    case Outcome::kRetryElsewhere: return out.status();  // lease_keepalive() asks the others
    case Outcome::kAuthExpired: break;                    // lease_keepalive() authenticates again
  }
  return Status::Unavailable("etcd " + p.host.str() + ": authentication expired");
}

Status EtcdClient::lease_revoke(int64_t id) {
  auto r = call("lease/revoke", {{"ID", std::to_string(id)}});
  return r.ok() ? Status::Ok() : r.status();
}

}  // namespace pgwarden::dcs::etcd
