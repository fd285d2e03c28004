#pragma once
// Where the Kubernetes API server is and how to authenticate to it: in a pod from the
// service account files and KUBERNETES_SERVICE_HOST/PORT, outside one from a kubeconfig file.
#include <string>

#include "pgwarden/util/status.hpp"

namespace pgwarden::dcs::k8s {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct ApiServer {
  std::string scheme = "https";  // "http" only for a kubeconfig that says so (tests)
  std::string host;              // name or IP literal, without brackets
  int port = 443;
  // Certificate authority to verify the server with (PEM). Both empty: OpenSSL's defaults.
  std::string ca_file;
  std::string ca_pem;  // inline (kubeconfig certificate-authority-data, base64-decoded)
  bool insecure_skip_tls_verify = false;
  // Bearer token: a fixed one (kubeconfig `token`) or a file re-read every 60 s and after a 401
  // (in-cluster, kubeconfig `tokenFile`). A file wins when both are set.
  std::string token;
  std::string token_file;
  // Client certificate authentication (kubeconfig), files or inline PEM.
  std::string client_cert_file, client_key_file;
  std::string client_cert_pem, client_key_pem;
  std::string namespace_;  // the pod's namespace / the context's namespace; empty if unknown

  std::string authority() const;  // host:port, IPv6 in brackets
};

// In-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT (both required and non-empty)
// and `sa_dir`/token, ca.crt, namespace. Invalid with a clear message when not in a pod.
Result<ApiServer> in_cluster_config(const std::string& sa_dir = kServiceAccountDir);

// A kubeconfig file (YAML): the `context` given, or current-context when empty. Relative file
// paths in it are relative to the file's directory.
Result<ApiServer> kubeconfig_config(const std::string& path, const std::string& context);

// What pgwarden uses: in-cluster when KUBERNETES_SERVICE_HOST is set, otherwise $KUBECONFIG
// (first entry) or ~/.kube/config. `cacert` (kubernetes.cacert / PATRONI_KUBERNETES_CACERT)
// replaces the CA file when non-empty.
Result<ApiServer> discover_api_server(const std::string& context, const std::string& cacert);

}  // namespace pgwarden::dcs::k8s
