#pragma once
// Request dispatch for the REST API, independent of the socket layer so it can be tested
// without a server: Patroni routes on the method plus the first path segment and falls
// back to the health-check handler for any other GET/HEAD/OPTIONS.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pgwarden/api/server.hpp"
#include "pgwarden/config/config.hpp"

namespace pgwarden::api {

struct HttpRequest {
  std::string method;                          // as sent, e.g. "GET"
  std::string target;                          // raw request target
  std::string path;                            // target without the query string
  std::map<std::string, std::string> query;    // first value per key, blank values dropped
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool tls = false;          // arrived over HTTPS
  bool client_cert = false;  // and the client presented a certificate that verified
};

struct HttpResponse {
  int status = 200;
  // Status line only (HEAD, OPTIONS, probes): no body, no Content-Type.
  bool status_only = false;
  std::string content_type;  // empty: none
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Splits "/path?a=1&b=%20" into path and query the way Python's urlparse + parse_qs do
// (first value per key wins, '+' is a space, empty values are dropped).
void split_target(const std::string& target, std::string* path, std::map<std::string, std::string>* query);

// A POST /restart body checked as Patroni's do_POST_restart does. `status` 0: valid.
struct RestartRequest {
  int status = 0;
  std::string error;               // the answer's text when refused
  ha::RestartFilters filters;
  std::optional<double> schedule;  // epoch seconds; unset: restart now
};
RestartRequest parse_restart_request(const nlohmann::json& body, bool paused, double now);

// Patroni's parse_int(value, 's') for the restart timeout: an integer, or a string with an
// optional unit (us, ms, s, min, h, d). nullopt when not a number.
std::optional<int64_t> parse_seconds(const nlohmann::json& value);

class Router {
 public:
  Router(config::RestApiConfig cfg, ServerDeps deps);
  // Never throws; may block on deps.query_postgres(), so call it off the I/O thread.
  HttpResponse handle(const HttpRequest& req) const;

 private:
  HttpResponse health_check(const HttpRequest& req, bool status_only) const;
  HttpResponse unsafe(const HttpRequest& req) const;
  // Empty when the request may proceed, else the 401 message Patroni sends.
  std::string check_auth(const HttpRequest& req) const;

  // The cluster from a fresh DCS read when `fresh` and possible, else the HA loop's last view.
  std::optional<dcs::Cluster> cluster(const ha::NodeView& view, bool fresh, std::string* error) const;
  HttpResponse get_cluster(const ha::NodeView& view) const;
  HttpResponse get_history(const ha::NodeView& view) const;
  HttpResponse get_config(const ha::NodeView& view) const;
  HttpResponse get_metrics() const;
  // The request body as a non-empty JSON object that passes validate_dynamic_config, or
  // nullopt with the refusal (411 or 400) in `refusal`.
  std::optional<nlohmann::json> read_json_object(const HttpRequest& req, HttpResponse* refusal) const;
  HttpResponse patch_config_request(const HttpRequest& req) const;
  HttpResponse put_config_request(const HttpRequest& req) const;
  // An optional JSON object body (Patroni's _read_json_content(body_is_optional=True)):
  // none or empty is {}; malformed or not an object is refused with 400.
  std::optional<nlohmann::json> read_optional_json(const HttpRequest& req, HttpResponse* refusal) const;
  HttpResponse post_restart(const HttpRequest& req) const;
  HttpResponse delete_restart() const;
  HttpResponse post_reload() const;
  HttpResponse post_reinitialize(const HttpRequest& req) const;
  // Adds what only the API knows first-hand (the scheduled restart) to a status document.
  void add_operator_fields(nlohmann::json& doc) const;

  config::RestApiConfig cfg_;
  ServerDeps deps_;
};

}  // namespace pgwarden::api
