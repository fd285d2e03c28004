// Method + first-path-segment dispatch, as Patroni's RestApiHandler.parse_request does, the
// handlers of the read-only endpoints, of PATCH/PUT /config, of the switchover requests and
// of the operator requests (restart, reload, reinitialize). Other unsafe requests
// authenticate and answer 501.
#include "pgwarden/api/router.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <optional>
#include <thread>

#include "pgwarden/api/management.hpp"
#include "pgwarden/api/status_document.hpp"
#include "pgwarden/api/switchover.hpp"
#include "pgwarden/ha/peer_status.hpp"
#include "pgwarden/util/iso_time.hpp"

namespace pgwarden::api {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// urllib's unquote_plus: '+' is a space, malformed escapes stay as they are.
std::string unquote_plus(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

double now_epoch() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string first_segment(const std::string& path) {
  const auto start = path.find_first_not_of('/');
  if (start == std::string::npos) return "";
  const auto end = path.find('/', start);
  return path.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

HttpResponse text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  // Patroni labels its plain messages text/html; clients only look at the status.
  r.content_type = "text/html";
  r.body = std::move(body);
  return r;
}

HttpResponse status_only(int status) {
  HttpResponse r;
  r.status = status;
  r.status_only = true;
  return r;
}

HttpResponse json_response(int status, const nlohmann::json& doc) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  // Replace invalid UTF-8 (e.g. odd application_name bytes) instead of throwing.
  r.body = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

bool is_unsafe_method(const std::string& m) { return m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE"; }

// Patroni's postgres_version_to_int: "X.Y.Z" (before 10) or "X.Y" / "X.Y.Z" (10 on) to
// server_version_num; an error text on a malformed version.
std::optional<int> version_num(const std::string& v, std::string* error) {
  std::vector<int> parts;
  size_t start = 0;
  while (true) {
    size_t dot = v.find('.', start);
    std::string part = v.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    // int() accepts surrounding blanks and a sign; a digit is still required.
    size_t b = part.find_first_not_of(" \t"), e = part.find_last_not_of(" \t");
    part = b == std::string::npos ? "" : part.substr(b, e - b + 1);
    size_t digits = !part.empty() && (part[0] == '+' || part[0] == '-') ? 1 : 0;
    if (part.size() == digits || part.size() - digits > 6 ||
        part.find_first_not_of("0123456789", digits) != std::string::npos) {
      *error = "Invalid PostgreSQL version: " + v;
      return std::nullopt;
    }
    parts.push_back(std::stoi(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (parts.size() < 2 || (parts.size() == 2 && parts[0] < 10) || parts.size() > 3) {
    *error = "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: " + v;
    return std::nullopt;
  }
  if (parts.size() == 2) parts.insert(parts.begin() + 1, 0);
  return parts[0] * 10000 + parts[1] * 100 + parts[2];
}

}  // namespace

std::optional<int64_t> parse_seconds(const nlohmann::json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) return static_cast<int64_t>(std::llround(value.get<double>()));
  if (!value.is_string()) return std::nullopt;
  std::string s = value.get<std::string>();
  size_t i = s.find_first_not_of(" \t");
  if (i == std::string::npos) return std::nullopt;
  size_t j = i;
  if (s[j] == '+' || s[j] == '-') ++j;
  size_t digits_start = j;
  while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
  if (j == digits_start || j - digits_start > 12) return std::nullopt;
  const int64_t n = std::stoll(s.substr(i, j - i));
  std::string unit = s.substr(j);
  unit.erase(0, unit.find_first_not_of(" \t"));
  unit.erase(unit.find_last_not_of(" \t") + 1);
  double factor;
  if (unit.empty() || unit == "s") factor = 1;
  else if (unit == "us") factor = 1e-6;
  else if (unit == "ms") factor = 1e-3;
  else if (unit == "min") factor = 60;
  else if (unit == "h") factor = 3600;
  else if (unit == "d") factor = 86400;
  else return std::nullopt;
  return static_cast<int64_t>(std::llround(static_cast<double>(n) * factor));
}

RestartRequest parse_restart_request(const nlohmann::json& body, bool paused, double now) {
  RestartRequest r;
  auto refuse = [&](int status, std::string error) {
    r.status = status;
    r.error = std::move(error);
    return r;
  };
  if (paused && body.contains("schedule")) return refuse(500, "Can't schedule restart in the paused state");
  for (const auto& [k, v] : body.items()) {
    if (k == "schedule") {
      const std::string text = v.is_string() ? v.get<std::string>() : std::string();
      auto at = text.empty() ? std::nullopt : util::parse_iso8601(text);
      if (!at)
        return refuse(422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601");
      // After "YYYY-MM-DDTHH:MM:SS" only a fraction and an offset may follow.
      const bool has_tz = text.size() > 19 && text.find_first_of("Zz+-", 19) != std::string::npos;
      if (!has_tz) return refuse(400, "Timezone information is mandatory for the scheduled restart");
      if (*at < now) return refuse(422, "Cannot schedule restart in the past");
      r.schedule = *at;
    } else if (k == "role") {
      const std::string role = v.is_string() ? v.get<std::string>() : std::string();
      if (role != "master" && role != "primary" && role != "replica")
        return refuse(400, "PostgreSQL role should be either primary or replica");
      r.filters.role = role == "primary" ? "master" : role;
    } else if (k == "postgres_version") {
      std::string error;
      const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
      auto num = version_num(text, &error);
      if (!num) return refuse(400, error);
      r.filters.postgres_version = text;
      r.filters.postgres_version_num = *num;
    } else if (k == "timeout") {
      auto t = parse_seconds(v);
      if (!t || *t <= 0 || *t > 86400 * 365) return refuse(400, "Timeout should be a positive number of seconds");
      r.filters.timeout = static_cast<int>(*t);
    } else if (k == "restart_pending") {
      // Patroni looks at the key only, not at its value.
      r.filters.restart_pending = true;
    } else {
      return refuse(400, "Unknown filter for the scheduled restart: " + k);
    }
  }
  return r;
}

void split_target(const std::string& target, std::string* path, std::map<std::string, std::string>* query) {
  const auto q = target.find('?');
  std::string p = target.substr(0, q);
  // A fragment never reaches the path (urlparse strips it).
  const auto frag = p.find('#');
  if (frag != std::string::npos) p.erase(frag);
  *path = p;
  query->clear();
  if (q == std::string::npos) return;
  std::string qs = target.substr(q + 1);
  const auto qfrag = qs.find('#');
  if (qfrag != std::string::npos) qs.erase(qfrag);
  size_t start = 0;
  while (start <= qs.size()) {
    size_t amp = qs.find('&', start);
    if (amp == std::string::npos) amp = qs.size();
    const std::string field = qs.substr(start, amp - start);
    start = amp + 1;
    const auto eq = field.find('=');
    if (eq == std::string::npos) continue;  // parse_qs drops fields without a value
    std::string key = unquote_plus(field.substr(0, eq));
    std::string value = unquote_plus(field.substr(eq + 1));
    if (value.empty()) continue;
    query->emplace(std::move(key), std::move(value));  // first value wins
  }
}

Router::Router(config::RestApiConfig cfg, ServerDeps deps) : cfg_(std::move(cfg)), deps_(std::move(deps)) {}

HttpResponse Router::handle(const HttpRequest& req) const {
  try {
    if (req.method == "GET") {
      const std::string segment = first_segment(req.path);
      const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
      if (segment == "liveness") return status_only(liveness_status_code(view, now_epoch()));
      if (segment == "readiness") return status_only(readiness_status_code(view, now_epoch()));
      if (segment == "patroni") {
        std::optional<postgres::PgState> pg;
        if (deps_.query_postgres) pg = deps_.query_postgres();
        nlohmann::json doc = build_status_document(view, pg);
        add_operator_fields(doc);
        return json_response(200, doc);
      }
      if (segment == "cluster") return get_cluster(view);
      if (segment == "history") return get_history(view);
      if (segment == "config") return get_config(view);
      if (segment == "metrics") return get_metrics();
      // No failsafe mode here: Patroni answers 502 while it is off.
      if (segment == "failsafe") return text(502, "Failsafe mode is not enabled");
      return health_check(req, false);
    }
    if (req.method == "HEAD" || req.method == "OPTIONS") return health_check(req, true);
    if (is_unsafe_method(req.method)) return unsafe(req);
    return text(501, "Unsupported method");
  } catch (const std::exception& e) {
    // A throwing dependency (e.g. query_postgres) must not take the server down.
    return text(500, std::string("internal error: ") + e.what());
  } catch (...) {
    return text(500, "internal error");
  }
}

HttpResponse Router::health_check(const HttpRequest& req, bool want_status_only) const {
  // Read the view after querying PostgreSQL so the rules see the freshest HA state.
  std::optional<postgres::PgState> pg;
  if (deps_.query_postgres) pg = deps_.query_postgres();
  const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
  nlohmann::json doc = build_status_document(view, pg);
  const int code = health_status_code(req.path, req.query, view, doc);
  if (want_status_only) return status_only(code);
  add_operator_fields(doc);
  return json_response(code, doc);
}

void Router::add_operator_fields(nlohmann::json& doc) const {
  if (!deps_.requests) return;
  if (auto sr = deps_.requests->scheduled_restart()) doc["scheduled_restart"] = ha::scheduled_restart_json(*sr, true);
}

std::string Router::check_auth(const HttpRequest& req) const {
  if (cfg_.username.empty()) return "";
  auto it = req.headers.find("authorization");
  if (it == req.headers.end()) return "no auth header received";
  const std::string& header = it->second;
  static const std::string kBasic = "Basic ";
  const std::string credentials = cfg_.username + ":" + cfg_.password;
  std::string expected(4 * ((credentials.size() + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(expected.data()),
                      reinterpret_cast<const unsigned char*>(credentials.data()), static_cast<int>(credentials.size()));
  expected.resize(static_cast<size_t>(n));
  if (header.compare(0, kBasic.size(), kBasic) != 0) return "not authenticated";
  const std::string given = header.substr(kBasic.size());
  // Constant time, like hmac.compare_digest, so the key cannot be guessed byte by byte.
  if (given.size() != expected.size() || CRYPTO_memcmp(given.data(), expected.data(), given.size()) != 0) {
    return "not authenticated";
  }
  return "";
}

HttpResponse Router::unsafe(const HttpRequest& req) const {
  // As Patroni's check_access: over HTTPS with verify_client optional or required, a change
  // needs a verified client certificate, before any password is looked at.
  if (req.tls && !req.client_cert && (cfg_.verify_client == "optional" || cfg_.verify_client == "required"))
    return text(403, "client certificate required");
  const std::string denied = check_auth(req);
  if (!denied.empty()) {
    HttpResponse r = text(401, denied);
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"Patroni\"");
    return r;
  }
  const std::string segment = first_segment(req.path);
  // No failsafe mode here: Patroni answers 502 while it is off.
  if (segment == "failsafe" && req.method == "POST") return text(502, "Failsafe mode is not enabled");
  if (segment == "config") {
    if (req.method == "PATCH") return patch_config_request(req);
    if (req.method == "PUT") return put_config_request(req);
  }
  if (segment == "restart" && req.method == "POST") return post_restart(req);
  if (segment == "restart" && req.method == "DELETE") return delete_restart();
  if (segment == "reload" && req.method == "POST") return post_reload();
  if (segment == "reinitialize" && req.method == "POST") return post_reinitialize(req);
  if ((segment == "switchover" || segment == "failover") && (req.method == "POST" || req.method == "DELETE")) {
    if (!deps_.write_failover) return text(503, "the DCS cannot be written from the REST API here");
    SwitchoverDeps sd;
    sd.write_failover = deps_.write_failover;
    const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
    sd.read_cluster = [this, view]() -> Result<dcs::Cluster> {
      std::string error;
      auto c = cluster(view, true, &error);
      if (!c) return Status::Unavailable(error);
      return *c;
    };
    sd.paused = [view] { return view.paused; };
    sd.fetch_peers = [](const std::vector<dcs::Member>& ms) { return ha::fetch_peer_statuses(ms, std::chrono::seconds(2)); };
    sd.wake_ha = deps_.wake_ha;
    sd.now = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
    sd.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
    // As Patroni: twice max(10 s, loop_wait) for the lock to move.
    sd.poll_timeout = std::chrono::seconds(2 * std::max(10, view.loop_wait));
    SwitchoverReply rep = req.method == "DELETE"
                              ? (segment == "switchover" ? delete_switchover(sd) : SwitchoverReply{501, "Unsupported method"})
                              : post_switchover(segment, req.body, sd);
    return text(rep.status, rep.body);
  }
  return text(501, "Unsupported method");
}

std::optional<dcs::Cluster> Router::cluster(const ha::NodeView& view, bool fresh, std::string* error) const {
  if (fresh && deps_.read_cluster) {
    auto r = deps_.read_cluster();
    if (r.ok()) return std::move(*r);
    if (error) *error = r.status().message();
  }
  if (view.cluster) return *view.cluster;
  if (error && error->empty()) *error = "no view of the DCS yet";
  return std::nullopt;
}

HttpResponse Router::get_cluster(const ha::NodeView& view) const {
  std::string error;
  auto c = cluster(view, true, &error);
  if (!c) return text(503, "DCS is not accessible: " + error);
  return json_response(200, cluster_as_json(*c, view.scope));
}

HttpResponse Router::get_history(const ha::NodeView& view) const {
  std::string error;
  auto c = cluster(view, true, &error);
  if (!c) return text(503, "DCS is not accessible: " + error);
  return json_response(200, c->history && c->history->is_array() ? *c->history : nlohmann::json::array());
}

HttpResponse Router::get_config(const ha::NodeView& view) const {
  std::string error;
  auto c = cluster(view, true, &error);
  if (!c) return text(503, "DCS is not accessible: " + error);
  if (!c->config) return text(502, "Bad Gateway: there is no dynamic configuration in the DCS");
  return json_response(200, c->config->is_object() ? *c->config : nlohmann::json::object());
}

HttpResponse Router::get_metrics() const {
  std::optional<postgres::PgState> pg;
  if (deps_.query_postgres) pg = deps_.query_postgres();
  const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
  HttpResponse r;
  r.status = 200;
  r.content_type = "text/plain";  // what Patroni sends; Prometheus reads it as format 0.0.4
  r.body = render_metrics(view, build_status_document(view, pg));
  r.body += render_archiver_metrics(view, pg ? &*pg : nullptr);
  return r;
}

std::optional<nlohmann::json> Router::read_json_object(const HttpRequest& req, HttpResponse* refusal) const {
  if (req.headers.find("content-length") == req.headers.end()) {
    *refusal = text(411, "Length Required: the request needs a Content-Length and a JSON body");
    return std::nullopt;
  }
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    *refusal = text(400, "Bad Request: the body is not valid JSON");
    return std::nullopt;
  }
  if (!body.is_object()) {
    *refusal = text(400, "Bad Request: the body must be a JSON object");
    return std::nullopt;
  }
  if (body.empty()) {
    *refusal = text(400, "Bad Request: the body must not be an empty object");
    return std::nullopt;
  }
  auto errors = validate_dynamic_config(body);
  if (!errors.empty()) {
    std::string msg = "Bad Request: invalid dynamic configuration:";
    for (const auto& e : errors) msg += "\n" + e;
    *refusal = text(400, msg);
    return std::nullopt;
  }
  return body;
}

HttpResponse Router::patch_config_request(const HttpRequest& req) const {
  HttpResponse refusal;
  auto patch = read_json_object(req, &refusal);
  if (!patch) return refusal;
  if (!deps_.write_config) return text(503, "the DCS cannot be written from here");
  const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
  std::string error;
  // The compare-and-set below makes a stale view harmless: the write then fails with 409.
  auto c = cluster(view, true, &error);
  if (!c) return text(503, "DCS is not accessible: " + error);
  if (!c->config || c->config_index == 0) return text(503, "there is no dynamic configuration in the DCS yet");
  nlohmann::json data = c->config->is_object() ? *c->config : nlohmann::json::object();
  if (patch_config(data, *patch)) {
    const Status st = deps_.write_config(data.dump(), c->config_index);
    // Patroni answers 409 whenever the conditional write does not go through.
    if (!st.ok()) return text(409, "Conflict: the configuration was not written: " + st.message());
  }
  return json_response(200, data);
}

HttpResponse Router::put_config_request(const HttpRequest& req) const {
  HttpResponse refusal;
  auto config = read_json_object(req, &refusal);
  if (!config) return refusal;
  if (!deps_.write_config) return text(503, "the DCS cannot be written from here");
  const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
  auto c = cluster(view, true, nullptr);
  if (!c || !c->config || *c->config != *config) {
    const Status st = deps_.write_config(config->dump(), std::nullopt);
    if (!st.ok()) return text(502, "Bad Gateway: the configuration was not written: " + st.message());
  }
  return json_response(200, *config);
}

std::optional<nlohmann::json> Router::read_optional_json(const HttpRequest& req, HttpResponse* refusal) const {
  auto len = req.headers.find("content-length");
  if (len == req.headers.end() || req.body.empty()) return nlohmann::json::object();
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    *refusal = text(400, "Bad Request: the body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

HttpResponse Router::post_restart(const HttpRequest& req) const {
  HttpResponse refusal;
  auto body = read_optional_json(req, &refusal);
  if (!body) return refusal;
  if (!deps_.requests) return text(503, "restart failed: the HA loop does not take requests here");
  const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
  RestartRequest r = parse_restart_request(*body, view.paused, now_epoch());
  if (r.status != 0) return text(r.status, r.error);
  if (r.schedule) {
    ha::ScheduledRestart sr;
    sr.filters = r.filters;
    sr.at = *r.schedule;
    if (deps_.query_postgres) {
      if (auto pg = deps_.query_postgres()) sr.postmaster_start_time = pg->postmaster_start_time;
    }
    if (!deps_.requests->schedule_restart(sr)) return text(409, "Another restart is already scheduled");
    if (deps_.wake_ha) deps_.wake_ha();  // publish it in the member key
    return text(202, "Restart scheduled");
  }
  ha::OperatorRequest op;
  op.kind = ha::RequestKind::kRestart;
  op.restart = r.filters;
  // The loop takes it within a cycle; then a fast stop and a start (primary_start_timeout,
  // 300 s by default, unless the request says otherwise).
  const int start_budget = r.filters.timeout > 0 ? r.filters.timeout : 300;
  auto wait = std::chrono::seconds(2 * std::max(10, view.loop_wait) + start_budget + 60);
  ha::RequestReply reply = deps_.requests->submit(op, wait, deps_.wake_ha);
  return text(reply.status, reply.body);
}

HttpResponse Router::delete_restart() const {
  if (!deps_.requests || !deps_.requests->cancel_scheduled_restart()) return text(404, "no restarts are scheduled");
  if (deps_.wake_ha) deps_.wake_ha();
  return text(200, "scheduled restart deleted");
}

HttpResponse Router::post_reload() const {
  if (!deps_.reload_config) return text(503, "reload is not available here");
  deps_.reload_config();
  return text(202, "reload scheduled");
}

HttpResponse Router::post_reinitialize(const HttpRequest& req) const {
  HttpResponse refusal;
  auto body = read_optional_json(req, &refusal);
  if (!body) return refusal;
  if (!deps_.requests) return text(503, "reinitialize failed: the HA loop does not take requests here");
  ha::OperatorRequest op;
  op.kind = ha::RequestKind::kReinitialize;
  if (auto f = body->find("force"); f != body->end()) {
    // Patroni's parse_bool: on/true/yes/1 (any case).
    std::string v = f->is_string() ? f->get<std::string>() : f->dump();
    for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    op.force = v == "on" || v == "true" || v == "yes" || v == "1";
  }
  const ha::NodeView view = deps_.board ? deps_.board->read() : ha::NodeView{};
  auto wait = std::chrono::seconds(2 * std::max(10, view.loop_wait) + 30);
  ha::RequestReply reply = deps_.requests->submit(op, wait, deps_.wake_ha);
  return text(reply.status, reply.body);
}

}  // namespace pgwarden::api
