// Method + first-path-segment dispatch, as Patroni's RestApiHandler.parse_request does, and
// the handlers of the read-only endpoints. The unsafe endpoints arrive in a later change; for
// now they authenticate and answer 501.
#include "pgwarden/api/router.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <chrono>
#include <exception>
#include <optional>

#include "pgwarden/api/status_document.hpp"

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

}  // namespace

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
        return json_response(200, build_status_document(view, pg));
      }
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
  const nlohmann::json doc = build_status_document(view, pg);
  const int code = health_status_code(req.path, req.query, view, doc);
  if (want_status_only) return status_only(code);
  return json_response(code, doc);
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
  const std::string denied = check_auth(req);
  if (!denied.empty()) {
    HttpResponse r = text(401, denied);
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"Patroni\"");
    return r;
  }
  return text(501, "Unsupported method");
}

}  // namespace pgwarden::api
