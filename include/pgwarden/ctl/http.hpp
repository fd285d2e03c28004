#pragma once
// The requests `pgwarden ctl` sends to members' REST APIs: one synchronous HTTP(S) request
// to a member's api_url with its path replaced, like patronictl's PatroniRequest (basic
// auth from ctl.authentication or restapi.authentication, TLS options from ctl.* then
// restapi.*).
#include <chrono>
#include <optional>
#include <string>

#include "pgwarden/config/config.hpp"
#include "pgwarden/ha/peer_status.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::ctl {

struct HttpOptions {
  ha::PeerTlsOptions tls;
  std::string basic_auth;  // "user:password"; empty: none
  std::chrono::milliseconds timeout{60000};
};

// ctl.authentication wins over restapi.authentication; TLS per ha::peer_tls_options;
// `insecure` (-k) turns certificate checks off.
HttpOptions http_options(const config::Config& cfg, bool insecure);

struct HttpResponse {
  int status = 0;
  std::string body;
};

// METHOD <scheme://host:port of api_url><path> with an optional JSON body. kUnavailable when
// the member cannot be reached or the exchange fails; any HTTP status is a response.
Result<HttpResponse> request_member(const std::string& api_url, const std::string& method, const std::string& path,
                                    const std::optional<std::string>& body, const HttpOptions& options);

}  // namespace pgwarden::ctl
