#include "pgwarden/dcs/kubernetes/kube_config.hpp"

#include <openssl/evp.h>
#include <pwd.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace pgwarden::dcs::k8s {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::optional<std::string> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return os.str();
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Standard base64 (kubeconfig *-data fields) through OpenSSL; whitespace is ignored.
std::optional<std::string> base64_decode(const std::string& in) {
  std::string s;
  s.reserve(in.size());
  for (char c : in)
    if (!std::isspace(static_cast<unsigned char>(c))) s += c;
  if (s.empty()) return std::string();
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (s[s.size() - 1] == '=') ++pad;
  if (s[s.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::optional<int> parse_port(const std::string& s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  int p = std::stoi(s);
  if (p < 1 || p > 65535) return std::nullopt;
  return p;
}

// scheme://host[:port][/], IPv6 literals in brackets. A path other than "/" is refused:
// ApiServer has no place for a prefix and requests would silently miss it.
Status parse_server_url(const std::string& url, ApiServer& out) {
  auto bad = [&](const std::string& why) { return Status::Invalid("server URL \"" + url + "\": " + why); };
  auto sep = url.find("://");
  if (sep == std::string::npos) return bad("expected http://host[:port] or https://host[:port]");
  std::string scheme = url.substr(0, sep);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https") return bad("unsupported scheme \"" + scheme + "\" (http or https)");
  std::string rest = url.substr(sep + 3);
  auto slash = rest.find('/');
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  std::string hostport = rest.substr(0, slash);
  if (!path.empty() && path != "/") return bad("a path prefix (\"" + path + "\") is not supported");
  if (hostport.find('@') != std::string::npos) return bad("user information in the URL is not supported");
  std::string host, port;
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) return bad("unterminated IPv6 literal");
    host = hostport.substr(1, close - 1);
    std::string after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("unexpected text after the IPv6 literal");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    auto colon = hostport.find(':');
    host = hostport.substr(0, colon);
    if (colon != std::string::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (host.empty()) return bad("no host");
  out.scheme = scheme;
  out.host = host;
  if (port.empty()) {
    out.port = scheme == "https" ? 443 : 80;
  } else {
    auto p = parse_port(port);
    if (!p) return bad("invalid port \"" + port + "\"");
    out.port = *p;
  }
  return Status::Ok();
}

// The entry named `name` in a kubeconfig list (clusters/users/contexts), its inner map
// (`cluster`, `user`, `context`) or an undefined node.
YAML::Node find_named(const YAML::Node& root, const char* list, const char* inner, const std::string& name) {
  YAML::Node l = root[list];
  if (!l || !l.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& item : l) {
    if (!item.IsMap() || !item["name"] || !item["name"].IsScalar()) continue;
    if (item["name"].as<std::string>() != name) continue;
    YAML::Node in = item[inner];
    if (!in || in.IsNull()) return YAML::Node(YAML::NodeType::Map);  // present but empty
    return in;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string str_field(const YAML::Node& map, const char* key) {
  if (!map.IsMap()) return "";
  YAML::Node v = map[key];
  if (!v || !v.IsScalar()) return "";
  return v.as<std::string>();
}

bool bool_field(const YAML::Node& map, const char* key) {
  std::string v = str_field(map, key);
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v == "true" || v == "yes" || v == "on" || v == "1";
}

std::string resolve(const fs::path& base, const std::string& p) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_absolute()) return p;
  return (base / path).lexically_normal().string();
}

std::string home_dir() {
  std::string h = env("HOME");
  if (!h.empty()) return h;
  if (auto* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return "";
}

}  // namespace

std::string ApiServer::authority() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<ApiServer> in_cluster_config(const std::string& sa_dir) {
  std::string host = env("KUBERNETES_SERVICE_HOST"), port = env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty())
    return Status::Invalid(
        "Kubernetes in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be "
        "set and non-empty (not running in a pod?)");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto p = parse_port(port);
  if (!p) return Status::Invalid("Kubernetes in-cluster configuration: invalid KUBERNETES_SERVICE_PORT \"" + port + "\"");
  ApiServer s;
  s.scheme = "https";
  s.host = host;
  s.port = *p;
  s.token_file = sa_dir + "/token";
  auto token = read_whole(s.token_file);
  if (!token) return Status::Invalid("Kubernetes in-cluster configuration: cannot read the service account token " +
                                     s.token_file);
  s.token = trim(*token);
  if (s.token.empty())
    return Status::Invalid("Kubernetes in-cluster configuration: the service account token " + s.token_file +
                           " is empty");
  s.ca_file = sa_dir + "/ca.crt";
  if (!read_whole(s.ca_file))
    return Status::Invalid("Kubernetes in-cluster configuration: cannot read the service account CA " + s.ca_file);
  if (auto ns = read_whole(sa_dir + "/namespace")) s.namespace_ = trim(*ns);
  return s;
}

Result<ApiServer> kubeconfig_config(const std::string& path, const std::string& context) {
  auto bad = [&](const std::string& why) { return Status::Invalid("kubeconfig " + path + ": " + why); };
  auto text = read_whole(path);
  if (!text) return bad("cannot read the file");
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const std::exception& e) {
    return bad(std::string("not valid YAML: ") + e.what());
  }
  if (!root.IsMap()) return bad("not a kubeconfig (expected a mapping with clusters, users and contexts)");
  fs::path base = fs::path(path).parent_path();
  if (base.empty()) base = ".";

  try {
    std::string ctx_name = context.empty() ? str_field(root, "current-context") : context;
    if (ctx_name.empty()) return bad("no context given and no current-context set");
    YAML::Node ctx = find_named(root, "contexts", "context", ctx_name);
    if (!ctx) return bad("context \"" + ctx_name + "\" not found");
    if (!ctx.IsMap()) return bad("context \"" + ctx_name + "\" is not a mapping");
    std::string cluster_name = str_field(ctx, "cluster"), user_name = str_field(ctx, "user");
    if (cluster_name.empty()) return bad("context \"" + ctx_name + "\" names no cluster");
    YAML::Node cluster = find_named(root, "clusters", "cluster", cluster_name);
    if (!cluster) return bad("cluster \"" + cluster_name + "\" (of context \"" + ctx_name + "\") not found");
    if (!cluster.IsMap()) return bad("cluster \"" + cluster_name + "\" is not a mapping");

    ApiServer s;
    std::string server = str_field(cluster, "server");
    if (server.empty()) return bad("cluster \"" + cluster_name + "\" has no server");
    if (auto st = parse_server_url(server, s); !st.ok()) return bad("cluster \"" + cluster_name + "\": " + st.message());
    if (cluster["proxy-url"]) return bad("cluster \"" + cluster_name + "\": proxy-url is not supported");
    s.insecure_skip_tls_verify = bool_field(cluster, "insecure-skip-tls-verify");
    if (auto data = str_field(cluster, "certificate-authority-data"); !data.empty()) {
      auto pem = base64_decode(data);
      if (!pem) return bad("cluster \"" + cluster_name + "\": certificate-authority-data is not valid base64");
      s.ca_pem = *pem;
    } else {
      s.ca_file = resolve(base, str_field(cluster, "certificate-authority"));
    }

    if (!user_name.empty()) {
      YAML::Node user = find_named(root, "users", "user", user_name);
      if (!user) return bad("user \"" + user_name + "\" (of context \"" + ctx_name + "\") not found");
      if (!user.IsMap()) return bad("user \"" + user_name + "\" is not a mapping");
      if (user["exec"])
        return bad("user \"" + user_name +
                   "\" authenticates with an exec credential plugin, which pgwarden does not support (use a token, "
                   "tokenFile or client certificate)");
      if (user["auth-provider"])
        return bad("user \"" + user_name +
                   "\" authenticates with an auth-provider, which pgwarden does not support (use a token, tokenFile "
                   "or client certificate)");
      if (user["username"] || user["password"])
        return bad("user \"" + user_name + "\" uses basic authentication (username/password), which pgwarden does "
                   "not support");
      s.token = trim(str_field(user, "token"));
      s.token_file = resolve(base, str_field(user, "tokenFile"));
      if (auto d = str_field(user, "client-certificate-data"); !d.empty()) {
        auto pem = base64_decode(d);
        if (!pem) return bad("user \"" + user_name + "\": client-certificate-data is not valid base64");
        s.client_cert_pem = *pem;
      } else {
        s.client_cert_file = resolve(base, str_field(user, "client-certificate"));
      }
      if (auto d = str_field(user, "client-key-data"); !d.empty()) {
        auto pem = base64_decode(d);
        if (!pem) return bad("user \"" + user_name + "\": client-key-data is not valid base64");
        s.client_key_pem = *pem;
      } else {
        s.client_key_file = resolve(base, str_field(user, "client-key"));
      }
      bool has_cert = !s.client_cert_pem.empty() || !s.client_cert_file.empty();
      bool has_key = !s.client_key_pem.empty() || !s.client_key_file.empty();
      if (has_cert != has_key)
        return bad("user \"" + user_name + "\": a client certificate needs both the certificate and its key");
    }
    s.namespace_ = str_field(ctx, "namespace");
    return s;
  } catch (const std::exception& e) {
    return bad(std::string("malformed: ") + e.what());
  }
}

Result<ApiServer> discover_api_server(const std::string& context, const std::string& cacert) {
  Result<ApiServer> r = Status::Failed("unset");
  if (!env("KUBERNETES_SERVICE_HOST").empty()) {
    r = in_cluster_config();
  } else {
    std::string path = env("KUBECONFIG");
    if (auto colon = path.find(':'); colon != std::string::npos) path = path.substr(0, colon);
    if (path.empty()) {
      std::string home = home_dir();
      if (home.empty())
        return Status::Invalid(
            "Kubernetes: not in a pod (KUBERNETES_SERVICE_HOST unset), KUBECONFIG unset and no home directory for "
            "~/.kube/config");
      path = home + "/.kube/config";
    }
    r = kubeconfig_config(path, context);
  }
  if (r.ok() && !cacert.empty()) {
    r->ca_file = cacert;
    r->ca_pem.clear();
  }
  return r;
}

}  // namespace pgwarden::dcs::k8s
